import { useState } from 'react';
import { Link, useNavigate } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, qs } from '../../api/client';
import { useAuth } from '../../app/auth';
import { Button, EmptyState, Field, Loading, PageHeader, StatusBadge, Time } from '../../components/ui';
import { CredentialForm } from './CredentialForm';
import { kindLabels, kinds, secretFields, type Kind } from './secretFields';
import type { Credential, KeyringStatus } from './types';

export function CredentialsPage() {
  const { can } = useAuth();
  const [kind, setKind] = useState('');
  const [creating, setCreating] = useState(false);
  const qc = useQueryClient();
  const nav = useNavigate();
  const list = useQuery({
    queryKey: ['credentials', 'list', kind],
    queryFn: () => api.get<{ items: Credential[] }>(`/api/v1/credentials${qs({ kind })}`),
  });
  return (
    <>
      <PageHeader
        title="Credentials"
        actions={can('credentials:write') && <Button variant="primary" onClick={() => setCreating(true)}>New credential</Button>}
      >
        <p className="muted" style={{ margin: '4px 0 0' }}>Metadata only: secret values are write-only and never shown.</p>
      </PageHeader>
      {can('cluster:admin') && <KeyringSummary />}
      <div className="inv-filters">
        <Field label="Kind">
          <select value={kind} onChange={(e) => setKind(e.target.value)} aria-label="Filter by kind">
            <option value="">Every kind</option>
            {kinds.map((k) => <option key={k} value={k}>{kindLabels[k]}</option>)}
          </select>
        </Field>
      </div>
      <Loading query={list} what="credentials">
        {(d) =>
          d.items.length === 0 ? (
            kind ? <EmptyState title={`No ${kindLabels[kind as Kind] ?? kind} credentials`} hint="Choose another kind, or every kind." /> : (
              <EmptyState
                title="No credentials yet"
                hint="Create one (an SSH key, a password, a token…), then attach it to targets or groups with a role such as ssh so that steps use it."
                action={can('credentials:write') && <Button variant="primary" onClick={() => setCreating(true)}>New credential</Button>}
              />
            )
          ) : (
            <table aria-label="Credentials">
              <thead>
                <tr><th>Name</th><th>Kind</th><th>Secret fields</th><th>Username</th><th>Fingerprint / subject</th><th>Tags</th><th>Created</th><th>Rotated / changed</th><th>Last used</th></tr>
              </thead>
              <tbody>
                {d.items.map((c) => (
                  <tr key={c.id}>
                    <td><Link to={`/credentials/${encodeURIComponent(c.name)}`}>{c.name}</Link>{c.description && <div className="muted">{c.description}</div>}</td>
                    <td>{kindLabels[c.kind as Kind] ?? c.kind}</td>
                    <td className="mono">{(secretFields[c.kind as Kind] ?? []).map((f) => f.name).join(', ')}</td>
                    <td>{c.username || <span className="muted">—</span>}</td>
                    <td className="mono">{c.fingerprint || c.subject || <span className="muted">—</span>}</td>
                    <td>{Object.entries(c.tags ?? {}).map(([k, v]) => <span key={k} className="chip">{k}={v}</span>)}</td>
                    <td><Time at={c.created_at} /></td>
                    <td>{c.updated_at !== c.created_at ? <Time at={c.updated_at} /> : <span className="muted">never</span>}</td>
                    <td>{c.last_used_at ? <Time at={c.last_used_at} /> : <span className="muted">never</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
      {creating && (
        <CredentialForm
          onClose={() => setCreating(false)}
          onSaved={(c) => {
            setCreating(false);
            void qc.invalidateQueries({ queryKey: ['credentials'] });
            void nav(`/credentials/${encodeURIComponent(c.name)}`);
          }}
        />
      )}
    </>
  );
}

/** The keys that wrap credentials: which is active, and envelopes not yet re-wrapped. */
function KeyringSummary() {
  const ring = useQuery({ queryKey: ['credentials', 'keyring'], queryFn: () => api.get<KeyringStatus>('/api/v1/operator/keyring') });
  if (ring.error) return null;
  if (!ring.data) return null;
  const k = ring.data;
  const retired = k.keys.filter((x) => x.state !== 'active' && x.tier === 'kek').length;
  return (
    <section className="card inv-section" aria-label="Keyring">
      <h2>Keyring</h2>
      <dl className="inv-kv">
        <dt>Active key</dt><dd className="mono">{k.active}</dd>
        <dt>Keys</dt><dd>{k.keys.length} ({retired} retired key-encryption key{retired === 1 ? '' : 's'})</dd>
        <dt>Re-wrap</dt>
        <dd>
          {k.pending === 0 ? <StatusBadge status="every envelope under the active key" tone="ok" /> : <StatusBadge status={`${k.pending} envelopes pending`} tone="warn" />}
          {k.rewrap.running && <> <StatusBadge status="re-wrapping" tone="info" /> {k.rewrap.rewrapped} done</>}
          {k.rewrap.error && <> <StatusBadge status="error" /> {k.rewrap.error}</>}
        </dd>
      </dl>
      <p className="muted" style={{ marginBottom: 0 }}>Rotate keys from <Link to="/cluster">Cluster</Link>.</p>
    </section>
  );
}
