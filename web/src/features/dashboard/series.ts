// Runs over the last day in hourly buckets, by state, for the dashboard's
// chart. Pure functions so that the bucketing is tested on its own.

export const runStates = ['succeeded', 'failed', 'canceled', 'active'] as const;
export type RunState = (typeof runStates)[number];

export interface Bucket {
  /** Start of the hour this bucket counts. */
  start: Date;
  counts: Record<RunState, number>;
  total: number;
}

const hourMs = 3_600_000;

/** The chart's state for a run status: queued, waiting and running are "active". */
export function stateOf(status: string): RunState | null {
  switch (status) {
    case 'succeeded':
    case 'failed':
    case 'canceled':
      return status;
    case 'queued':
    case 'waiting':
    case 'running':
      return 'active';
    default:
      return null;
  }
}

/**
 * Counts runs by the hour they were created in, over the `hours` whole
 * hours that end with the current (partial) hour. Runs outside the window
 * or in an unknown state are left out.
 */
export function bucketRuns(runs: { status: string; created_at: string }[], now: Date, hours = 24): Bucket[] {
  const end = Math.floor(now.getTime() / hourMs) * hourMs + hourMs;
  const start = end - hours * hourMs;
  const buckets: Bucket[] = Array.from({ length: hours }, (_, i) => ({
    start: new Date(start + i * hourMs),
    counts: { succeeded: 0, failed: 0, canceled: 0, active: 0 },
    total: 0,
  }));
  for (const r of runs) {
    const t = Date.parse(r.created_at);
    const st = stateOf(r.status);
    if (Number.isNaN(t) || !st || t < start || t >= end) continue;
    const b = buckets[Math.floor((t - start) / hourMs)];
    if (!b) continue;
    b.counts[st]++;
    b.total++;
  }
  return buckets;
}

/** A round axis maximum at or above n: 1, 2, 5, 10, 20, 50, … */
export function niceMax(n: number): number {
  if (n <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

export function totals(buckets: Bucket[]): Record<RunState, number> {
  const t: Record<RunState, number> = { succeeded: 0, failed: 0, canceled: 0, active: 0 };
  for (const b of buckets) for (const s of runStates) t[s] += b.counts[s];
  return t;
}
