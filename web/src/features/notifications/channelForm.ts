// The channel form: one set of fields per kind, turned into the API's
// ChannelRequest. The secret (webhook signing key, SMTP password) is
// write-only: empty on edit means "keep the stored one".

import type { ChannelKind, ChannelView } from './types';

export interface ChannelFormValues {
  name: string;
  description: string;
  kind: ChannelKind;
  maxAttempts: string;
  timeout: string;
  template: string;
  // email
  host: string;
  port: string;
  tls: 'starttls' | 'tls' | 'none';
  username: string;
  from: string;
  to: string;
  cc: string;
  // webhook
  url: string;
  headers: string;
  // chat
  flavor: 'slack' | 'mattermost' | 'teams';
  chatURL: string;
  // write-only
  secret: string;
  removeSecret: boolean;
}

export const emptyChannelForm: ChannelFormValues = {
  name: '', description: '', kind: 'webhook', maxAttempts: '', timeout: '', template: '',
  host: '', port: '587', tls: 'starttls', username: '', from: '', to: '', cc: '',
  url: '', headers: '', flavor: 'slack', chatURL: '', secret: '', removeSecret: false,
};

const list = (s: string) => s.split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);
const nameRE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const emailRE = /^[^\s@]+@[^\s@]+$/;

function isURL(s: string, schemes = ['http:', 'https:']): boolean {
  try {
    return schemes.includes(new URL(s).protocol);
  } catch {
    return false;
  }
}

/** "Name: value" lines → a header map. */
export function parseHeaders(s: string): { headers: Record<string, string>; error?: string } {
  const headers: Record<string, string> = {};
  for (const line of s.split('\n').map((x) => x.trim()).filter(Boolean)) {
    const i = line.indexOf(':');
    if (i <= 0) return { headers, error: `"${line}" must be Name: value` };
    headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return { headers };
}

export function validateChannel(v: ChannelFormValues, editing: boolean): Record<string, string> {
  const e: Record<string, string> = {};
  if (!nameRE.test(v.name)) e.name = '1 to 63 lower-case letters, digits and _ . -, starting with a letter or digit.';
  if (v.maxAttempts && (!/^\d+$/.test(v.maxAttempts) || Number(v.maxAttempts) < 1 || Number(v.maxAttempts) > 100)) e.max_attempts = 'A whole number from 1 to 100, or empty for the default.';
  if (v.timeout && !/^(\d+(\.\d+)?(ms|s|m))+$/.test(v.timeout)) e['config.timeout'] = 'A duration such as 10s.';
  if (v.kind === 'email') {
    if (!v.host.trim()) e['config.email.host'] = 'The SMTP server.';
    if (!/^\d+$/.test(v.port) || Number(v.port) < 1 || Number(v.port) > 65535) e['config.email.port'] = '1 to 65535.';
    if (!emailRE.test(v.from.trim())) e['config.email.from'] = 'The sender address.';
    const to = list(v.to);
    if (to.length === 0) e['config.email.to'] = 'At least one recipient.';
    else if (to.some((a) => !emailRE.test(a))) e['config.email.to'] = `Not an address: ${to.filter((a) => !emailRE.test(a)).join(', ')}`;
    if (list(v.cc).some((a) => !emailRE.test(a))) e['config.email.cc'] = 'Addresses, comma separated.';
  } else if (v.kind === 'webhook') {
    if (!isURL(v.url)) e['config.webhook.url'] = 'An http:// or https:// URL.';
    const h = parseHeaders(v.headers);
    if (h.error) e['config.webhook.headers'] = h.error;
    if (!editing && v.secret.length < 16) e.secret = 'A signing key of at least 16 characters: receivers check the signature with it.';
    if (editing && v.secret && v.secret.length < 16) e.secret = 'At least 16 characters, or empty to keep the stored key.';
  } else {
    if (!isURL(v.chatURL, ['https:', 'http:'])) e['config.chat.url'] = editing ? 'Enter the full incoming-webhook URL again: it is shown cut because it is the credential.' : 'The incoming-webhook URL.';
  }
  return e;
}

/** The body of POST or PUT /api/v1/notifications/channels. */
export function toChannelRequest(v: ChannelFormValues, editing?: ChannelView): Record<string, unknown> {
  const common = { template: v.template || undefined, timeout: v.timeout || undefined };
  let config: Record<string, unknown>;
  if (v.kind === 'email') {
    config = { kind: 'email', email: { host: v.host.trim(), port: Number(v.port), tls: v.tls, username: v.username || undefined, from: v.from.trim(), to: list(v.to), cc: list(v.cc).length ? list(v.cc) : undefined, ...common } };
  } else if (v.kind === 'webhook') {
    const h = parseHeaders(v.headers).headers;
    config = { kind: 'webhook', webhook: { url: v.url.trim(), headers: Object.keys(h).length ? h : undefined, ...common } };
  } else {
    config = { kind: 'chat', chat: { flavor: v.flavor, url: v.chatURL.trim(), ...common } };
  }
  const body: Record<string, unknown> = { name: v.name, description: v.description, config };
  if (v.maxAttempts) body.max_attempts = Number(v.maxAttempts);
  if (v.removeSecret) body.secret = '';
  else if (v.secret) body.secret = v.secret;
  if (editing) body.revision = editing.revision;
  return body;
}

export function channelToForm(c: ChannelView): ChannelFormValues {
  const v: ChannelFormValues = { ...emptyChannelForm, name: c.name, description: c.description ?? '', kind: c.kind, maxAttempts: c.max_attempts ? String(c.max_attempts) : '' };
  const e = c.config.email;
  const w = c.config.webhook;
  const ch = c.config.chat;
  if (e) Object.assign(v, { host: e.host, port: String(e.port), tls: e.tls, username: e.username ?? '', from: e.from, to: e.to.join(', '), cc: (e.cc ?? []).join(', '), template: e.template ?? '', timeout: e.timeout ?? '' });
  if (w) Object.assign(v, { url: w.url, headers: Object.entries(w.headers ?? {}).map(([k, val]) => `${k}: ${val}`).join('\n'), template: w.template ?? '', timeout: w.timeout ?? '' });
  // A chat URL comes back cut (scheme://host/…): it must be typed again.
  if (ch) Object.assign(v, { flavor: ch.flavor, chatURL: '', template: ch.template ?? '', timeout: ch.timeout ?? '' });
  return v;
}

/** Where a channel sends, in a few words. */
export function channelTarget(c: ChannelView): string {
  if (c.config.email) return `${c.config.email.to.join(', ')} via ${c.config.email.host}`;
  if (c.config.webhook) return c.config.webhook.url;
  if (c.config.chat) return `${c.config.chat.flavor} ${c.config.chat.url}`;
  return '';
}

/** Splits "line 3: unexpected }" into its line and message. */
export function lineOf(message: string): { line: number | null; message: string } {
  const m = /^line (\d+)(?:, column \d+)?:\s*(.*)$/s.exec(message);
  return m ? { line: Number(m[1]), message: m[2] ?? '' } : { line: null, message };
}
