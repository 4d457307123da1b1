import { useState } from 'react';
import { api, ApiError } from '../../api/client';
import { Button, Dialog, ErrorBox, Field } from '../../components/ui';
import { credentialBody, kindLabels, kinds, secretFields, validateCredential, type CredentialFormValues, type Kind } from './secretFields';
import type { Credential } from './types';

const blank = (kind: Kind = 'password'): CredentialFormValues => ({ name: '', kind, description: '', username: '', tags: '', secret: {} });

function fromCredential(c: Credential): CredentialFormValues {
  return {
    name: c.name,
    kind: c.kind as Kind,
    description: c.description ?? '',
    username: c.username ?? '',
    tags: Object.entries(c.tags ?? {}).map(([k, v]) => `${k}=${v}`).join(', '),
    secret: {},
  };
}

/**
 * Create a credential, or replace one (metadata, and the secret when any
 * secret field is filled). Secret inputs are password fields with
 * autocomplete off; their values are kept only in this component's state,
 * sent once, and cleared whether the save succeeds or not-yet-sent values
 * are abandoned by closing the dialog. The server answers with metadata only.
 */
export function CredentialForm({ credential, onClose, onSaved }: { credential?: Credential; onClose: () => void; onSaved: (c: Credential) => void }) {
  const replacing = !!credential;
  const [v, setV] = useState<CredentialFormValues>(credential ? fromCredential(credential) : blank());
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const clearSecret = () => setV((cur) => ({ ...cur, secret: {} }));
  const close = () => {
    clearSecret();
    onClose();
  };
  const save = async () => {
    const errs = validateCredential(v, replacing);
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    setError(null);
    try {
      const body = credentialBody(v);
      const c = replacing
        ? await api.put<Credential>(`/api/v1/credentials/${encodeURIComponent(credential.name)}`, body)
        : await api.post<Credential>('/api/v1/credentials', body);
      setV(blank(v.kind));
      onSaved(c);
    } catch (e) {
      setError(e);
      if (e instanceof ApiError) setErrors(e.fieldErrors());
    } finally {
      setBusy(false);
    }
  };
  const setSecret = (name: string, value: string) => setV((cur) => ({ ...cur, secret: { ...cur.secret, [name]: value } }));
  return (
    <Dialog
      title={replacing ? `Replace ${credential.name}` : 'New credential'}
      open
      onClose={close}
      footer={
        <>
          <Button onClick={close}>Cancel</Button>
          <Button variant="primary" busy={busy} onClick={() => void save()}>{replacing ? 'Save' : 'Create credential'}</Button>
        </>
      }
    >
      <form className="inv-form" autoComplete="off" onSubmit={(e) => { e.preventDefault(); void save(); }} aria-label={replacing ? 'Replace credential' : 'New credential'}>
        <Field label="Name" error={errors.name}>
          <input value={v.name} onChange={(e) => setV({ ...v, name: e.target.value })} disabled={replacing} autoFocus={!replacing} />
        </Field>
        <Field label="Kind" error={errors.kind}>
          <select value={v.kind} onChange={(e) => setV({ ...v, kind: e.target.value as Kind, secret: {} })} disabled={replacing}>
            {kinds.map((k) => <option key={k} value={k}>{kindLabels[k]}</option>)}
          </select>
        </Field>
        <Field label="Username" error={errors.username} hint="Optional: the account the secret belongs to">
          <input value={v.username} onChange={(e) => setV({ ...v, username: e.target.value })} autoComplete="off" />
        </Field>
        <Field label="Tags" error={errors.tags} hint="key=value, comma separated">
          <input value={v.tags} onChange={(e) => setV({ ...v, tags: e.target.value })} />
        </Field>
        <div className="span2">
          <Field label="Description" error={errors.description}>
            <input value={v.description} onChange={(e) => setV({ ...v, description: e.target.value })} />
          </Field>
        </div>
        <fieldset className="span2" style={{ border: '1px solid var(--border)', borderRadius: 6, display: 'flex', flexDirection: 'column', gap: 8 }}>
          <legend>Secret</legend>
          <p className="secret-note" style={{ margin: 0 }}>
            {replacing
              ? 'Leave these empty to keep the stored secret. A value entered here replaces it. The stored value is never shown.'
              : 'Sent once over the API and stored encrypted; it is never shown again, here or anywhere in the console.'}
          </p>
          {secretFields[v.kind].map((f) => (
            <Field key={f.name} label={f.label + (f.required ? '' : ' (optional)')} error={errors[`secret.${f.name}`]}>
              {f.multiline ? (
                <textarea
                  rows={5}
                  name={`secret-${f.name}`}
                  className={f.masked ? 'secret-text' : undefined}
                  value={v.secret[f.name] ?? ''}
                  onChange={(e) => setSecret(f.name, e.target.value)}
                  autoComplete="off"
                  spellCheck={false}
                  placeholder={f.name === 'certificate' ? '-----BEGIN CERTIFICATE-----' : '-----BEGIN OPENSSH PRIVATE KEY-----'}
                />
              ) : (
                <input
                  type="password"
                  name={`secret-${f.name}`}
                  value={v.secret[f.name] ?? ''}
                  onChange={(e) => setSecret(f.name, e.target.value)}
                  autoComplete="off"
                  spellCheck={false}
                />
              )}
            </Field>
          ))}
        </fieldset>
        <button type="submit" hidden />
      </form>
      <ErrorBox error={error} />
    </Dialog>
  );
}
