import { qs } from '../../api/client';

// The audit log's filters, kept in the page URL (so that a filtered view
// can be shared) and turned into the API's query string.

export interface AuditFilters {
  actor: string;
  action: string;
  resource: string;
  outcome: '' | 'success' | 'failure' | 'denied';
  actor_type: '' | 'user' | 'token' | 'agent' | 'system';
  node: string;
  /** datetime-local values ("2026-11-27T10:00"), in the browser's time zone. */
  since: string;
  until: string;
}

export const emptyFilters: AuditFilters = { actor: '', action: '', resource: '', outcome: '', actor_type: '', node: '', since: '', until: '' };
const keys = Object.keys(emptyFilters) as (keyof AuditFilters)[];

export function filtersFromParams(p: URLSearchParams): AuditFilters {
  const f = { ...emptyFilters } as Record<keyof AuditFilters, string>;
  for (const k of keys) f[k] = p.get(k) ?? '';
  return f as AuditFilters;
}

export function filtersToParams(f: AuditFilters): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) if (f[k].trim()) out[k] = f[k].trim();
  return out;
}

/** A datetime-local value as RFC 3339 in UTC; '' for empty; null when unparsable. */
export function localToRFC3339(v: string): string | null {
  if (!v.trim()) return '';
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return null;
  return d.toISOString().replace(/\.000Z$/, 'Z');
}

/**
 * The API query string for a filter (without cursor and format), or the
 * problems that stop it being sent, keyed by field.
 */
export function auditQuery(f: AuditFilters, extra: Record<string, string | number | undefined> = {}): { query: string; problems: Record<string, string> } {
  const problems: Record<string, string> = {};
  const since = localToRFC3339(f.since);
  const until = localToRFC3339(f.until);
  if (since === null) problems.since = 'is not a date and time';
  if (until === null) problems.until = 'is not a date and time';
  if (since && until && since > until) problems.until = 'is before "since"';
  const query = qs({
    actor: f.actor.trim(), actor_type: f.actor_type, action: f.action.trim(), resource: f.resource.trim(),
    outcome: f.outcome, node: f.node.trim(), since: since ?? undefined, until: until ?? undefined, ...extra,
  });
  return { query, problems };
}
