import type { Tone } from '../../components/ui';

// Colours for run, target and step states (always shown with their text).
const tones: Record<string, Tone> = {
  succeeded: 'ok',
  failed: 'bad', timed_out: 'bad', lost: 'bad', rejected: 'bad', expired: 'bad',
  running: 'info',
  waiting: 'warn', queued: 'warn', pending: 'idle', retrying: 'warn',
  canceled: 'idle', skipped: 'idle', approved: 'ok',
};

export function stepTone(status: string): Tone {
  return tones[status] ?? 'idle';
}
