import { describe, expect, it } from 'vitest';
import { fromInput, toInput, type Schedule } from './form';
import { formatFire } from './routes';

const stored: Schedule = {
  id: 'sch_1', name: 'nightly', job: 'backup', params: { keep: 7 }, cron: '0 2 * * *', timezone: 'Europe/Paris', enabled: false,
  overlap: 'allow', catch_up: 'once', description: 'Nightly backup', owner: 'usr_1', created_at: '', updated_at: '', revision: 42, next_fires: [],
};

describe('schedule form', () => {
  it('edits a stored schedule and sends it back with its revision', () => {
    const f = toInput(stored);
    expect(f).toMatchObject({ name: 'nightly', job: 'backup', cron: '0 2 * * *', timezone: 'Europe/Paris', enabled: false, overlap: 'allow', catch_up: 'once' });
    expect(fromInput({ ...f, cron: ' @daily ' }, stored)).toEqual({
      name: 'nightly', job: 'backup', cron: '@daily', timezone: 'Europe/Paris', overlap: 'allow', catch_up: 'once', enabled: false,
      description: 'Nightly backup', params: { keep: 7 }, revision: 42,
    });
  });

  it('creates with the defaults the server would apply, and no revision', () => {
    const body = fromInput({ ...toInput(), name: 'n', job: 'j', cron: '*/5 * * * *', timezone: '' });
    expect(body).toEqual({ name: 'n', job: 'j', cron: '*/5 * * * *', timezone: 'UTC', overlap: 'skip', catch_up: 'skip', enabled: true });
  });

  it('shows fire times in the schedule\'s own zone, as the API wrote them', () => {
    expect(formatFire('2026-11-28T02:00:00+01:00')).toBe('Sat 28 Nov 2026 02:00 +01:00');
    expect(formatFire('2026-11-27T23:45:30Z')).toBe('Fri 27 Nov 2026 23:45:30 UTC');
    expect(formatFire('not a time')).toBe('not a time');
  });
});
