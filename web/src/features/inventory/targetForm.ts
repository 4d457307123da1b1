// The target form's text fields and their conversion to the API's
// TargetInput. Checks here catch the obvious mistakes before a round trip
// and use the server's field paths, so that client and server messages
// land on the same input; the server's rules stay authoritative.

import type { Target, TargetInput } from './types';

export interface TargetFormValues {
  name: string;
  /** Addresses separated by commas, spaces or new lines. */
  addresses: string;
  via: string;
  port: string;
  username: string;
  hostKeyPolicy: '' | 'tofu' | 'pinned';
  hostKey: string;
  /** Tags as "key=value" separated by commas or new lines. */
  tags: string;
  /** Group names separated by commas or spaces. */
  groups: string;
  owner: string;
  notes: string;
}

export const emptyTargetForm: TargetFormValues = {
  name: '', addresses: '', via: '', port: '', username: '', hostKeyPolicy: '', hostKey: '', tags: '', groups: '', owner: '', notes: '',
};

const nameRE = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$/;
const groupRE = /^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$/;
const tagKeyRE = /^[A-Za-z0-9]([A-Za-z0-9_./-]{0,126}[A-Za-z0-9])?$/;
const tagValueRE = /^[A-Za-z0-9_./:@+*-]{0,128}$/;

export function splitList(s: string): string[] {
  return s.split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);
}

/** Parses "k=v, k2=v2" into a map; problems name the bad entry. */
export function parseTags(s: string): { tags: Record<string, string>; errors: string[] } {
  const tags: Record<string, string> = {};
  const errors: string[] = [];
  for (const part of s.split(/[,\n]+/).map((x) => x.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) {
      errors.push(`"${part}" must be key=value`);
      continue;
    }
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (!tagKeyRE.test(k) || k.startsWith('facts.')) errors.push(`tag key "${k}" must be letters, digits and _ . / - (not starting with "facts.")`);
    else if (!tagValueRE.test(v)) errors.push(`tag value "${v}" may hold only letters, digits and _ . / : @ + * -`);
    else if (k in tags && tags[k] !== v) errors.push(`tag "${k}" is given twice`);
    tags[k] = v;
  }
  return { tags, errors };
}

export function formatTags(tags: Record<string, string> | undefined): string {
  return Object.entries(tags ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
}

/** Field path → message, for the problems a client can see for itself. */
export function validateTarget(v: TargetFormValues, agentTarget = false): Record<string, string> {
  const errs: Record<string, string> = {};
  if (!nameRE.test(v.name.trim())) errs.name = 'Use 1 to 253 letters, digits and _ . -, starting and ending with a letter or digit.';
  else if (v.name.trim() === 'import' || v.name.trim() === 'export') errs.name = `"${v.name.trim()}" is reserved.`;
  if (!agentTarget) {
    if (splitList(v.addresses).length === 0) errs.addresses = 'Give at least one IP address or host name.';
    if (!v.via.trim()) errs['connection.via'] = 'Name the relay agent that reaches this host over SSH.';
    if (v.port.trim()) {
      const p = Number(v.port);
      if (!Number.isInteger(p) || p < 1 || p > 65535) errs['connection.port'] = 'A port is 1 to 65535.';
    }
    if (v.hostKeyPolicy === 'pinned' && !v.hostKey.trim()) errs['connection.host_key'] = 'A pinned policy needs the host key ("ssh-ed25519 AAAA…").';
  }
  const t = parseTags(v.tags);
  if (t.errors.length) errs.tags = t.errors.join('; ');
  const bad = splitList(v.groups).filter((g) => !groupRE.test(g));
  if (bad.length) errs.groups = `Group names are lower-case letters, digits and _ . -: ${bad.join(', ')}`;
  if (v.owner.length > 128 || v.owner.includes('\n')) errs.owner = 'One line of at most 128 characters.';
  if (v.notes.length > 4096) errs.notes = 'At most 4096 characters.';
  return errs;
}

/** The body of POST /api/v1/targets (an SSH target). */
export function toTargetInput(v: TargetFormValues): TargetInput {
  const conn: TargetInput['connection'] = { type: 'ssh', via: v.via.trim() };
  if (v.port.trim()) conn.port = Number(v.port);
  if (v.username.trim()) conn.username = v.username.trim();
  if (v.hostKeyPolicy) conn.host_key_policy = v.hostKeyPolicy;
  if (v.hostKey.trim()) conn.host_key = v.hostKey.trim();
  return {
    name: v.name.trim(),
    addresses: splitList(v.addresses),
    connection: conn,
    tags: parseTags(v.tags).tags,
    groups: splitList(v.groups),
    owner: v.owner.trim() || undefined,
    notes: v.notes || undefined,
  };
}

/**
 * The body of PATCH /api/v1/targets/{id}: every field the form owns,
 * with the revision read so that a concurrent change is refused (409).
 * An agent's target takes only the overlay fields (tags, groups, owner,
 * notes): its name, addresses and connection are the agent's.
 */
export function toTargetPatch(v: TargetFormValues, t: Target): Record<string, unknown> {
  const overlay = { tags: parseTags(v.tags).tags, groups: splitList(v.groups), owner: v.owner.trim(), notes: v.notes };
  if (t.connection.type === 'agent') return { ...overlay, revision: t.revision || undefined };
  const input = toTargetInput(v);
  return { ...overlay, name: input.name, addresses: input.addresses, connection: { ...t.connection, ...input.connection }, revision: t.revision };
}

export function targetToForm(t: Target): TargetFormValues {
  return {
    name: t.name,
    addresses: t.addresses.join(', '),
    via: t.connection.via ?? '',
    port: t.connection.port ? String(t.connection.port) : '',
    username: t.connection.username ?? '',
    hostKeyPolicy: (t.connection.host_key_policy as TargetFormValues['hostKeyPolicy']) ?? '',
    hostKey: t.connection.host_key ?? '',
    tags: formatTags(t.tags),
    groups: t.groups.join(', '),
    owner: t.owner ?? '',
    notes: t.notes ?? '',
  };
}
