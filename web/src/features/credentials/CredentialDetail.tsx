import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError, qs } from '../../api/client';
import { useAuth } from '../../app/auth';
import { Button, ErrorBox, Field, Loading, PageHeader, Time } from '../../components/ui';
import { ConfirmButton } from '../../components/ConfirmButton';
import { CredentialForm } from './CredentialForm';
import { attachmentPath, kindLabels, secretFields, validRole, type Kind } from './secretFields';
import type { Attachment, Credential } from './types';

export function CredentialDetail() {
  const { name = '' } = useParams();
  const { can } = useAuth();
  const writable = can('credentials:write');
  const qc = useQueryClient();
  const nav = useNavigate();
  const [replacing, setReplacing] = useState(false);
  const [saved, setSaved] = useState(false);
  const cred = useQuery({
    queryKey: ['credentials', 'one', name],
    queryFn: () => api.get<Credential>(`/api/v1/credentials/${encodeURIComponent(name)}`),
  });
  const detach = async (a: Attachment) => {
    await api.del(attachmentPath(name, a.scope as 'target' | 'group', a.name, a.role));
    await qc.invalidateQueries({ queryKey: ['credentials'] });
  };
  return (
    <Loading query={cred} what="credential">
      {(c) => (
        <>
          <PageHeader
            title={c.name}
            actions={
              writable && (
                <>
                  <Button onClick={() => { setSaved(false); setReplacing(true); }}>Edit or replace secret</Button>
                  <ConfirmButton
                    label="Delete"
                    title={`Delete ${c.name}?`}
                    confirmLabel="Delete"
                    danger
                    action={async () => {
                      await api.del(`/api/v1/credentials/${encodeURIComponent(c.name)}`);
                      qc.removeQueries({ queryKey: ['credentials', 'one', name] });
                      await qc.invalidateQueries({ queryKey: ['credentials'] });
                      void nav('/credentials');
                    }}
                    body={<p>The credential and its {c.attachments?.length ?? 0} attachment(s) are removed. Jobs that name it will fail until they name another.</p>}
                  />
                </>
              )
            }
          >
            <Link to="/credentials">← Credentials</Link>
          </PageHeader>
          {saved && <p role="status" className="card" style={{ borderColor: 'var(--ok)' }}>Saved. The secret is stored encrypted and is not shown.</p>}
          <section className="card inv-section" aria-label="Metadata">
            <dl className="inv-kv">
              <dt>Kind</dt><dd>{kindLabels[c.kind as Kind] ?? c.kind}</dd>
              <dt>Secret</dt>
              <dd>
                <span className="muted">stored encrypted · write-only</span>{' '}
                ({(secretFields[c.kind as Kind] ?? []).map((f) => f.name).join(', ')})
              </dd>
              {c.username && <><dt>Username</dt><dd>{c.username}</dd></>}
              {c.description && <><dt>Description</dt><dd>{c.description}</dd></>}
              {c.fingerprint && <><dt>Fingerprint</dt><dd className="mono">{c.fingerprint}</dd></>}
              {c.public_key && <><dt>Public key</dt><dd className="mono" style={{ wordBreak: 'break-all' }}>{c.public_key}</dd></>}
              {c.subject && <><dt>Subject</dt><dd>{c.subject}</dd></>}
              {c.not_after && <><dt>Expires</dt><dd><Time at={c.not_after} /></dd></>}
              <dt>Tags</dt><dd>{Object.keys(c.tags ?? {}).length ? Object.entries(c.tags ?? {}).map(([k, v]) => <span key={k} className="chip">{k}={v}</span>) : '—'}</dd>
              <dt>Created</dt><dd><Time at={c.created_at} /> by {c.created_by}</dd>
              <dt>Changed</dt><dd><Time at={c.updated_at} /> by {c.updated_by}</dd>
              <dt>Last used</dt><dd>{c.last_used_at ? <Time at={c.last_used_at} /> : 'never'}</dd>
            </dl>
          </section>
          <section className="inv-section" aria-label="Attachments">
            <header><h2>Attachments</h2></header>
            <p className="muted" style={{ marginTop: 0 }}>An attachment makes this credential the default for a target or group in a role (such as ssh); it replaces the credential attached there before.</p>
            {writable && <AttachForm credential={c.name} />}
            {(c.attachments ?? []).length === 0 ? (
              <p className="muted">Not attached anywhere.</p>
            ) : (
              <table aria-label="Attachments">
                <thead><tr><th>Scope</th><th>Name</th><th>Role</th><th>Attached</th>{writable && <th aria-label="Actions" />}</tr></thead>
                <tbody>
                  {c.attachments!.map((a) => (
                    <tr key={`${a.scope}/${a.name}/${a.role}`}>
                      <td>{a.scope}</td>
                      <td>{a.scope === 'group' ? <Link to={`/inventory/groups/${encodeURIComponent(a.name)}`}>{a.name}</Link> : <Link to={`/inventory?q=${encodeURIComponent(a.name)}`}>{a.name}</Link>}</td>
                      <td><code>{a.role}</code></td>
                      <td><Time at={a.created_at} /> by {a.created_by}</td>
                      {writable && (
                        <td><div className="inv-row-actions">
                          <ConfirmButton label="Detach" confirmLabel="Detach" variant="ghost" danger title="Detach this credential?" action={() => detach(a)}
                            body={<p>{a.scope} <strong>{a.name}</strong> no longer uses {c.name} as its <code>{a.role}</code> credential.</p>} />
                        </div></td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
          {replacing && (
            <CredentialForm
              credential={c}
              onClose={() => setReplacing(false)}
              onSaved={() => {
                setReplacing(false);
                setSaved(true);
                void qc.invalidateQueries({ queryKey: ['credentials'] });
              }}
            />
          )}
        </>
      )}
    </Loading>
  );
}

function AttachForm({ credential }: { credential: string }) {
  const qc = useQueryClient();
  const [scope, setScope] = useState<'target' | 'group'>('target');
  const [object, setObject] = useState('');
  const [role, setRole] = useState('ssh');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const targets = useQuery({
    queryKey: ['targets', 'list', { q: object, limit: 20, suggest: true }],
    queryFn: () => api.get<{ items: { id: string; name: string }[] }>(`/api/v1/targets${qs({ q: object, limit: 20 })}`),
    enabled: scope === 'target' && object.length > 0,
  });
  const groups = useQuery({
    queryKey: ['targets', 'groups'],
    queryFn: () => api.get<{ items: { name: string }[] }>('/api/v1/groups'),
    enabled: scope === 'group',
  });
  const roleOK = validRole(role);
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.put(attachmentPath(credential, scope, object.trim(), role));
      await qc.invalidateQueries({ queryKey: ['credentials'] });
      setObject('');
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const fe = error instanceof ApiError ? error.fieldErrors() : {};
  const options = scope === 'target' ? (targets.data?.items.map((t) => t.name) ?? []) : (groups.data?.items.map((g) => g.name) ?? []);
  return (
    <form className="card inv-toolbar" onSubmit={(e) => { e.preventDefault(); void submit(); }} aria-label="Attach credential">
      <Field label="Attach to">
        <select value={scope} onChange={(e) => setScope(e.target.value as 'target' | 'group')} aria-label="Attachment scope">
          <option value="target">a target</option>
          <option value="group">a group</option>
        </select>
      </Field>
      <Field label={scope === 'target' ? 'Target name' : 'Group name'} error={fe.name}>
        <input value={object} onChange={(e) => setObject(e.target.value)} list="attach-objects" aria-label="Attach to name" />
        <datalist id="attach-objects">{options.map((o) => <option key={o} value={o} />)}</datalist>
      </Field>
      <Field label="Role" error={roleOK ? fe.role : 'lower case letters, digits, _ and -'}>
        <input value={role} onChange={(e) => setRole(e.target.value)} aria-label="Attachment role" />
      </Field>
      <Button type="submit" variant="primary" busy={busy} disabled={!object.trim() || !roleOK}>Attach</Button>
      <ErrorBox error={error} />
    </form>
  );
}
