// Live updates: one websocket (GET /api/v1/events) tells the page which
// topics changed ("runs", "jobs" …), and every query whose key starts with
// a changed topic is refetched. Pages therefore never poll and never show
// refresh buttons; they key their queries by topic (see notes in
// app/routes.tsx and the README's Web UI section).
//
// The socket carries no data, so a missed message costs nothing but a
// refetch: after any reconnect every query is invalidated, because what
// changed while the socket was down is not replayed.
import { useEffect, useSyncExternalStore } from 'react';
import { useQueryClient, type QueryClient } from '@tanstack/react-query';
import { openSocket, session } from './client';

export type LiveStatus = 'connecting' | 'live' | 'offline';

/** The part of a WebSocket the live connection uses (tests pass a fake). */
export interface LiveSocket {
  onopen: ((ev: Event) => unknown) | null;
  onmessage: ((ev: MessageEvent) => unknown) | null;
  onclose: ((ev: CloseEvent) => unknown) | null;
  onerror: ((ev: Event) => unknown) | null;
  close(code?: number, reason?: string): void;
}

/** What GET /api/v1/events sends (EventsMessage in the OpenAPI document). */
interface EventsMessage {
  type: 'hello' | 'changed';
  topics: string[];
  index: number;
}

export interface LiveOptions {
  queryClient: QueryClient;
  /** Opens the events socket (default: openSocket('/api/v1/events')). */
  open?: () => LiveSocket;
  /** Renews the access token; false when there is no session (default: session.refresh). */
  refresh?: () => Promise<boolean>;
  /** Called on every status change. */
  onStatus?: (s: LiveStatus) => void;
  /** [0,1) for the jitter (default Math.random). */
  random?: () => number;
  /** First and largest reconnect delay in ms (defaults 500 and 30000). */
  minDelay?: number;
  maxDelay?: number;
}

/**
 * Keeps the events socket open until the returned stop() is called:
 * reconnects with exponential backoff and full jitter, renews the token
 * when a socket fails before it opens (a browser cannot see the 401 of a
 * websocket upgrade, so an unopened socket is treated as possibly expired),
 * and invalidates the queries the messages name.
 */
export function connectLive(opts: LiveOptions): () => void {
  const open = opts.open ?? (() => openSocket('/api/v1/events'));
  const refresh = opts.refresh ?? (() => session.refresh());
  const random = opts.random ?? Math.random;
  const minDelay = opts.minDelay ?? 500;
  const maxDelay = opts.maxDelay ?? 30_000;
  const qc = opts.queryClient;

  let stopped = false;
  let socket: LiveSocket | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let failures = 0; // consecutive connections that did not reach hello
  let everLive = false;
  let status: LiveStatus | null = null;
  const setStatus = (s: LiveStatus) => {
    if (s !== status) {
      status = s;
      opts.onStatus?.(s);
    }
  };

  const connect = () => {
    timer = null;
    if (stopped) return;
    setStatus('connecting');
    let opened = false;
    let helloSeen = false;
    const ws = open();
    socket = ws;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (ev) => {
      let m: EventsMessage;
      try {
        m = JSON.parse(String(ev.data)) as EventsMessage;
      } catch {
        return; // not ours; the server only sends JSON
      }
      if (m.type === 'hello') {
        helloSeen = true;
        failures = 0;
        setStatus('live');
        // Whatever changed while we were not listening is unknown.
        if (everLive) void qc.invalidateQueries();
        everLive = true;
      } else if (m.type === 'changed' && Array.isArray(m.topics) && m.topics.length) {
        const topics = new Set(m.topics);
        void qc.invalidateQueries({ predicate: (q) => topics.has(String(q.queryKey[0])) });
      }
    };
    ws.onerror = () => {
      /* onclose follows and decides */
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      if (stopped) return;
      setStatus('offline');
      if (!helloSeen) failures++;
      const retry = () => schedule(backoff());
      if (!opened) {
        // Possibly a 401: renew the token, or wait for a new session.
        void refresh().then((ok) => {
          if (stopped) return;
          if (ok) retry();
          else waitForSession();
        }, retry);
      } else {
        retry();
      }
    };
  };

  const backoff = () => {
    const ceiling = Math.min(maxDelay, minDelay * 2 ** Math.max(0, failures - 1));
    // Full jitter, but never less than minDelay/2: a server that just
    // came back is not stampeded by every tab at once.
    return Math.max(minDelay / 2, random() * ceiling);
  };

  const schedule = (ms: number) => {
    if (stopped || timer) return;
    timer = setTimeout(connect, ms);
  };

  let unsubscribe: (() => void) | null = null;
  const waitForSession = () => {
    unsubscribe ??= session.subscribe(() => {
      if (session.accessToken && !socket) {
        unsubscribe?.();
        unsubscribe = null;
        schedule(0);
      }
    });
  };

  // Back on the network: try now rather than at the end of a long backoff.
  const online = () => {
    if (!socket && !stopped) {
      if (timer) clearTimeout(timer);
      timer = null;
      schedule(0);
    }
  };
  globalThis.addEventListener?.('online', online);

  // Deferred, so that React's development double mount (mount, unmount,
  // mount) never opens a socket only to close it before it connects.
  schedule(0);
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    unsubscribe?.();
    globalThis.removeEventListener?.('online', online);
    const ws = socket;
    socket = null;
    ws?.close(1000, 'page closed');
  };
}

// The status is app-wide: one connection, read by any component.
let liveStatus: LiveStatus = 'connecting';
const statusListeners = new Set<() => void>();
function publishStatus(s: LiveStatus) {
  liveStatus = s;
  statusListeners.forEach((l) => l());
}

/** The live connection's state, for the shell's indicator. */
export function useLiveStatus(): LiveStatus {
  return useSyncExternalStore(
    (l) => {
      statusListeners.add(l);
      return () => statusListeners.delete(l);
    },
    () => liveStatus,
  );
}

/** Mount once inside the signed-in shell: it keeps the events socket open. */
export function LiveUpdates(): null {
  const queryClient = useQueryClient();
  useEffect(() => connectLive({ queryClient, onStatus: publishStatus }), [queryClient]);
  return null;
}
