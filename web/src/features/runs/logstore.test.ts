import { describe, expect, it, vi } from 'vitest';
import { LogStore } from './logstore';
import type { LogLine } from './types';

function chunk(over: Partial<LogLine> & { data: string; seq: number }): LogLine {
  return { target: 'web1', step: 'build', attempt_id: 'att_1', try: 1, stream: 'stdout', time: '2026-11-27T00:00:00Z', ...over };
}

/** A store whose frames run when the test says. */
function manual() {
  const frames: (() => void)[] = [];
  const store = new LogStore((f) => frames.push(f));
  const runFrames = () => {
    while (frames.length) frames.shift()!();
  };
  return { store, frames, runFrames };
}

describe('LogStore', () => {
  it('queues lines until the next frame and notifies once per frame', () => {
    const { store, frames, runFrames } = manual();
    const seen = vi.fn();
    store.subscribe(seen);
    store.add([chunk({ seq: 1, data: 'a\n' })]);
    store.add([chunk({ seq: 2, data: 'b\nc\n' })]);
    expect(store.length).toBe(0);
    expect(frames).toHaveLength(1); // one frame asked for, not one per chunk
    runFrames();
    expect(store.length).toBe(3);
    expect(seen).toHaveBeenCalledTimes(1);
    expect([0, 1, 2].map((i) => store.get(i)!.text)).toEqual(['a', 'b', 'c']);
  });

  it('ignores a chunk it already has (the stream and the stored log may both deliver it)', () => {
    const { store, runFrames } = manual();
    store.add([chunk({ seq: 1, data: 'once\n' })]);
    store.add([chunk({ seq: 1, data: 'once\n' }), chunk({ seq: 1, attempt_id: 'att_2', data: 'other attempt\n' })]);
    runFrames();
    expect(store.text()).toBe('once\nother attempt');
  });

  it('holds 100,000 lines across chunks and reads any of them back', () => {
    const { store, runFrames } = manual();
    const items: LogLine[] = [];
    for (let i = 0; i < 1000; i++) {
      let data = '';
      for (let j = 0; j < 100; j++) data += `line ${i * 100 + j}\n`;
      items.push(chunk({ seq: i + 1, data }));
    }
    store.add(items);
    runFrames();
    expect(store.length).toBe(100_000);
    expect(store.get(0)!.text).toBe('line 0');
    expect(store.get(4095)!.text).toBe('line 4095');
    expect(store.get(4096)!.text).toBe('line 4096');
    expect(store.get(99_999)!.text).toBe('line 99999');
    expect(store.get(100_000)).toBeUndefined();
  });

  it('appends a large burst over several frames, never all in one', () => {
    const { store, frames } = manual();
    let data = '';
    for (let i = 0; i < 30_000; i++) data += `l${i}\n`;
    store.add([chunk({ seq: 1, data })]);
    frames.shift()!();
    expect(store.length).toBe(25_000);
    expect(frames).toHaveLength(1); // the rest is asked for
    frames.shift()!();
    expect(store.length).toBe(30_000);
    expect(store.get(29_999)!.text).toBe('l29999');
    expect(frames).toHaveLength(0);
  });

  it('carries an SGR colour left open into the next lines of the same attempt and stream', () => {
    const { store, runFrames } = manual();
    store.add([
      chunk({ seq: 1, data: '\x1b[31mred starts\nstill red\n' }),
      chunk({ seq: 2, stream: 'stderr', data: 'other stream\n' }),
      chunk({ seq: 3, data: 'red too\x1b[0m\nplain\n' }),
    ]);
    runFrames();
    expect(store.text()).toBe('red starts\nstill red\nother stream\nred too\nplain');
    expect(store.get(0)!.style).toBeUndefined();
    expect(store.get(1)!.style).toEqual({ fg: 'var(--ansi-1)' });
    expect(store.get(2)!.style).toBeUndefined(); // stderr has its own state
    expect(store.get(3)!.style).toEqual({ fg: 'var(--ansi-1)' });
    expect(store.get(4)!.style).toBeUndefined();
  });

  it('searches the shown text without escapes, smart-case, and extends a search from an index', () => {
    const { store, runFrames } = manual();
    store.add([chunk({ seq: 1, data: 'Error: one\n\x1b[31merr\x1b[0mor two\nfine\nERROR three\n' })]);
    runFrames();
    expect(store.search('error')).toEqual([0, 1, 3]);
    expect(store.search('Error')).toEqual([0]);
    expect(store.search('error', 2)).toEqual([3]);
    expect(store.search('')).toEqual([]);
  });

  it('filters by target and step, keeps the filter as lines arrive, and lists sections in arrival order', () => {
    const { store, runFrames } = manual();
    store.add([
      chunk({ seq: 1, data: 'w1 build\n' }),
      chunk({ seq: 1, target: 'web2', attempt_id: 'att_2', data: 'w2 build\n' }),
      chunk({ seq: 1, step: 'test', attempt_id: 'att_3', data: 'w1 test\n' }),
    ]);
    runFrames();
    expect(store.sections().map((s) => `${s.target}/${s.step}@${s.first}`)).toEqual(['web1/build@0', 'web2/build@1', 'web1/test@2']);
    store.setFilter({ target: 'web1' });
    expect(store.text()).toBe('w1 build\nw1 test');
    store.add([chunk({ seq: 2, data: 'w1 build 2\n' }), chunk({ seq: 2, target: 'web2', attempt_id: 'att_2', data: 'w2 build 2\n' })]);
    runFrames();
    expect(store.text()).toBe('w1 build\nw1 test\nw1 build 2');
    expect(store.size).toBe(5);
    store.setFilter({ target: 'web1', step: 'test' });
    expect(store.text()).toBe('w1 test');
    expect(store.indexOf('web1', 'test')).toBe(0);
    expect(store.indexOf('web2')).toBe(-1);
    store.setFilter({});
    expect(store.length).toBe(5);
    expect(store.indexOf('web2', 'build')).toBe(1);
  });

  it('shows a gap marker under any filter', () => {
    const { store, runFrames } = manual();
    store.add([chunk({ seq: 1, data: 'before\n' })]);
    store.addGap(5, 9);
    runFrames();
    store.setFilter({ target: 'elsewhere' });
    expect(store.length).toBe(1);
    expect(store.get(0)!.gap).toEqual({ from: 5, to: 9 });
    expect(store.gaps).toBe(1);
    expect(store.get(0)!.text).toContain('5 events skipped');
  });

  it('clear forgets lines and what it had seen, and counts as a reset', () => {
    const { store, runFrames } = manual();
    store.add([chunk({ seq: 1, data: 'x\n' })]);
    runFrames();
    const resets = store.resets;
    store.clear();
    expect(store.length).toBe(0);
    expect(store.resets).toBe(resets + 1);
    store.add([chunk({ seq: 1, data: 'x\n' })]);
    runFrames();
    expect(store.length).toBe(1);
  });
});
