import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useReducer, useRef, useState, useSyncExternalStore, type CSSProperties, type ReactNode, type RefObject } from 'react';
import { api } from '../../api/client';
import { Button, ErrorBox, StatusBadge } from '../../components/ui';
import { parseAnsi, type Segment, type Style } from './ansi';
import type { Line, LogStore } from './logstore';
import type { StreamState } from './stream';

// The run's output: virtualised (fixed-height rows, only what is on screen
// is in the DOM), following the tail until the reader scrolls up, with
// search, per-target/step filters and jumps, and the text download.

const rowHeight = 18;
const overscan = 12;

/**
 * Which rows are on screen. Every row is rowHeight tall, so the window is
 * arithmetic on scrollTop: O(1) per frame whatever the line count.
 * (@tanstack/react-virtual rebuilds its measurements of every row whenever
 * the count changes, i.e. on every append while following: ~10 ms a frame
 * at 100,000 lines and ~200 ms at 1,000,000 on the CI machine, which is
 * the budget of a smooth 60 fps tail several times over.) While following,
 * the window is the tail before the browser has scrolled, so an append
 * renders once rather than once and again after the scroll event.
 */
export function windowOf(count: number, top: number, height: number, follow: boolean): [number, number] {
  const visible = Math.ceil(height / rowHeight) + 1;
  if (follow) return [Math.max(0, count - visible - overscan), count];
  const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  return [Math.min(first, count), Math.min(count, first + visible + 2 * overscan)];
}

function useRowWindow(ref: RefObject<HTMLDivElement | null>, count: number, follow: boolean) {
  const [, rerender] = useReducer((x: number) => x + 1, 0);
  const geo = useRef({ top: 0, height: 0 });
  const shown = useRef<[number, number]>([0, 0]);
  const countRef = useRef(count);
  const followRef = useRef(follow);
  countRef.current = count;
  followRef.current = follow;
  const check = useCallback(() => {
    const el = ref.current;
    if (!el) return;
    geo.current = { top: el.scrollTop, height: el.clientHeight };
    const [a, b] = windowOf(countRef.current, el.scrollTop, el.clientHeight, followRef.current);
    if (a !== shown.current[0] || b !== shown.current[1]) rerender();
  }, [ref]);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    geo.current = { top: el.scrollTop, height: el.clientHeight };
    const ro = new ResizeObserver(check);
    ro.observe(el);
    rerender();
    return () => ro.disconnect();
  }, [ref, check]);
  const range = windowOf(count, geo.current.top, geo.current.height, follow);
  shown.current = range;
  const scrollToIndex = useCallback((i: number, align: 'center' | 'start' = 'center') => {
    const el = ref.current;
    if (!el) return;
    const h = el.clientHeight;
    el.scrollTop = Math.max(0, align === 'center' ? i * rowHeight - h / 2 + rowHeight / 2 : i * rowHeight);
    check();
  }, [ref, check]);
  return { range, onScroll: check, scrollToIndex };
}

export interface Jump {
  target: string;
  step?: string;
  /** Changes on every request, so that asking twice for one place jumps twice. */
  n: number;
}

export interface LogViewerProps {
  store: LogStore;
  runID: string;
  /** Where the lines come from and how that is going. */
  source: { kind: 'stream'; state: StreamState; detail?: string } | { kind: 'stored'; loading: boolean; error?: unknown };
  jump?: Jump;
  /** Replaces what is shown with the stored log (offered after a gap). */
  onLoadStored?: () => void;
}

function styleOf(s: Style): CSSProperties | undefined {
  let fg = s.fg;
  let bg = s.bg;
  if (s.inverse) [fg, bg] = [bg ?? 'var(--log-bg)', fg ?? 'var(--log-fg)'];
  if (!fg && !bg && !s.bold && !s.dim && !s.italic && !s.underline) return undefined;
  return {
    color: fg,
    backgroundColor: bg,
    fontWeight: s.bold ? 700 : undefined,
    opacity: s.dim ? 0.7 : undefined,
    fontStyle: s.italic ? 'italic' : undefined,
    textDecoration: s.underline ? 'underline' : undefined,
  };
}

