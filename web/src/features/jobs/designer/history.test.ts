import { describe, expect, it } from 'vitest';
import { canRedo, canUndo, coalesceMs, createHistory, historyLimit, push, redo, undo } from './history';

describe('history', () => {
  it('undoes and redoes in order, and a new change drops the redo branch', () => {
    let h = createHistory(0);
    h = push(h, 1, undefined, 0);
    h = push(h, 2, undefined, 10);
    expect(canUndo(h)).toBe(true);
    h = undo(h);
    expect(h.present).toBe(1);
    h = undo(h);
    expect(h.present).toBe(0);
    expect(canUndo(h)).toBe(false);
    expect(undo(h)).toBe(h);
    h = redo(h);
    expect(h.present).toBe(1);
    h = push(h, 5, undefined, 20);
    expect(canRedo(h)).toBe(false);
    expect([...h.past, h.present]).toEqual([0, 1, 5]);
  });

  it('coalesces pushes with one key within the window', () => {
    let h = createHistory('');
    h = push(h, 'a', 'steps[0].with.command', 0);
    h = push(h, 'ab', 'steps[0].with.command', 300);
    h = push(h, 'abc', 'steps[0].with.command', 600);
    expect(h.past).toEqual(['']);
    h = push(h, 'abcd', 'steps[0].with.command', 600 + coalesceMs + 1);
    expect(h.past).toEqual(['', 'abc']);
    h = push(h, 'x', 'other', 600 + coalesceMs + 2);
    expect(h.past).toEqual(['', 'abc', 'abcd']);
  });

  it('keeps at most the limit', () => {
    let h = createHistory(0);
    for (let i = 1; i <= historyLimit + 50; i++) h = push(h, i, undefined, i);
    expect(h.past.length).toBe(historyLimit);
    expect(h.past[0]).toBe(50);
  });

  it('ignores a push of the same state', () => {
    const h = createHistory({ a: 1 });
    expect(push(h, h.present)).toBe(h);
  });
});
