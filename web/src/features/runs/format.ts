import type { Run } from './types';

// How run facts read on the page.

export function duration(from?: string, to?: string): string {
  if (!from) return '—';
  const ms = (to ? new Date(to).getTime() : Date.now()) - new Date(from).getTime();
  if (ms < 0) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function triggerText(t: Run['trigger']): string {
  const by = t.by || 'unknown';
  switch (t.kind) {
    case 'schedule':
      return `schedule ${t.schedule ?? t.schedule_id ?? ''} (as ${by})`;
    case 'rerun':
      return `${by}, rerunning ${t.rerun_of ?? 'a run'}`;
    case 'webhook':
      return `webhook (as ${by})`;
    default:
      return by;
  }
}
