// Which secret fields each credential kind takes (controller/assets/
// credentials kindFields), and the checks a form can make before sending.
// Secret values live only in the form's state until the request is sent;
// they are never put in a query cache, a URL or storage.

export const kinds = ['password', 'ssh_key', 'token', 'certificate', 'secret'] as const;
export type Kind = (typeof kinds)[number];

export interface SecretField {
  name: 'password' | 'private_key' | 'passphrase' | 'token' | 'certificate' | 'key' | 'value';
  label: string;
  required: boolean;
  /** Multi-line PEM text. */
  multiline: boolean;
  /** Shown masked (everything but a certificate, which is public). */
  masked: boolean;
}

export const kindLabels: Record<Kind, string> = {
  password: 'Password',
  ssh_key: 'SSH private key',
  token: 'API token',
  certificate: 'TLS certificate and key',
  secret: 'Generic secret',
};

export const secretFields: Record<Kind, SecretField[]> = {
  password: [{ name: 'password', label: 'Password', required: true, multiline: false, masked: true }],
  ssh_key: [
    { name: 'private_key', label: 'Private key (PEM / OpenSSH)', required: true, multiline: true, masked: true },
    { name: 'passphrase', label: 'Passphrase (if the key has one)', required: false, multiline: false, masked: true },
  ],
  token: [{ name: 'token', label: 'Token', required: true, multiline: false, masked: true }],
  certificate: [
    { name: 'certificate', label: 'Certificate (PEM)', required: true, multiline: true, masked: false },
    { name: 'key', label: 'Private key (PEM)', required: true, multiline: true, masked: true },
  ],
  secret: [{ name: 'value', label: 'Value', required: true, multiline: false, masked: true }],
};

export interface CredentialFormValues {
  name: string;
  kind: Kind;
  description: string;
  username: string;
  tags: string;
  secret: Partial<Record<SecretField['name'], string>>;
}

const nameRE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const roleRE = /^[a-z][a-z0-9_-]{0,62}$/;
const MAX_SECRET_FIELD = 64 << 10;

/**
 * Field path → message. replacing: the secret may be left empty to keep
 * the stored one; if any secret field is filled, the kind's required ones
 * must all be.
 */
export function validateCredential(v: CredentialFormValues, replacing: boolean): Record<string, string> {
  const errs: Record<string, string> = {};
  if (!nameRE.test(v.name)) errs.name = "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.";
  if (v.description.length > 1000) errs.description = 'At most 1000 characters.';
  if (v.username.length > 256 || /[\r\n]/.test(v.username)) errs.username = 'One line of at most 256 characters.';
  const t = parseCredentialTags(v.tags);
  if (t.error) errs.tags = t.error;
  const fields = secretFields[v.kind];
  const anySet = fields.some((f) => (v.secret[f.name] ?? '') !== '');
  if (!replacing || anySet) {
    for (const f of fields) {
      const val = v.secret[f.name] ?? '';
      if (f.required && !val) errs[`secret.${f.name}`] = replacing ? `Required when replacing the secret of a ${v.kind} credential.` : 'Required.';
      else if (val.length > MAX_SECRET_FIELD) errs[`secret.${f.name}`] = 'At most 64 KiB.';
    }
  }
  return errs;
}

export function parseCredentialTags(s: string): { tags: Record<string, string>; error?: string } {
  const tags: Record<string, string> = {};
  for (const part of s.split(/[,\n]+/).map((x) => x.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) return { tags, error: `"${part}" must be key=value` };
    tags[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return { tags };
}

/**
 * The create/replace body. Only the kind's own fields are sent, and only
 * when set: a replace without any keeps the stored secret.
 */
export function credentialBody(v: CredentialFormValues): Record<string, unknown> {
  const secret: Record<string, string> = {};
  for (const f of secretFields[v.kind]) {
    const val = v.secret[f.name];
    if (val) secret[f.name] = val;
  }
  const body: Record<string, unknown> = { name: v.name.trim(), kind: v.kind };
  if (v.description) body.description = v.description;
  if (v.username) body.username = v.username;
  const { tags } = parseCredentialTags(v.tags);
  if (Object.keys(tags).length) body.tags = tags;
  if (Object.keys(secret).length) body.secret = secret;
  return body;
}

export function validRole(role: string): boolean {
  return roleRE.test(role);
}

/** The attachment path: scope is the plural the API takes. */
export function attachmentPath(credential: string, scope: 'target' | 'group', object: string, role: string): string {
  const e = encodeURIComponent;
  return `/api/v1/credentials/${e(credential)}/attachments/${scope === 'target' ? 'targets' : 'groups'}/${e(object)}/${e(role)}`;
}
