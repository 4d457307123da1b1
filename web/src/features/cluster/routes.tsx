import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../api/client';
import { useHealth, usePeers, type HealthDoc } from '../../app/health';
import { ConfirmButton } from '../../components/ConfirmButton';
import { ErrorBox, Loading, PageHeader, Spinner, StatusBadge, Time } from '../../components/ui';

interface KeyInfo {
  id: string; tier: string; state: string; created_at?: string; created_by?: string; retired_at?: string;
  envelopes: Record<string, number>; total: number; removable: boolean;
}
interface KeyringStatus {
  active: string; keys: KeyInfo[]; pending: number;
  rewrap: { running: boolean; started_at?: string; ended_at?: string; rewrapped: number; error?: string };
}
interface SigningKey { kid: string; created_at: string; active: boolean }

export default function ClusterPage() {
  const health = useHealth();
  return (
    <div className="stack">
      <PageHeader title="Cluster">
        <p className="muted">Controllers, replication, the history store and the keyring. Indexes refresh every few seconds.</p>
      </PageHeader>
      <Peers health={health.data} />
      <div className="grid">
        <ThisNode health={health.data} error={health.error} />
        <HistoryStore health={health.data} />
        <Sections health={health.data} />
      </div>
      <Keyring />
      <SigningKeys />
    </div>
  );
}

