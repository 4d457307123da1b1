import { useMemo, useState } from 'react';
import { Link, Route, Routes, useNavigate, useParams, useSearchParams } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, qs } from '../../api/client';
import { useAuth } from '../../app/auth';
import { ConfirmButton } from '../../components/ConfirmButton';
import { Button, EmptyState, Loading, PageHeader, StatusBadge, Time } from '../../components/ui';
import { AddAgentDialog } from './AddAgentDialog';
import { agentState, formatBytes, type Agent, type JoinToken } from './types';

export default function AgentsRoutes() {
  return (
    <Routes>
      <Route index element={<AgentList />} />
      <Route path=":id" element={<AgentDetail />} />
    </Routes>
  );
}

async function allAgents(): Promise<Agent[]> {
  const out: Agent[] = [];
  let after = '';
  for (;;) {
    const p = await api.get<{ items: Agent[]; next?: string }>(`/api/v1/agents${qs({ limit: 1000, after })}`);
    out.push(...p.items);
    if (!p.next) return out;
    after = p.next;
  }
}

function matches(a: Agent, q: string): boolean {
  if (!q) return true;
  const hay = [a.name, a.id, a.version, a.facts.hostname, a.facts.os, ...(a.facts.addresses ?? []), ...Object.entries(a.tags).map(([k, v]) => `${k}=${v}`)]
    .join(' ')
    .toLowerCase();
  return q.toLowerCase().split(/\s+/).every((w) => hay.includes(w));
}

