import { describe, expect, it } from 'vitest';
import { windowOf } from './LogViewer';

// Rows are 18 px; 12 rows of overscan each side.
describe('windowOf', () => {
  it('shows the tail while following, whatever the offset', () => {
    expect(windowOf(100_000, 0, 180, true)).toEqual([100_000 - 11 - 12, 100_000]);
  });
  it('shows the rows at the offset, with overscan, when not following', () => {
    expect(windowOf(100_000, 18 * 5000, 180, false)).toEqual([4988, 4988 + 11 + 24]);
  });
  it('never goes past either end', () => {
    expect(windowOf(5, 0, 180, false)).toEqual([0, 5]);
    expect(windowOf(5, 0, 180, true)).toEqual([0, 5]);
    expect(windowOf(0, 900, 180, false)).toEqual([0, 0]);
  });
  it('costs the same at a million lines as at ten', () => {
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) windowOf(1_000_000 + i, i * 18, 460, i % 2 === 0);
    expect(performance.now() - t0).toBeLessThan(200);
  });
});