/** Splits segments at the query's occurrences, marking them. */
function highlight(segs: Segment[], plain: string, query: string): ReactNode[] {
  if (!query) return segs.map((s, i) => <span key={i} style={styleOf(s.style)}>{s.text}</span>);
  const sensitive = query !== query.toLowerCase();
  const hay = sensitive ? plain : plain.toLowerCase();
  const q = sensitive ? query : query.toLowerCase();
  const ranges: [number, number][] = [];
  for (let at = hay.indexOf(q); at >= 0; at = hay.indexOf(q, at + q.length)) ranges.push([at, at + q.length]);
  const out: ReactNode[] = [];
  let pos = 0;
  let k = 0;
  for (const s of segs) {
    const start = pos;
    const end = pos + s.text.length;
    pos = end;
    const st = styleOf(s.style);
    let cur = start;
    for (const [a, b] of ranges) {
      if (b <= cur || a >= end) continue;
      if (a > cur) out.push(<span key={k++} style={st}>{s.text.slice(cur - start, a - start)}</span>);
      const e = Math.min(b, end);
      out.push(<mark key={k++} style={st}>{s.text.slice(Math.max(a, cur) - start, e - start)}</mark>);
      cur = e;
    }
    if (cur < end) out.push(<span key={k++} style={st}>{s.text.slice(cur - start)}</span>);
  }
  return out;
}

const Row = memo(function Row({ line, prev, query, current, selected, top, onLoadStored }: {
  line: Line; prev?: Line; query: string; current: boolean; selected: boolean; top: number; onLoadStored?: () => void;
}) {
  const style: CSSProperties = { transform: `translateY(${top}px)` };
  if (line.gap) {
    return (
      <div className="log-row log-gap" style={style} data-testid="log-gap" role="note">
        <span className="log-src">gap</span>
        <span>{line.text}</span>
        {onLoadStored && <button className="btn btn-ghost log-gap-btn" onClick={onLoadStored}>Load the stored log</button>}
      </div>
    );
  }
  const same = prev && !prev.gap && prev.target === line.target && prev.step === line.step;
  const segs = parseAnsi(line.text, line.style);
  return (
    <div className={`log-row${current ? ' log-current' : ''}${selected ? ' log-selected' : ''}${line.stream === 'stderr' ? ' log-stderr' : ''}`} style={style} data-testid="log-line">
      <span className={`log-src${same ? ' log-src-same' : ''}`} title={`${line.target} · ${line.step}`}>{line.target} {line.step}</span>
      <span className="log-text">{highlight(segs, line.plain, query)}</span>
    </div>
  );
});

