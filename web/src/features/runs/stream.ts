// Follows one run's live stream (GET /api/v1/runs/{id}/stream): hello,
// run, attempt, log, gap and end events, numbered per run. When the socket
// drops before "end", it reconnects with backoff and resumes after the last
// event it handled (?after=SEQ&epoch=EPOCH), as the CLI's watcher does. A
// gap (the server skipped events for a slow client, or they left its ring)
// is reported so the viewer can show it and offer the stored log.

import type { Hello, LogLine, StreamEvent } from './types';

/** The part of a WebSocket the client uses; tests pass a fake. */
export interface SocketLike {
  onopen: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
  close(code?: number, reason?: string): void;
}

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'ended' | 'closed';

export interface StreamHandlers {
  onLog(lines: LogLine[]): void;
  /** The run or one of its steps changed (the data is the event's). */
  onChange(type: 'run' | 'attempt', data: unknown): void;
  onGap(from: number, to: number): void;
  /** The server started over (another epoch): what was shown may be incomplete. */
  onRestart(): void;
  onEnd(): void;
  onState(s: StreamState, detail?: string): void;
}

export interface StreamOptions {
  open: (path: string) => SocketLike;
  /** Called before reopening a socket that never opened (e.g. to renew the token). */
  renew?: () => Promise<unknown>;
  /** Backoff bounds in ms (defaults 500 and 10000). */
  minDelay?: number;
  maxDelay?: number;
  random?: () => number;
  setTimer?: (f: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
}

export class RunStream {
  /** The seq of the last event handled: where a reconnect resumes. */
  after = 0;
  epoch = '';
  state: StreamState = 'connecting';
  private sock: SocketLike | null = null;
  private timer: unknown = null;
  private failures = 0;
  private stopped = false;
  private opened = false;

  constructor(
    readonly runID: string,
    private readonly h: StreamHandlers,
    private readonly o: StreamOptions,
  ) {}

  start(): void {
    this.connect();
  }

  /** Closes the socket and stops reconnecting. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) (this.o.clearTimer ?? clearTimeout)(this.timer as ReturnType<typeof setTimeout>);
    this.timer = null;
    const s = this.sock;
    this.sock = null;
    if (s) {
      s.onopen = s.onmessage = s.onerror = null;
      s.onclose = null;
      s.close(1000, 'viewer closed');
    }
    if (this.state !== 'ended') this.setState('closed');
  }

  /** The path the next connection asks for. */
  path(): string {
    const p = new URLSearchParams();
    if (this.after > 0) p.set('after', String(this.after));
    if (this.epoch) p.set('epoch', this.epoch);
    const q = p.toString();
    return `/api/v1/runs/${encodeURIComponent(this.runID)}/stream${q ? `?${q}` : ''}`;
  }

  private setState(s: StreamState, detail?: string) {
    this.state = s;
    this.h.onState(s, detail);
  }

  private connect() {
    if (this.stopped) return;
    this.opened = false;
    let sock: SocketLike;
    try {
      sock = this.o.open(this.path());
    } catch (e) {
      this.retry(e instanceof Error ? e.message : String(e));
      return;
    }
    this.sock = sock;
    sock.onopen = () => {
      this.opened = true;
    };
    sock.onmessage = (m) => this.message(m.data);
    sock.onerror = () => {
      /* onclose follows and decides */
    };
    sock.onclose = (ev) => {
      this.sock = null;
      if (this.stopped || this.state === 'ended') return;
      this.retry(ev.reason || `connection closed (${ev.code})`);
    };
  }

  private retry(why: string) {
    if (this.stopped) return;
    this.failures++;
    const min = this.o.minDelay ?? 500;
    const max = this.o.maxDelay ?? 10_000;
    const base = Math.min(max, min * 2 ** Math.min(this.failures - 1, 16));
    const delay = Math.round(base / 2 + (this.o.random ?? Math.random)() * (base / 2));
    this.setState('reconnecting', why);
    const neverOpened = !this.opened;
    this.timer = (this.o.setTimer ?? setTimeout)(() => {
      this.timer = null;
      if (neverOpened && this.o.renew) {
        // A refused upgrade is most often an expired token.
        void this.o.renew().finally(() => this.connect());
      } else {
        this.connect();
      }
    }, delay);
  }

  private message(raw: unknown) {
    let ev: StreamEvent;
    try {
      ev = JSON.parse(String(raw)) as StreamEvent;
    } catch {
      return; // not ours
    }
    // A gap's seq is the last event it skipped, a hello's the one the
    // stream starts after: resuming after seq is always right.
    if (typeof ev.seq === 'number') this.after = ev.seq;
    switch (ev.type) {
      case 'hello': {
        const h = ev.data as Hello | undefined;
        if (h?.epoch) this.epoch = h.epoch;
        this.failures = 0;
        this.setState('live');
        if (h?.restarted) this.h.onRestart();
        break;
      }
      case 'log':
        // The store batches lines per animation frame; nothing to gain here.
        if (ev.data) this.h.onLog([ev.data as LogLine]);
        break;
      case 'run':
      case 'attempt':
        this.h.onChange(ev.type, ev.data);
        break;
      case 'gap':
        this.h.onGap(ev.from ?? 0, ev.to ?? ev.seq);
        break;
      case 'end':
        this.setState('ended');
        this.h.onEnd();
        break;
    }
  }
}
