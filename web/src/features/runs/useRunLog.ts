import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useQueryClient, type QueryClient } from '@tanstack/react-query';
import { api, openSocket, qs, session } from '../../api/client';
import { LogStore } from './logstore';
import { RunStream, type StreamState } from './stream';
import { runFinal, type LogPage, type Run, type StepView } from './types';

// Where a run's output comes from: the live stream while the run is
// active (its replay covers what came before the viewer opened, and a gap
// says when it does not), the stored log (GET /runs/{id}/logs, paged) for
// a run that had ended when the page opened, or on request after a gap.

export type LogSource = { kind: 'stream'; state: StreamState; detail?: string } | { kind: 'stored'; loading: boolean; error?: unknown };

const storedPage = 2000;

/** Reads every stored line of a run into the store, page by page. */
export async function loadStored(runID: string, store: LogStore, signal: AbortSignal): Promise<void> {
  let after = '';
  for (;;) {
    const page = await api.get<LogPage>(`/api/v1/runs/${encodeURIComponent(runID)}/logs${qs({ limit: storedPage, after })}`, { signal });
    store.add(page.items);
    if (page.items.length < storedPage || !page.next || page.next === after) return;
    after = page.next;
  }
}

interface AttemptEvent {
  target: string;
  step: string;
  attempt_id: string;
  try: number;
  status: string;
  exit_code?: number | null;
  error?: string;
  started_at?: string | null;
  finished_at?: string | null;
}

/**
 * Shows an attempt event in the run at once, the way the server derives a
 * step's state from its attempt (the CLI's applyAttempt); the server's
 * view replaces it on the next read. Returns the run unchanged when the
 * event names no step of it.
 */
export function applyAttempt(run: Run, a: AttemptEvent): Run {
  let status = a.status;
  if (status === 'pending') status = 'running';
  if (status === 'error') status = 'failed';
  let hit = false;
  const targets = run.targets.map((t) => {
    if (t.name !== a.target) return t;
    const steps = t.steps.map((s): StepView => {
      if (s.id !== a.step) return s;
      hit = true;
      return { ...s, status, attempt_id: a.attempt_id, try: a.try, exit_code: a.exit_code, error: a.error, started_at: a.started_at, finished_at: a.finished_at, reason: undefined };
    });
    return { ...t, steps, status: status === 'running' ? 'running' : t.status };
  });
  return hit ? { ...run, targets } : run;
}

/** Shows a run event's state at once, unless it is older than what is shown (the stream replays from the start). */
export function applyRunEvent(run: Run, e: { status?: string; reason?: string }): Run {
  if (!e.status || e.status === run.status || runFinal(run.status) || (e.status === 'queued' && run.status !== 'queued')) return run;
  return { ...run, status: e.status, reason: e.reason };
}

function throttled(qc: QueryClient, runID: string) {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const fire = () => {
    timer = null;
    void qc.invalidateQueries({ queryKey: ['runs', runID] });
  };
  return {
    // An event changes one step; what follows from it (skips, the next
    // batch) is the server's to say: read the run again, at most 4×/s.
    soon() {
      timer ??= setTimeout(fire, 250);
    },
    cancel() {
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}

export function useRunLog(runID: string, run: Run | undefined) {
  const qc = useQueryClient();
  const store = useMemo(() => new LogStore(), [runID]);
  // Decided once, from the run as first read: a run that ends while
  // watched keeps its stream to the end.
  const [mode, setMode] = useState<'stream' | 'stored' | null>(null);
  const [streamState, setStreamState] = useState<{ state: StreamState; detail?: string }>({ state: 'connecting' });
  const [stored, setStored] = useState<{ loading: boolean; error?: unknown }>({ loading: false });
  const abortRef = useRef<AbortController | null>(null);

  useEffect(() => {
    setMode(null);
  }, [runID]);
  useEffect(() => {
    if (mode === null && run && run.id === runID) setMode(runFinal(run.status) ? 'stored' : 'stream');
  }, [mode, run, runID]);

  const readStored = useCallback((clear: boolean) => {
    abortRef.current?.abort();
    const ac = new AbortController();
    abortRef.current = ac;
    if (clear) store.clear();
    setStored({ loading: true });
    loadStored(runID, store, ac.signal).then(
      () => !ac.signal.aborted && setStored({ loading: false }),
      (e: unknown) => !ac.signal.aborted && setStored({ loading: false, error: e }),
    );
  }, [runID, store]);

  useEffect(() => {
    if (mode !== 'stored') return;
    readStored(false);
    return () => abortRef.current?.abort();
  }, [mode, readStored]);

  useEffect(() => {
    if (mode !== 'stream') return;
    const key = ['runs', runID];
    const refresh = throttled(qc, runID);
    const s = new RunStream(runID, {
      onLog: (lines) => store.add(lines),
      onChange: (type, data) => {
        const cur = qc.getQueryData<Run>(key);
        if (cur) {
          const next = type === 'attempt' ? applyAttempt(cur, data as AttemptEvent) : applyRunEvent(cur, data as { status?: string; reason?: string });
          if (next !== cur) qc.setQueryData(key, next);
        }
        refresh.soon();
      },
      onGap: (from, to) => {
        store.addGap(from, to);
        refresh.soon();
      },
      onRestart: () => refresh.soon(),
      onEnd: () => {
        refresh.cancel();
        void qc.invalidateQueries({ queryKey: key });
        // The run ends only once its output is stored; lines can miss the
        // stream (a gap, or written as the run ended), so read the stored
        // log as the CLI does: the store drops what it has. After a gap
        // start over, so that the lines come in order.
        readStored(store.gaps > 0);
      },
      onState: (state, detail) => setStreamState({ state, detail }),
    }, { open: openSocket, renew: () => session.refresh() });
    s.start();
    return () => {
      refresh.cancel();
      s.stop();
    };
  }, [mode, runID, qc, store, readStored]);

  const source: LogSource = mode === 'stored' || stored.loading || stored.error
    ? { kind: 'stored', ...stored }
    : { kind: 'stream', ...streamState };
  return { store, source, loadStored: () => readStored(true), mode };
}
