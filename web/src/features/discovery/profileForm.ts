// The discovery profile form and its conversion to the API's
// ProfileInput. Client checks mirror the server's obvious rules with the
// same field paths; the server (which also checks the agent's allowed
// ranges) stays the judge.

import type { Profile } from './types';

export interface ProfileFormValues {
  name: string;
  agent: string;
  /** CIDR prefixes, one per line or comma separated. */
  cidrs: string;
  /** Ports and ranges ("22, 80, 8000-8100"); empty means the scanner's default set. */
  ports: string;
  schedule: string;
  timeZone: string;
  concurrency: string;
  rate: string;
  timeout: string;
  bannerTimeout: string;
  resolve: boolean;
  autoImport: boolean;
  autoImportPorts: string;
  autoImportTags: string;
}

export const emptyProfileForm: ProfileFormValues = {
  name: '', agent: '', cidrs: '', ports: '', schedule: '', timeZone: '', concurrency: '', rate: '', timeout: '', bannerTimeout: '',
  resolve: true, autoImport: false, autoImportPorts: '22', autoImportTags: '',
};

const list = (s: string) => s.split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);
const nameRE = /^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$/;
const durationRE = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;

/** Reports whether s is an IPv4 or IPv6 CIDR prefix (or a bare address). */
export function isCIDR(s: string): boolean {
  const [addr, bits, extra] = s.split('/');
  if (extra !== undefined || !addr) return false;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  let max: number;
  if (v4) {
    if (v4.slice(1).some((o) => Number(o) > 255)) return false;
    max = 32;
  } else if (/^[0-9a-fA-F:]+$/.test(addr) && addr.includes(':') && (addr.match(/::/g)?.length ?? 0) <= 1) {
    max = 128;
  } else return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max;
}

/** Reports whether s is a port or a low-high range of ports. */
export function isPortSpec(s: string): boolean {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
  if (!m) return false;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  return lo >= 1 && hi <= 65535 && lo <= hi;
}

export function validateProfile(v: ProfileFormValues): Record<string, string> {
  const errs: Record<string, string> = {};
  if (!nameRE.test(v.name)) errs.name = '1 to 63 lower-case letters, digits and _ . -, starting and ending with a letter or digit.';
  if (!v.agent) errs.agent = 'Choose the agent that scans.';
  const cidrs = list(v.cidrs);
  if (cidrs.length === 0) errs.cidrs = 'Name at least one range, such as 10.0.0.0/24.';
  const badC = cidrs.filter((c) => !isCIDR(c));
  if (badC.length) errs.cidrs = `Not a CIDR prefix: ${badC.join(', ')}`;
  const badP = list(v.ports).filter((p) => !isPortSpec(p));
  if (badP.length) errs.ports = `Ports are 1 to 65535, or ranges such as 8000-8100: ${badP.join(', ')}`;
  for (const [field, val, max] of [['concurrency', v.concurrency, 1024], ['rate', v.rate, 1_000_000]] as const) {
    if (val && (!/^\d+$/.test(val) || Number(val) < 1 || Number(val) > max)) errs[field] = `A whole number from 1 to ${max}, or empty for the default.`;
  }
  if (v.timeout && !durationRE.test(v.timeout)) errs.timeout = 'A duration such as 500ms or 2s.';
  if (v.bannerTimeout && !durationRE.test(v.bannerTimeout)) errs.banner_timeout = 'A duration such as 500ms or 2s.';
  if (v.timeZone && !v.schedule) errs.time_zone = 'A time zone is only for a schedule.';
  if (v.schedule && !v.schedule.startsWith('@') && v.schedule.trim().split(/\s+/).length !== 5) errs.schedule = 'Five fields (minute hour day month weekday), or @hourly, @daily…';
  if (v.autoImport) {
    const ports = list(v.autoImportPorts);
    if (ports.length === 0 || ports.some((p) => !/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535)) errs['auto_import.ports'] = 'Ports (1 to 65535) a host must have open to be imported.';
  }
  return errs;
}

function parseTags(s: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const p of s.split(/[,\n]+/).map((x) => x.trim()).filter(Boolean)) {
    const i = p.indexOf('=');
    if (i > 0) out[p.slice(0, i).trim()] = p.slice(i + 1).trim();
  }
  return Object.keys(out).length ? out : undefined;
}

/** The body of POST (create) or PUT (replace) /api/v1/discovery/profiles. */
export function toProfileInput(v: ProfileFormValues, revision?: number): Record<string, unknown> {
  const body: Record<string, unknown> = { name: v.name, agent: v.agent, cidrs: list(v.cidrs) };
  const ports = list(v.ports);
  if (ports.length) body.ports = ports;
  if (v.schedule.trim()) body.schedule = v.schedule.trim();
  if (v.timeZone.trim()) body.time_zone = v.timeZone.trim();
  if (v.concurrency) body.concurrency = Number(v.concurrency);
  if (v.rate) body.rate = Number(v.rate);
  if (v.timeout) body.timeout = v.timeout;
  if (v.bannerTimeout) body.banner_timeout = v.bannerTimeout;
  body.resolve = v.resolve;
  if (v.autoImport) body.auto_import = { ports: list(v.autoImportPorts).map(Number), tags: parseTags(v.autoImportTags) };
  if (revision) body.revision = revision;
  return body;
}

export function profileToForm(p: Profile): ProfileFormValues {
  return {
    name: p.name,
    agent: p.agent,
    cidrs: p.cidrs.join('\n'),
    ports: (p.ports ?? []).join(', '),
    schedule: p.schedule ?? '',
    timeZone: p.time_zone ?? '',
    concurrency: p.concurrency ? String(p.concurrency) : '',
    rate: p.rate ? String(p.rate) : '',
    timeout: p.timeout ?? '',
    bannerTimeout: p.banner_timeout ?? '',
    resolve: p.resolve ?? true,
    autoImport: !!p.auto_import,
    autoImportPorts: (p.auto_import?.ports ?? [22]).join(', '),
    autoImportTags: Object.entries(p.auto_import?.tags ?? {}).map(([k, val]) => `${k}=${val}`).join(', '),
  };
}

/** Percent done of a scan, 0 to 100; null while the total is unknown. */
export function percent(p: { probed: number; total: number }): number | null {
  if (!p.total) return null;
  return Math.min(100, Math.round((p.probed / p.total) * 100));
}
