import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError, qs } from '../../api/client';
import { useAuth } from '../../app/auth';
import { ConfirmButton } from '../../components/ConfirmButton';
import { SecretBlock } from '../../components/CopyButton';
import { Button, Dialog, EmptyState, ErrorBox, Field, Loading, StatusBadge, Time } from '../../components/ui';
import { RolePicker } from './RolePicker';
import { bindingLabel, useRoles, type Binding, type Token } from './types';

export function Tokens() {
  const { can, me } = useAuth();
  const admin = can('users:admin');
  const [all, setAll] = useState(false);
  const [creating, setCreating] = useState(false);
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ['tokens', all ? 'all' : 'mine'], queryFn: () => api.get<{ items: Token[] }>(`/api/v1/tokens${qs({ all: all || undefined })}`) });
  return (
    <div className="stack">
      <div className="filters" style={{ justifyContent: 'space-between' }}>
        {admin ? <label className="row"><input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> Every user's tokens</label> : <span />}
        <Button variant="primary" onClick={() => setCreating(true)}>New API token</Button>
      </div>
      <Loading query={q} what="tokens">
        {(d) => d.items.length === 0 ? (
          <EmptyState title="No API tokens" hint="Create one for scripts and CI: it acts with the roles you give it (at most your own)." action={<Button variant="primary" onClick={() => setCreating(true)}>New API token</Button>} />
        ) : (
          <table>
            <thead><tr><th>Name</th><th>State</th><th>Roles</th>{all && <th>Owner</th>}<th>Created</th><th>Expires</th><th /></tr></thead>
            <tbody>
              {d.items.map((t) => {
                const st = t.revoked ? 'revoked' : t.expired ? 'expired' : 'active';
                return (
                  <tr key={t.id}>
                    <td><strong>{t.name}</strong> <span className="muted mono">{t.id}</span>{t.description && <div className="muted">{t.description}</div>}</td>
                    <td><StatusBadge status={st} tone={st === 'active' ? 'ok' : 'idle'} /></td>
                    <td>{t.roles.map((b) => <code key={bindingLabel(b)} className="tag">{bindingLabel(b)}</code>)}</td>
                    {all && <td className="mono">{t.owner_id === me?.user.id ? 'me' : t.owner_id}</td>}
                    <td><Time at={t.created_at} /></td>
                    <td>{t.expires_at ? <Time at={t.expires_at} /> : <span className="muted">never</span>}</td>
                    <td>
                      {st === 'active' && (
                        <ConfirmButton label="Revoke" variant="danger" danger title="Revoke API token" confirmLabel="Revoke"
                          body={<p>Scripts using <strong>{t.name}</strong> get 401 from now on. This cannot be undone.</p>}
                          action={() => api.del(`/api/v1/tokens/${t.id}`)} onDone={() => void qc.invalidateQueries({ queryKey: ['tokens'] })} />
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Loading>
      <CreateToken open={creating} onClose={() => setCreating(false)} />
    </div>
  );
}

function CreateToken({ open, onClose }: { open: boolean; onClose: () => void }) {
  const { me } = useAuth();
  const roles = useRoles();
  const qc = useQueryClient();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [expires, setExpires] = useState('720h');
  const [bindings, setBindings] = useState<Binding[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const fe = error instanceof ApiError ? error.fieldErrors() : {};
  const close = () => { setSecret(null); setError(null); setName(''); setDescription(''); setBindings([]); onClose(); };
  // A token can hold only permissions its owner has: offer the roles
  // within mine.
  const mine = new Set(me?.permissions ?? []);
  const offered = (roles.data?.items ?? []).filter((r) => r.permissions.every((p) => mine.has(p)));
  return (
    <Dialog title="New API token" open={open} onClose={close} footer={secret ? <Button variant="primary" onClick={close}>Done</Button> : (
      <>
        <Button onClick={close}>Cancel</Button>
        <Button variant="primary" busy={busy} disabled={!name || bindings.length === 0} onClick={async () => {
          setBusy(true); setError(null);
          try {
            const t = await api.post<Token & { token: string }>('/api/v1/tokens', { name, description, roles: bindings, expires_in: expires.trim() });
            setSecret(t.token);
            void qc.invalidateQueries({ queryKey: ['tokens'] });
          } catch (e) { setError(e); } finally { setBusy(false); }
        }}>Create token</Button>
      </>
    )}>
      {secret ? (
        <>
          <div className="warn-box">Copy the token now: it is shown only once and cannot be recovered.</div>
          <SecretBlock value={secret} label="API token" />
          <p className="muted">Send it as <code>Authorization: Bearer &lt;token&gt;</code>.</p>
        </>
      ) : (
        <>
          <Field label="Name" error={fe.name}><input autoFocus value={name} onChange={(e) => setName(e.target.value)} placeholder="ci-deploy" /></Field>
          <Field label="Description" error={fe.description}><input value={description} onChange={(e) => setDescription(e.target.value)} /></Field>
          <Field label="Expires in" error={fe.expires_in} hint="A duration such as 720h (30 days). Empty: never expires.">
            <input value={expires} onChange={(e) => setExpires(e.target.value)} />
          </Field>
          <RolePicker roles={offered} value={bindings} onChange={setBindings} legend="Roles (at most your own)" />
          {fe.roles && <span className="field-message">{fe.roles}</span>}
          <ErrorBox error={error} />
        </>
      )}
    </Dialog>
  );
}
