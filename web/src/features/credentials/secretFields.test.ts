import { describe, expect, it } from 'vitest';
import { attachmentPath, credentialBody, validateCredential, validRole, type CredentialFormValues } from './secretFields';

const base: CredentialFormValues = { name: 'db-admin', kind: 'password', description: '', username: '', tags: '', secret: {} };

describe('validateCredential', () => {
  it('requires the kind\'s secret fields on create', () => {
    expect(validateCredential(base, false)).toEqual({ 'secret.password': 'Required.' });
    expect(validateCredential({ ...base, kind: 'certificate', secret: { certificate: 'x' } }, false)).toEqual({ 'secret.key': 'Required.' });
    expect(validateCredential({ ...base, kind: 'ssh_key', secret: { private_key: 'k' } }, false)).toEqual({});
  });
  it('lets a replace keep the stored secret, but not half of a new one', () => {
    expect(validateCredential({ ...base, kind: 'certificate' }, true)).toEqual({});
    expect(Object.keys(validateCredential({ ...base, kind: 'certificate', secret: { key: 'k' } }, true))).toEqual(['secret.certificate']);
  });
  it('checks the name and tags', () => {
    const errs = validateCredential({ ...base, name: '.x', tags: 'novalue', secret: { password: 'p' } }, false);
    expect(Object.keys(errs).sort()).toEqual(['name', 'tags']);
  });
});

describe('credentialBody', () => {
  it('sends only the kind\'s own, non-empty secret fields', () => {
    const body = credentialBody({ ...base, kind: 'ssh_key', username: 'root', tags: 'env=prod', secret: { private_key: 'KEY', passphrase: '', password: 'stale' } });
    expect(body).toEqual({ name: 'db-admin', kind: 'ssh_key', username: 'root', tags: { env: 'prod' }, secret: { private_key: 'KEY' } });
  });
  it('leaves the secret out of a replace that keeps it', () => {
    expect(credentialBody(base)).toEqual({ name: 'db-admin', kind: 'password' });
  });
});

describe('attachments', () => {
  it('builds the plural scope path with escaped parts', () => {
    expect(attachmentPath('a b', 'target', 'web/1', 'ssh')).toBe('/api/v1/credentials/a%20b/attachments/targets/web%2F1/ssh');
    expect(attachmentPath('c', 'group', 'web', 'default')).toBe('/api/v1/credentials/c/attachments/groups/web/default');
  });
  it('accepts roles the server accepts', () => {
    expect(validRole('ssh')).toBe(true);
    expect(validRole('Ssh')).toBe(false);
    expect(validRole('')).toBe(false);
  });
});