function AgentList() {
  const { can } = useAuth();
  const admin = can('agents:admin');
  const [params, setParams] = useSearchParams();
  const [q, setQ] = useState('');
  const [showRevoked, setShowRevoked] = useState(false);
  const agents = useQuery({ queryKey: ['agents', 'list'], queryFn: allAgents });
  const addOpen = params.get('add') === '1';
  const setAdd = (v: boolean) => setParams(v ? { add: '1' } : {}, { replace: true });
  const rows = useMemo(() => (agents.data ?? []).filter((a) => (showRevoked || !a.revoked) && matches(a, q)), [agents.data, q, showRevoked]);
  return (
    <div className="stack">
      <PageHeader title="Agents" actions={admin && <Button variant="primary" onClick={() => setAdd(true)}>Add an agent</Button>}>
        <p className="muted">Hosts that run steps. Status updates live.</p>
      </PageHeader>
      <div className="filters">
        <input type="search" data-page-search aria-label="Search agents" placeholder="Search name, tag, address… (/)" value={q} onChange={(e) => setQ(e.target.value)} />
        <label className="row"><input type="checkbox" checked={showRevoked} onChange={(e) => setShowRevoked(e.target.checked)} /> Show revoked</label>
      </div>
      <Loading query={agents} what="agents">
        {(list) => list.length === 0 ? (
          <EmptyState title="No agents yet" hint="Add an agent: create a join token and run the command it gives you on the host." action={admin && <Button variant="primary" onClick={() => setAdd(true)}>Add an agent</Button>} />
        ) : rows.length === 0 ? (
          <EmptyState title="No agent matches" hint="Clear the search or show revoked agents." />
        ) : (
          <div className="table-wrap">
            <table>
              <thead><tr><th>Name</th><th>Status</th><th>Version</th><th>Host</th><th>Addresses</th><th>Tags</th><th>Last change</th></tr></thead>
              <tbody>
                {rows.map((a) => {
                  const st = agentState(a);
                  return (
                    <tr key={a.id}>
                      <td><Link to={`/agents/${a.id}`}>{a.name}</Link><div className="muted mono">{a.id}</div></td>
                      <td><StatusBadge status={st.status} tone={st.tone} /></td>
                      <td className="mono">{a.version || '—'}</td>
                      <td>{a.facts.hostname || '—'}<div className="muted">{[a.facts.os, a.facts.os_version, a.facts.arch].filter(Boolean).join(' ')}</div></td>
                      <td className="mono">{(a.facts.addresses ?? []).slice(0, 2).join(', ') || '—'}</td>
                      <td>{Object.entries(a.tags).map(([k, v]) => <code key={k} className="tag">{k}={v}</code>)}</td>
                      <td><Time at={a.last_seen} /></td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Loading>
      {admin && <JoinTokens />}
      <AddAgentDialog open={addOpen} onClose={() => setAdd(false)} />
    </div>
  );
}

function JoinTokens() {
  const tokens = useQuery({ queryKey: ['agents', 'join-tokens'], queryFn: () => api.get<{ items: JoinToken[] }>('/api/v1/agents/join-tokens') });
  const qc = useQueryClient();
  return (
    <section className="stack" aria-labelledby="join-tokens">
      <h2 id="join-tokens">Join tokens</h2>
      <Loading query={tokens} what="join tokens">
        {(d) => d.items.length === 0 ? <p className="muted">No join tokens. "Add an agent" creates one.</p> : (
          <table>
            <thead><tr><th>ID</th><th>State</th><th>Uses</th><th>Tags</th><th>Created</th><th>Expires</th><th /></tr></thead>
            <tbody>
              {d.items.map((t) => {
                const expired = Date.parse(t.expires_at) <= Date.now();
                const used = t.uses >= t.max_uses;
                const state = t.revoked ? 'revoked' : expired ? 'expired' : used ? 'used up' : 'active';
                return (
                  <tr key={t.id}>
                    <td className="mono">{t.id}</td>
                    <td><StatusBadge status={state} tone={state === 'active' ? 'ok' : 'idle'} /></td>
                    <td className="num">{t.uses} / {t.max_uses}</td>
                    <td>{Object.entries(t.tags).map(([k, v]) => <code key={k} className="tag">{k}={v}</code>)}</td>
                    <td><Time at={t.created_at} /> <span className="muted">by {t.created_by}</span></td>
                    <td><Time at={t.expires_at} /></td>
                    <td><div className="row-end">
                      {state === 'active' && (
                        <ConfirmButton
                          label="Revoke"
                          variant="danger"
                          danger
                          title="Revoke join token"
                          body={<p>No more hosts can enrol with token <code>{t.id}</code>. Agents that already enrolled with it keep working.</p>}
                          action={() => api.del(`/api/v1/agents/join-tokens/${t.id}`)}
                          onDone={() => void qc.invalidateQueries({ queryKey: ['agents', 'join-tokens'] })}
                        />
                      )}
                    </div></td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Loading>
    </section>
  );
}

function AgentDetail() {
  const { id = '' } = useParams();
  const { can } = useAuth();
  const admin = can('agents:admin');
  const qc = useQueryClient();
  const nav = useNavigate();
  const q = useQuery({ queryKey: ['agents', 'detail', id], queryFn: () => api.get<Agent>(`/api/v1/agents/${encodeURIComponent(id)}`) });
  const refresh = () => void qc.invalidateQueries({ queryKey: ['agents'] });
  return (
    <Loading query={q} what="agent">
      {(a) => {
        const st = agentState(a);
        return (
          <div className="stack">
            <PageHeader
              title={<>{a.name} <StatusBadge status={st.status} tone={st.tone} /></>}
              actions={admin && !a.revoked && (
                <>
                  {a.draining ? (
                    <ConfirmButton label="Undrain" title="Undrain agent" confirmLabel="Undrain" body={<p><strong>{a.name}</strong> will take new work again.</p>}
                      action={() => api.post(`/api/v1/agents/${a.id}/undrain`)} onDone={refresh} />
                  ) : (
                    <ConfirmButton label="Drain" title="Drain agent" confirmLabel="Drain" body={<p><strong>{a.name}</strong> takes no new work. Steps already running on it finish.</p>}
                      action={() => api.post(`/api/v1/agents/${a.id}/drain`)} onDone={refresh} />
                  )}
                  <ConfirmButton label="Revoke" variant="danger" danger title="Revoke agent" confirmLabel="Revoke agent"
                    body={<p>Revoking <strong>{a.name}</strong> disconnects it and rejects its certificate for good. To bring the host back it must join again with a new token.</p>}
                    action={() => api.del(`/api/v1/agents/${a.id}`)} onDone={() => { refresh(); nav('/agents'); }} />
                </>
              )}
            >
              <p className="muted"><Link to="/agents">Agents</Link> / <span className="mono">{a.id}</span></p>
            </PageHeader>
            <div className="grid">
              <section className="card">
                <h2>Agent</h2>
                <dl className="kv">
                  <dt>Version</dt><dd className="mono">{a.version || '—'}</dd>
                  <dt>Connected to</dt><dd className="mono">{a.connected_to || '—'}</dd>
                  <dt>Last change</dt><dd><Time at={a.last_seen} /></dd>
                  <dt>Enrolled</dt><dd><Time at={a.enrolled_at} /> <span className="muted">with token <code>{a.join_token_id}</code></span></dd>
                  <dt>Certificate</dt><dd><span className="mono">{a.cert_serial}</span><div className="muted">valid until {new Date(a.cert_not_after).toLocaleString()}</div></dd>
                  {a.revoked_at && <><dt>Revoked</dt><dd><Time at={a.revoked_at} /></dd></>}
                  <dt>Tags</dt><dd>{Object.keys(a.tags).length ? Object.entries(a.tags).map(([k, v]) => <code key={k} className="tag">{k}={v}</code>) : '—'}</dd>
                </dl>
              </section>
              <section className="card">
                <h2>Facts</h2>
                <dl className="kv">
                  <dt>Hostname</dt><dd>{a.facts.hostname || '—'}</dd>
                  <dt>OS</dt><dd>{[a.facts.os, a.facts.os_version].filter(Boolean).join(' ') || '—'}</dd>
                  <dt>Kernel</dt><dd className="mono">{a.facts.kernel || '—'}</dd>
                  <dt>Architecture</dt><dd>{a.facts.arch || '—'}</dd>
                  <dt>CPUs</dt><dd>{a.facts.cpus ?? '—'}</dd>
                  <dt>Memory</dt><dd>{formatBytes(a.facts.memory_bytes)}</dd>
                  <dt>Addresses</dt><dd className="mono">{(a.facts.addresses ?? []).join(', ') || '—'}</dd>
                  {Object.entries(a.facts.extra ?? {}).map(([k, v]) => <FactRow key={k} k={k} v={v} />)}
                </dl>
              </section>
              <section className="card">
                <h2>Plugins</h2>
                {a.plugins?.length ? (
                  <table><thead><tr><th>Name</th><th>Version</th></tr></thead>
                    <tbody>{a.plugins.map((p) => <tr key={`${p.name}@${p.version}`}><td>{p.name}</td><td className="mono">{p.version || '—'}</td></tr>)}</tbody>
                  </table>
                ) : <p className="muted">No step plugins reported.</p>}
              </section>
            </div>
          </div>
        );
      }}
    </Loading>
  );
}

function FactRow({ k, v }: { k: string; v: string }) {
  return <><dt>{k}</dt><dd className="mono">{v}</dd></>;
}
