// The log viewer's line store. Output arrives in chunks (one stream event
// or REST item can hold many lines) far faster than React should render:
// the store queues what arrives and appends it once per animation frame,
// then tells its subscribers once. Lines live in fixed-size chunks so that
// 100,000+ lines never mean copying one huge array, and a filter keeps an
// index of the lines it shows rather than a second copy of them.

import { endStyle, isPlain, stripAnsi, type Style } from './ansi';
import type { LogLine } from './types';

export interface Line {
  target: string;
  step: string;
  attempt: string;
  stream: string;
  /** The line as received (ANSI escapes included, no newline). */
  text: string;
  /** The line as shown, for search. */
  plain: string;
  /** plain in lower case, made on the first search that needs it. */
  lower?: string;
  /** The SGR style in force at the line's start, when earlier lines left one set. */
  style?: Style;
  /** Set on a marker row: the stream skipped these events. */
  gap?: { from: number; to: number };
}

export interface Filter {
  target?: string;
  step?: string;
}

export interface Section {
  target: string;
  step: string;
  /** The first line of the section, as an index into all lines. */
  first: number;
}

const chunkSize = 4096;
/** At most this many lines join per frame, so that a burst (a replay, a stored log) never freezes the page. */
const maxPerFlush = 25_000;

export type Scheduler = (flush: () => void) => void;

const frame: Scheduler = (f) => {
  if (typeof requestAnimationFrame === 'function' && typeof document !== 'undefined' && !document.hidden) {
    requestAnimationFrame(() => f());
  } else {
    // A hidden tab gets no animation frames; keep appending, less often.
    setTimeout(f, 100);
  }
};

export class LogStore {
  private chunks: Line[][] = [];
  private total = 0;
  private pending: Line[] = [];
  private scheduled = false;
  private seen = new Set<string>();
  /** SGR state per attempt and stream, carried from line to line. */
  private carry = new Map<string, Style>();
  private filter: Filter = {};
  /** Indices into all lines of the lines the filter lets through; null without a filter. */
  private index: number[] | null = null;
  private sectionList: Section[] = [];
  private sectionKeys = new Set<string>();
  private version = 0;
  /** Changes whenever shown lines are replaced rather than appended (clear, filter). */
  resets = 0;
  /** How many gap markers the store holds. */
  gaps = 0;
  private listeners = new Set<() => void>();
  private readonly schedule: Scheduler;

  constructor(schedule: Scheduler = frame) {
    this.schedule = schedule;
  }

  /** Queues output chunks; a chunk already added (same attempt and seq) is ignored. */
  add(items: LogLine[]): void {
    for (const it of items) {
      const key = `${it.attempt_id}:${it.seq}`;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      const data = it.data.endsWith('\n') ? it.data.slice(0, -1) : it.data;
      const carryKey = `${it.attempt_id}:${it.stream}`;
      let style = this.carry.get(carryKey) ?? {};
      for (const text of data.split('\n')) {
        const line: Line = { target: it.target, step: it.step, attempt: it.attempt_id, stream: it.stream, text, plain: stripAnsi(text) };
        if (!isPlain(style)) line.style = style;
        style = endStyle(text, style);
        this.pending.push(line);
      }
      if (isPlain(style)) this.carry.delete(carryKey);
      else this.carry.set(carryKey, style);
    }
    this.kick();
  }

  /** Queues a marker row: the stream skipped events from..to. */
  addGap(from: number, to: number): void {
    const n = to - from + 1;
    const text = `… ${n} event${n === 1 ? '' : 's'} skipped by the live stream (${from}-${to}); the stored log has them`;
    this.pending.push({ target: '', step: '', attempt: '', stream: 'gap', text, plain: text, gap: { from, to } });
    this.gaps++;
    this.kick();
  }