/** Matches of the query, extended as lines arrive rather than searched again from the top. */
function useSearch(store: LogStore, version: number, query: string): number[] {
  const memo = useRef<{ query: string; resets: number; scanned: number; list: number[] }>({ query: '', resets: -1, scanned: 0, list: [] });
  return useMemo(() => {
    const m = memo.current;
    if (!query) {
      memo.current = { query: '', resets: store.resets, scanned: 0, list: [] };
      return memo.current.list;
    }
    if (m.query !== query || m.resets !== store.resets || m.scanned > store.length) {
      memo.current = { query, resets: store.resets, scanned: store.length, list: store.search(query) };
    } else if (m.scanned < store.length) {
      const more = store.search(query, m.scanned);
      memo.current = { ...m, scanned: store.length, list: more.length ? m.list.concat(more) : m.list };
    }
    return memo.current.list;
    // version stands for the store's content
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [store, version, query]);
}

export function LogViewer({ store, runID, source, jump, onLoadStored }: LogViewerProps) {
  const version = useSyncExternalStore(store.subscribe, store.getVersion);
  const scrollRef = useRef<HTMLDivElement>(null);
  const searchRef = useRef<HTMLInputElement>(null);
  const [follow, setFollow] = useState(true);
  const [query, setQuery] = useState('');
  const [cur, setCur] = useState(0);
  const [selected, setSelected] = useState<{ target: string; step?: string } | null>(null);
  const [note, setNote] = useState('');
  const [downloading, setDownloading] = useState(false);
  const [downloadError, setDownloadError] = useState<unknown>(null);
  const lastTop = useRef(0);
  const count = store.length;

  const win = useRowWindow(scrollRef, count, follow);

  const matches = useSearch(store, version, query);
  const curIdx = matches.length ? Math.min(cur, matches.length - 1) : -1;
  const curLine = curIdx >= 0 ? matches[curIdx]! : -1;

  // Following: stick to the bottom as lines arrive (the rows rendered are
  // already the tail; the browser clamps the offset).
  useLayoutEffect(() => {
    const el = scrollRef.current;
    if (follow && el) {
      el.scrollTop = count * rowHeight;
      lastTop.current = el.scrollTop;
    }
  }, [version, follow, count]);

  const onScroll = useCallback(() => {
    const el = scrollRef.current;
    if (!el) return;
    const bottom = Math.max(0, count * rowHeight - el.clientHeight);
    const atBottom = bottom - el.scrollTop < rowHeight * 1.5;
    if (el.scrollTop < lastTop.current - 1 && !atBottom) setFollow(false);
    else if (atBottom && el.scrollTop > lastTop.current) setFollow(true);
    lastTop.current = el.scrollTop;
    win.onScroll();
  }, [count, win]);

  const goTo = useCallback((i: number) => {
    setFollow(false);
    win.scrollToIndex(i);
  }, [win]);

  const step = useCallback((d: number) => {
    if (!matches.length) return;
    const n = (curIdx + d + matches.length) % matches.length;
    setCur(n);
    goTo(matches[n]!);
  }, [matches, curIdx, goTo]);

  // A jump asked for from the matrix or the DAG.
  useEffect(() => {
    if (!jump) return;
    setSelected({ target: jump.target, step: jump.step });
    const f = store.getFilter();
    if ((f.target && f.target !== jump.target) || (f.step && jump.step && f.step !== jump.step)) store.setFilter({});
    const i = store.indexOf(jump.target, jump.step);
    if (i < 0) {
      setNote(`No output yet from ${jump.target}${jump.step ? ` · ${jump.step}` : ''}.`);
      return;
    }
    setNote('');
    goTo(i);
    // Only a new jump moves the view.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [jump?.n]);

  const sections = store.sections();
  // The option lists change only when a new target/step pair appears,
  // not on every appended frame (a run on hundreds of targets has
  // thousands of pairs).
  const options = useMemo(() => ({
    targets: [...new Set(sections.map((s) => s.target))].map((t) => <option key={t} value={t}>{t}</option>),
    steps: [...new Set(sections.map((s) => s.step))].map((s) => <option key={s} value={s}>{s}</option>),
    jumps: sections.map((s, i) => <option key={i} value={i}>{s.target} · {s.step}</option>),
  }), [sections.length]); // eslint-disable-line react-hooks/exhaustive-deps
  const filter = store.getFilter();

  const download = async () => {
    setDownloading(true);
    setDownloadError(null);
    try {
      const res = await api.get<Response>(`/api/v1/runs/${encodeURIComponent(runID)}/logs?format=text`, { raw: true, headers: { Accept: 'text/plain' } });
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = `${runID}.log`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      setDownloadError(e);
    } finally {
      setDownloading(false);
    }
  };

  const onKeyDown = (e: React.KeyboardEvent) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'f') {
      e.preventDefault();
      searchRef.current?.focus();
      searchRef.current?.select();
    } else if (e.key === 'End' && e.target === scrollRef.current) {
      e.preventDefault();
      setFollow(true);
    } else if (e.key === 'Home' && e.target === scrollRef.current) {
      e.preventDefault();
      setFollow(false);
      win.scrollToIndex(0, 'start');
    } else if (e.key === 'F3') {
      e.preventDefault();
      step(e.shiftKey ? -1 : 1);
    }
  };

  const [first, last] = win.range;
  const rows: ReactNode[] = [];
  for (let i = first; i < last; i++) {
    const line = store.get(i);
    if (!line) continue;
    rows.push(
      <Row
        key={i}
        line={line}
        prev={store.get(i - 1)}
        query={query}
        current={i === curLine}
        selected={!!selected && line.target === selected.target && (!selected.step || line.step === selected.step)}
        top={i * rowHeight}
        onLoadStored={onLoadStored}
      />,
    );
  }
  return (
    <section className="log-viewer" aria-label="Run output" onKeyDown={onKeyDown}>
      <div className="log-toolbar">
        <label className="log-search">
          <span className="sr-only">Search the output</span>
          <input
            ref={searchRef}
            type="search"
            placeholder="Search (Ctrl+F)"
            aria-label="Search the output"
            value={query}
            onChange={(e) => {
              setQuery(e.target.value);
              setCur(0);
            }}
            onKeyDown={(e) => {
              if (e.key === 'Enter') {
                e.preventDefault();
                step(e.shiftKey ? -1 : 1);
              } else if (e.key === 'Escape') {
                setQuery('');
                scrollRef.current?.focus();
              }
            }}
          />
        </label>
        <span className="muted log-matches" aria-live="polite">
          {query ? (matches.length ? `${curIdx + 1} of ${matches.length}` : 'no match') : ''}
        </span>
        <Button variant="ghost" aria-label="Previous match" disabled={!matches.length} onClick={() => step(-1)}>↑</Button>
        <Button variant="ghost" aria-label="Next match" disabled={!matches.length} onClick={() => step(1)}>↓</Button>
        <select aria-label="Show target" value={filter.target ?? ''} onChange={(e) => store.setFilter({ ...filter, target: e.target.value || undefined })}>
          <option value="">All targets</option>
          {options.targets}
        </select>
        <select aria-label="Show step" value={filter.step ?? ''} onChange={(e) => store.setFilter({ ...filter, step: e.target.value || undefined })}>
          <option value="">All steps</option>
          {options.steps}
        </select>
        <select
          aria-label="Jump to"
          value=""
          onChange={(e) => {
            const s = sections[Number(e.target.value)];
            if (!s) return;
            setSelected({ target: s.target, step: s.step });
            const i = store.indexOf(s.target, s.step);
            if (i >= 0) goTo(i);
          }}
        >
          <option value="">Jump to…</option>
          {options.jumps}
        </select>
        <span className="log-spacer" />
        <Button variant={follow ? 'ghost' : 'primary'} onClick={() => setFollow(true)} aria-pressed={follow} title="Follow new output (End)">
          {follow ? 'Following' : 'Follow (End)'}
        </Button>
        <Button onClick={() => void download()} busy={downloading}>Download</Button>
      </div>
      <div className="log-status muted">
        <SourceState source={source} />
        <span data-testid="log-count">{count.toLocaleString()} line{count === 1 ? '' : 's'}{count !== store.size ? ` shown of ${store.size.toLocaleString()}` : ''}</span>
        {store.gaps > 0 && (
          <span className="log-gapnote" data-testid="log-gaps">
            the live stream skipped events {store.gaps === 1 ? 'once' : `${store.gaps} times`}
            {onLoadStored && <button className="linklike" onClick={onLoadStored}>load the stored log</button>}
          </span>
        )}
        {!follow && <span className="log-paused">paused — press End or Follow to see new output</span>}
        {note && <span>{note}</span>}
      </div>
      {downloadError ? <ErrorBox error={downloadError} /> : null}
      <div ref={scrollRef} className="log-scroll" tabIndex={0} onScroll={onScroll} aria-label="Log lines" role="log">
        {count === 0 ? (
          <div className="log-empty muted">{emptyText(source)}</div>
        ) : (
          <div className="log-inner" style={{ height: count * rowHeight }}>{rows}</div>
        )}
      </div>
    </section>
  );
}

function emptyText(source: LogViewerProps['source']): string {
  if (source.kind === 'stored') return source.loading ? 'Loading the stored log…' : 'This run wrote no output.';
  if (source.state === 'ended') return 'The run ended without output.';
  return 'Waiting for output: lines appear here as the steps write them.';
}

function SourceState({ source }: { source: LogViewerProps['source'] }) {
  if (source.kind === 'stored') {
    if (source.error) return <StatusBadge status="load failed" tone="bad" />;
    return source.loading ? <StatusBadge status="loading stored log" tone="info" /> : <StatusBadge status="stored log" tone="idle" />;
  }
  switch (source.state) {
    case 'live':
      return <StatusBadge status="live" tone="ok" />;
    case 'connecting':
      return <StatusBadge status="connecting" tone="info" />;
    case 'reconnecting':
      return <span title={source.detail}><StatusBadge status="reconnecting" tone="warn" /></span>;
    case 'ended':
      return <StatusBadge status="stream ended" tone="idle" />;
    default:
      return <StatusBadge status="closed" tone="idle" />;
  }
}
