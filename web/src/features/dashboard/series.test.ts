import { describe, expect, it } from 'vitest';
import { bucketRuns, niceMax, stateOf, totals } from './series';

const now = new Date('2026-11-27T15:20:00Z');
const run = (status: string, created_at: string) => ({ status, created_at });

describe('bucketRuns', () => {
  it('makes 24 hourly buckets that end with the current hour', () => {
    const b = bucketRuns([], now);
    expect(b).toHaveLength(24);
    expect(b[0]!.start.toISOString()).toBe('2026-11-26T16:00:00.000Z');
    expect(b[23]!.start.toISOString()).toBe('2026-11-27T15:00:00.000Z');
  });

  it('counts each run in the hour it was created, by state', () => {
    const b = bucketRuns(
      [
        run('succeeded', '2026-11-27T15:05:00Z'),
        run('failed', '2026-11-27T15:19:59Z'),
        run('running', '2026-11-27T14:59:59Z'),
        run('queued', '2026-11-27T14:00:00Z'),
        run('waiting', '2026-11-26T16:00:00Z'),
        run('canceled', '2026-11-27T10:30:00Z'),
      ],
      now,
    );
    expect(b[23]!.counts).toEqual({ succeeded: 1, failed: 1, canceled: 0, active: 0 });
    expect(b[22]!.counts.active).toBe(2);
    expect(b[0]!.counts.active).toBe(1);
    expect(b[18]!.counts.canceled).toBe(1);
    expect(b.reduce((n, x) => n + x.total, 0)).toBe(6);
  });

  it('leaves out runs before the window, in the future, unparsable or in an unknown state', () => {
    const b = bucketRuns(
      [
        run('succeeded', '2026-11-26T15:59:59Z'),
        run('succeeded', '2026-11-27T16:00:00Z'),
        run('succeeded', 'yesterday'),
        run('exploded', '2026-11-27T15:00:00Z'),
      ],
      now,
    );
    expect(b.every((x) => x.total === 0)).toBe(true);
  });

  it('sums the buckets per state', () => {
    const b = bucketRuns([run('failed', '2026-11-27T01:00:00Z'), run('failed', '2026-11-27T02:00:00Z')], now);
    expect(totals(b)).toEqual({ succeeded: 0, failed: 2, canceled: 0, active: 0 });
  });
});

describe('stateOf and niceMax', () => {
  it('groups the live states as active', () => {
    expect(['queued', 'waiting', 'running'].map(stateOf)).toEqual(['active', 'active', 'active']);
    expect(stateOf('nope')).toBeNull();
  });
  it('rounds axis maxima up to 1, 2 or 5 times a power of ten', () => {
    expect([0, 1, 2, 3, 7, 10, 11, 49, 51, 260].map(niceMax)).toEqual([1, 1, 2, 5, 10, 10, 20, 50, 100, 500]);
  });
});