function Peers({ health }: { health?: HealthDoc }) {
  const peers = usePeers(true);
  const qc = useQueryClient();
  const leader = peers.data?.leader_id ?? health?.raft?.leader_id;
  return (
    <section className="stack" aria-labelledby="peers">
      <div className="row" style={{ justifyContent: 'space-between' }}>
        <h2 id="peers">Raft peers</h2>
        <ConfirmButton
          label="Transfer leadership"
          title="Transfer leadership"
          body={<p>The leader <code>{leader || '?'}</code> hands leadership to another voter. Writes pause for about one election; clients retry. With a single controller there is no one to hand it to and the request fails.</p>}
          action={() => api.post('/api/v1/operator/raft/transfer-leadership')}
          onDone={() => void qc.invalidateQueries({ queryKey: ['cluster'] })}
        />
      </div>
      <Loading query={peers} what="peers">
        {(d) => (
          <table>
            <thead><tr><th>Node</th><th>Address</th><th>Role</th><th>Reachable</th><th className="num">Term</th><th className="num">Last index</th><th className="num">Applied</th><th className="num">Behind leader</th></tr></thead>
            <tbody>
              {d.peers.map((p) => (
                <tr key={p.id}>
                  <td className="mono">{p.id}</td>
                  <td className="mono">{p.address}</td>
                  <td>{p.leader ? <StatusBadge status="leader" tone="ok" /> : <StatusBadge status={p.suffrage} tone="info" />}</td>
                  <td>{p.reachable ? <StatusBadge status="reachable" tone="ok" /> : <><StatusBadge status="unreachable" tone="bad" />{p.error && <div className="muted">{p.error}</div>}</>}</td>
                  <td className="num mono">{p.term ?? '—'}</td>
                  <td className="num mono">{p.last_index ?? '—'}</td>
                  <td className="num mono">{p.applied_index ?? '—'}</td>
                  <td className="num">{p.trails_leader_by === undefined ? '—' : p.trails_leader_by === 0 ? <StatusBadge status="in sync" tone="ok" /> : <StatusBadge status={`${p.trails_leader_by} entries`} tone="warn" />}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Loading>
    </section>
  );
}

function ThisNode({ health, error }: { health?: HealthDoc; error: unknown }) {
  const r = health?.raft;
  return (
    <section className="card">
      <h2>This controller</h2>
      {error ? <ErrorBox error={error} /> : !health ? <Spinner /> : (
        <dl className="kv">
          <dt>Node</dt><dd className="mono">{health.node_id}</dd>
          <dt>Version</dt><dd className="mono">{health.version}</dd>
          <dt>Raft state</dt><dd>{r ? <StatusBadge status={r.state} tone={r.state === 'leader' ? 'ok' : r.state === 'follower' ? 'info' : 'warn'} /> : '—'}</dd>
          <dt>Leader</dt><dd className="mono">{r?.leader_id || <StatusBadge status="none" tone="bad" />} <span className="muted">{r?.leader_addr}</span></dd>
          <dt>Term</dt><dd className="mono">{r?.term ?? '—'}</dd>
          <dt>Last / commit / applied</dt><dd className="mono">{r ? `${r.last_index} / ${r.commit_index} / ${r.applied_index}` : '—'}</dd>
          <dt>Last contact</dt><dd>{r ? (r.state === 'leader' ? '— (leader)' : `${r.last_contact_ms} ms ago`) : '—'}</dd>
        </dl>
      )}
    </section>
  );
}

function HistoryStore({ health }: { health?: HealthDoc }) {
  const h = health?.history;
  const bad = h && (h.failing || !h.reachable);
  return (
    <section className="card">
      <h2>History store</h2>
      {!health ? <Spinner /> : !h ? <p className="muted">This controller reports no history store section.</p> : (
        <dl className="kv">
          <dt>State</dt><dd><StatusBadge status={bad ? (h.reachable ? 'failing' : 'unreachable') : 'healthy'} tone={bad ? 'bad' : 'ok'} /></dd>
          <dt>Backend</dt><dd>{h.backend}</dd>
          <dt>Write lag</dt><dd>{h.lag_ms} ms</dd>
          <dt>Buffered</dt><dd>{h.buffered} record{h.buffered === 1 ? '' : 's'}</dd>
          <dt>Stored</dt><dd>{h.stored}</dd>
          {h.error && <><dt>Error</dt><dd className="error-box">{h.error}</dd></>}
        </dl>
      )}
    </section>
  );
}

/** Any other /health section, shown as it comes, so new ones need no UI change. */
function Sections({ health }: { health?: HealthDoc }) {
  if (!health) return null;
  const known = new Set(['status', 'node_id', 'version', 'raft', 'history']);
  const extra = Object.entries(health).filter(([k, v]) => !known.has(k) && v && typeof v === 'object');
  if (!extra.length) return null;
  return (
    <>
      {extra.map(([k, v]) => (
        <section className="card" key={k}>
          <h2 style={{ textTransform: 'capitalize' }}>{k}</h2>
          <dl className="kv">
            {Object.entries(v as Record<string, unknown>).map(([kk, vv]) => (
              <FlatRow key={kk} k={kk} v={vv} />
            ))}
          </dl>
        </section>
      ))}
    </>
  );
}

function FlatRow({ k, v }: { k: string; v: unknown }) {
  const text = typeof v === 'boolean' ? (v ? 'yes' : 'no') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
  return <><dt>{k.replace(/_/g, ' ')}</dt><dd className="mono">{text}</dd></>;
}

function Keyring() {
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: ['cluster', 'keyring'],
    queryFn: () => api.get<KeyringStatus>('/api/v1/operator/keyring'),
    // While the leader re-wraps envelopes, follow its progress.
    refetchInterval: (query) => (query.state.data?.rewrap.running || (query.state.data?.pending ?? 0) > 0 ? 2000 : false),
  });
  return (
    <section className="stack" aria-labelledby="keyring">
      <div className="row" style={{ justifyContent: 'space-between' }}>
        <h2 id="keyring">Keyring</h2>
        <ConfirmButton
          label="Rotate key"
          title="Rotate the keyring"
          confirmLabel="Rotate"
          body={<p>A new key-encryption key becomes active and the leader re-wraps every stored secret under it in the background. Secrets stay readable throughout. The old key can be removed once it wraps nothing.</p>}
          action={() => api.post('/api/v1/operator/keyring/rotate')}
          onDone={() => void qc.invalidateQueries({ queryKey: ['cluster', 'keyring'] })}
        />
      </div>
      <Loading query={q} what="keyring">
        {(k) => (
          <>
            <div className="row">
              {k.pending > 0 ? <StatusBadge status={`${k.pending} envelopes to re-wrap`} tone="warn" /> : <StatusBadge status="all envelopes under the active key" tone="ok" />}
              {k.rewrap.running && <Spinner label={`Re-wrapping… ${k.rewrap.rewrapped} done`} />}
              {!k.rewrap.running && k.rewrap.ended_at && <span className="muted">Last re-wrap: {k.rewrap.rewrapped} envelopes, <Time at={k.rewrap.ended_at} /></span>}
            </div>
            {k.rewrap.error && <div className="error-box">Re-wrap failed: {k.rewrap.error}</div>}
            <table>
              <thead><tr><th>Key</th><th>Tier</th><th>State</th><th>Wraps</th><th>Created</th><th /></tr></thead>
              <tbody>
                {k.keys.map((key) => (
                  <tr key={key.id}>
                    <td className="mono">{key.id}</td>
                    <td>{key.tier === 'root' ? 'root (key file)' : 'KEK (replicated)'}</td>
                    <td><StatusBadge status={key.id === k.active ? 'active' : key.state} tone={key.id === k.active ? 'ok' : 'idle'} /></td>
                    <td>{key.total} {Object.keys(key.envelopes).length > 0 && <span className="muted">({Object.entries(key.envelopes).map(([h, n]) => `${h}: ${n}`).join(', ')})</span>}</td>
                    <td>{key.created_at ? <><Time at={key.created_at} /> {key.created_by && <span className="muted">by {key.created_by}</span>}</> : '—'}</td>
                    <td>
                      {key.removable && (
                        <ConfirmButton label="Remove" variant="danger" danger title="Remove key" confirmLabel="Remove key"
                          body={<p>Key <code>{key.id}</code> wraps nothing and is not active. Removing it cannot be undone.</p>}
                          action={() => api.del(`/api/v1/operator/keyring/keys/${key.id}`)}
                          onDone={() => void qc.invalidateQueries({ queryKey: ['cluster', 'keyring'] })} />
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </Loading>
    </section>
  );
}

function SigningKeys() {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ['cluster', 'signing-keys'], queryFn: () => api.get<{ items: SigningKey[] }>('/api/v1/auth/keys') });
  return (
    <section className="stack" aria-labelledby="signing-keys">
      <div className="row" style={{ justifyContent: 'space-between' }}>
        <h2 id="signing-keys">Token signing keys</h2>
        <ConfirmButton label="Rotate signing key" title="Rotate the token signing key" confirmLabel="Rotate"
          body={<p>New access tokens are signed with a new key. Tokens signed with the old key stay valid until they expire.</p>}
          action={() => api.post('/api/v1/auth/keys/rotate')}
          onDone={() => void qc.invalidateQueries({ queryKey: ['cluster', 'signing-keys'] })} />
      </div>
      <Loading query={q} what="signing keys">
        {(d) => (
          <table>
            <thead><tr><th>Key ID</th><th>State</th><th>Created</th></tr></thead>
            <tbody>{d.items.map((k) => <tr key={k.kid}><td className="mono">{k.kid}</td><td>{k.active ? <StatusBadge status="active" tone="ok" /> : <StatusBadge status="verify only" tone="idle" />}</td><td><Time at={k.created_at} /></td></tr>)}</tbody>
          </table>
        )}
      </Loading>
    </section>
  );
}
