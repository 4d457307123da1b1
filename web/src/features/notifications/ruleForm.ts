// The rule form and its conversion to the API's Rule.

import type { Rule } from './types';

export interface RuleFormValues {
  name: string;
  description: string;
  events: string[];
  channels: string[];
  jobs: string;
  tags: string;
  groups: string;
  minSeverity: '' | 'info' | 'warning' | 'critical';
  template: string;
  throttleMax: string;
  throttleWindow: string;
  enabled: boolean;
}

export const emptyRuleForm: RuleFormValues = {
  name: '', description: '', events: ['run.failed'], channels: [], jobs: '', tags: '', groups: '', minSeverity: '', template: '', throttleMax: '', throttleWindow: '', enabled: true,
};

const list = (s: string) => s.split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);

function parseTags(s: string): { tags: Record<string, string>; bad: string[] } {
  const tags: Record<string, string> = {};
  const bad: string[] = [];
  for (const p of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const i = p.indexOf('=');
    if (i <= 0) bad.push(p);
    else tags[p.slice(0, i).trim()] = p.slice(i + 1).trim();
  }
  return { tags, bad };
}

export function validateRule(v: RuleFormValues): Record<string, string> {
  const e: Record<string, string> = {};
  if (!/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(v.name)) e.name = '1 to 63 lower-case letters, digits and _ . -, starting with a letter or digit.';
  if (v.events.length === 0) e.events = 'Choose at least one event.';
  if (v.channels.length === 0) e.channels = 'Choose at least one channel.';
  const t = parseTags(v.tags);
  if (t.bad.length) e['filter.tags'] = `Must be key=value: ${t.bad.join(', ')}`;
  if (v.throttleMax || v.throttleWindow) {
    if (!/^\d+$/.test(v.throttleMax) || Number(v.throttleMax) < 1) e['throttle.max'] = 'A throttle needs a count of at least 1 and a window such as 5m.';
    else if (!/^(\d+(\.\d+)?(s|m|h))+$/.test(v.throttleWindow)) e['throttle.window'] = 'A window such as 30s, 5m or 1h.';
  }
  return e;
}

export function toRule(v: RuleFormValues, revision?: number): Record<string, unknown> {
  const filter: Record<string, unknown> = {};
  if (list(v.jobs).length) filter.jobs = list(v.jobs);
  const { tags } = parseTags(v.tags);
  if (Object.keys(tags).length) filter.tags = tags;
  if (list(v.groups).length) filter.groups = list(v.groups);
  if (v.minSeverity) filter.min_severity = v.minSeverity;
  const body: Record<string, unknown> = { name: v.name, description: v.description || undefined, events: v.events, channels: v.channels, enabled: v.enabled };
  if (Object.keys(filter).length) body.filter = filter;
  if (v.template) body.template = v.template;
  if (v.throttleMax) body.throttle = { max: Number(v.throttleMax), window: v.throttleWindow };
  if (revision) body.revision = revision;
  return body;
}

export function ruleToForm(r: Rule): RuleFormValues {
  return {
    name: r.name,
    description: r.description ?? '',
    events: r.events,
    channels: r.channels,
    jobs: (r.filter?.jobs ?? []).join(', '),
    tags: Object.entries(r.filter?.tags ?? {}).map(([k, v]) => `${k}=${v}`).join(', '),
    groups: (r.filter?.groups ?? []).join(', '),
    minSeverity: (r.filter?.min_severity as RuleFormValues['minSeverity']) ?? '',
    template: r.template ?? '',
    throttleMax: r.throttle?.max ? String(r.throttle.max) : '',
    throttleWindow: r.throttle?.window ?? '',
    enabled: r.enabled,
  };
}
