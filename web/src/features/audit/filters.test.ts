import { describe, expect, it } from 'vitest';
import { auditQuery, emptyFilters, filtersFromParams, filtersToParams, localToRFC3339 } from './filters';

describe('auditQuery', () => {
  it('sends nothing for an empty filter', () => {
    expect(auditQuery(emptyFilters)).toEqual({ query: '', problems: {} });
  });

  it('sends each set field, trimmed, and the page extras', () => {
    const { query, problems } = auditQuery({ ...emptyFilters, actor: ' admin ', action: 'user.create', outcome: 'denied', actor_type: 'token' }, { limit: 50, cursor: 'abc' });
    expect(problems).toEqual({});
    const p = new URLSearchParams(query.slice(1));
    expect(Object.fromEntries(p)).toEqual({ actor: 'admin', action: 'user.create', outcome: 'denied', actor_type: 'token', limit: '50', cursor: 'abc' });
  });

  it('turns local date-times into RFC 3339 UTC', () => {
    const local = '2026-11-27T10:30';
    const want = new Date(local).toISOString().replace('.000Z', 'Z');
    const p = new URLSearchParams(auditQuery({ ...emptyFilters, since: local }).query.slice(1));
    expect(p.get('since')).toBe(want);
    expect(want).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('names an unparsable time or an until before since instead of sending them', () => {
    expect(auditQuery({ ...emptyFilters, since: 'soon' }).problems).toEqual({ since: 'is not a date and time' });
    expect(auditQuery({ ...emptyFilters, since: '2026-11-27T10:00', until: '2026-11-26T10:00' }).problems).toEqual({ until: 'is before "since"' });
    expect(localToRFC3339('')).toBe('');
  });
});

describe('filters in the URL', () => {
  it('round-trips through search params, leaving out empty fields', () => {
    const f = { ...emptyFilters, actor: 'alice', since: '2026-11-27T10:00' };
    const params = new URLSearchParams(filtersToParams(f));
    expect(params.toString()).toBe('actor=alice&since=2026-11-27T10%3A00');
    expect(filtersFromParams(params)).toEqual(f);
  });
});