  /** Forgets every line (before loading the stored log in their place). */
  clear(): void {
    this.chunks = [];
    this.total = 0;
    this.pending = [];
    this.seen.clear();
    this.carry.clear();
    this.sectionList = [];
    this.sectionKeys.clear();
    this.gaps = 0;
    this.index = this.index ? [] : null;
    this.resets++;
    this.bump();
  }

  private kick() {
    if (this.scheduled || this.pending.length === 0) return;
    this.scheduled = true;
    this.schedule(() => this.flush());
  }

  /** Appends what is queued and notifies subscribers once. Normally called by the scheduler. */
  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    let batch = this.pending;
    if (batch.length > maxPerFlush) {
      this.pending = batch.slice(maxPerFlush);
      batch = batch.slice(0, maxPerFlush);
    } else {
      this.pending = [];
    }
    for (const line of batch) {
      const at = this.total;
      let chunk = this.chunks[this.chunks.length - 1];
      if (!chunk || chunk.length === chunkSize) {
        chunk = [];
        this.chunks.push(chunk);
      }
      chunk.push(line);
      this.total++;
      if (!line.gap) {
        const key = `${line.target}\u0000${line.step}`;
        if (!this.sectionKeys.has(key)) {
          this.sectionKeys.add(key);
          this.sectionList.push({ target: line.target, step: line.step, first: at });
        }
      }
      if (this.index && this.matches(line)) this.index.push(at);
    }
    this.bump();
    this.kick(); // what is left, next frame
  }

  private bump() {
    this.version++;
    this.listeners.forEach((l) => l());
  }

  private matches(l: Line): boolean {
    if (l.gap) return true; // a gap concerns every target
    return (!this.filter.target || l.target === this.filter.target) && (!this.filter.step || l.step === this.filter.step);
  }

  /** Shows only one target's and/or one step's lines ({} shows all). */
  setFilter(f: Filter): void {
    this.filter = { ...f };
    if (!f.target && !f.step) {
      this.index = null;
    } else {
      const idx: number[] = [];
      for (let i = 0; i < this.total; i++) if (this.matches(this.at(i))) idx.push(i);
      this.index = idx;
    }
    this.resets++;
    this.bump();
  }

  getFilter(): Filter {
    return this.filter;
  }

  private at(i: number): Line {
    return this.chunks[Math.floor(i / chunkSize)]![i % chunkSize]!;
  }

  /** How many lines the filter shows. */
  get length(): number {
    return this.index ? this.index.length : this.total;
  }

  /** Every line held, whatever the filter. */
  get size(): number {
    return this.total;
  }

  /** The i-th line the filter shows. */
  get(i: number): Line | undefined {
    if (i < 0 || i >= this.length) return undefined;
    return this.at(this.index ? this.index[i]! : i);
  }

  /** The (target, step) pairs in the order their first line arrived. */
  sections(): readonly Section[] {
    return this.sectionList;
  }

  /** Where the first shown line of a target (and step, when given) is, or -1. */
  indexOf(target: string, step?: string): number {
    for (let i = 0; i < this.length; i++) {
      const l = this.get(i)!;
      if (l.target === target && (!step || l.step === step)) return i;
    }
    return -1;
  }

  /**
   * The shown lines from index `from` on containing query, as indices in
   * the filtered view. Case matters only when the query has an upper-case
   * letter.
   */
  search(query: string, from = 0): number[] {
    if (!query) return [];
    const sensitive = query !== query.toLowerCase();
    const q = sensitive ? query : query.toLowerCase();
    const out: number[] = [];
    for (let i = from; i < this.length; i++) {
      const l = this.get(i)!;
      const p = sensitive ? l.plain : (l.lower ??= l.plain.toLowerCase());
      if (p.includes(q)) out.push(i);
    }
    return out;
  }

  subscribe = (l: () => void): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  getVersion = (): number => this.version;

  /** The lines shown, as the text download would have them (for tests and copying). */
  text(): string {
    const out: string[] = [];
    for (let i = 0; i < this.length; i++) out.push(this.get(i)!.plain);
    return out.join('\n');
  }
}
