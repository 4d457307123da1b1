import { Fragment, lazy, Suspense, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { useQueries, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, qs } from '../../api/client';
import { useAuth } from '../../app/auth';
import { Button, EmptyState, ErrorBox, Loading, PageHeader, Spinner, StatusBadge, Time } from '../../components/ui';
import { ConfirmButton } from '../../components/ConfirmButton';
import { TargetDialog } from './TargetDialog';
import { TargetState } from './TargetsPage';
import { Relationships } from './Relationships';
import type { Target } from './types';

// The graph canvas (React Flow + dagre) loads only when a target is opened.
const RelationshipGraph = lazy(() => import('./RelationshipGraph'));

interface RunItem {
  id: string;
  job: string;
  status: string;
  created_at: string;
  finished_at?: string;
  trigger?: { kind?: string; by?: string };
}

interface CredentialMeta {
  name: string;
  kind: string;
  attachments?: { scope: string; name: string; role: string }[];
}

export function TargetDetail() {
  const { id = '' } = useParams();
  const { can } = useAuth();
  const [editing, setEditing] = useState(false);
  const qc = useQueryClient();
  const nav = useNavigate();
  const target = useQuery({
    queryKey: ['targets', 'one', id],
    queryFn: () => api.get<Target>(`/api/v1/targets/${encodeURIComponent(id)}`),
  });
  return (
    <Loading query={target} what="target">
      {(t) => (
        <>
          <PageHeader
            title={<>{t.name} <TargetState t={t} /></>}
            actions={
              can('assets:write') && (
                <>
                  <Button onClick={() => setEditing(true)}>Edit</Button>
                  <ConfirmButton
                    label="Delete"
                    title={`Delete ${t.name}?`}
                    action={async () => {
                      await api.del(`/api/v1/targets/${encodeURIComponent(t.id)}`);
                      qc.removeQueries({ queryKey: ['targets', 'one', id] });
                      await qc.invalidateQueries({ queryKey: ['targets'] });
                      void nav('/inventory');
                    }} confirmLabel="Delete" danger body={<><p>The target <strong>{t.name}</strong> and its relationships are removed.</p></>} />
                </>
              )
            }
          >
            <Link to="/inventory">← Inventory</Link> <span className="muted mono">{t.id}</span>
          </PageHeader>
          <div className="inv-grid2">
            <section className="card" aria-label="Overview">
              <h2>Overview</h2>
              <dl className="inv-kv">
                <dt>Addresses</dt><dd className="mono">{t.addresses.join(', ') || '—'}</dd>
                <dt>Connection</dt>
                <dd>
                  {t.connection.type === 'agent' ? (
                    <>agent <Link to={`/agents/${encodeURIComponent(t.connection.agent_id ?? '')}`} className="mono">{t.connection.agent_id}</Link></>
                  ) : (
                    <>ssh{t.connection.username ? ` as ${t.connection.username}` : ''}, port {t.connection.port ?? 22}, via <span className="mono">{t.connection.via}</span>, host key {t.connection.host_key_policy || 'tofu'}</>
                  )}
                </dd>
                <dt>Tags</dt>
                <dd>{Object.keys(t.tags).length ? Object.entries(t.tags).map(([k, v]) => <span className="chip" key={k}>{k}={v}</span>) : '—'}</dd>
                <dt>Groups</dt>
                <dd>
                  {t.groups.length + (t.dynamic_groups?.length ?? 0) === 0 ? '—' : null}
                  {t.groups.map((g) => <Link key={g} className="chip" to={`/inventory/groups/${encodeURIComponent(g)}`}>{g}</Link>)}
                  {t.dynamic_groups?.map((g) => <Link key={g} className="chip" to={`/inventory/groups/${encodeURIComponent(g)}`} title="dynamic group">{g} ⚙</Link>)}
                </dd>
                <dt>Owner</dt><dd>{t.owner || '—'}</dd>
                <dt>Last seen</dt><dd><Time at={t.status.last_seen} /></dd>
                <dt>Last run</dt>
                <dd>{t.status.last_run ? <><Link to={`/runs/${t.status.last_run.run_id}`}>{t.status.last_run.run_id}</Link> <StatusBadge status={t.status.last_run.outcome} /> <Time at={t.status.last_run.at} /></> : '—'}</dd>
                <dt>Created</dt><dd><Time at={t.created_at} />{t.created_by ? ` by ${t.created_by}` : ''}</dd>
                <dt>Changed</dt><dd><Time at={t.updated_at} /></dd>
              </dl>
              {t.notes && <p style={{ whiteSpace: 'pre-wrap' }}>{t.notes}</p>}
            </section>
            <section className="card" aria-label="Facts">
              <h2>Facts</h2>
              {Object.keys(t.facts).length === 0 ? (
                <p className="muted">No facts. Facts are reported by the target's agent{t.connection.type === 'ssh' ? '; an SSH target has none until a fact-gathering step records them' : ''}.</p>
              ) : (
                <dl className="inv-kv">
                  {Object.entries(t.facts).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => (
                    <Fragment key={k}>
                      <dt className="mono">{k}</dt>
                      <dd className="mono">{v}</dd>
                    </Fragment>
                  ))}
                </dl>
              )}
            </section>
          </div>
          <div className="inv-grid2">
            {can('jobs:read') && <TargetRuns name={t.name} />}
            {can('credentials:read') && <TargetCredentials t={t} />}
          </div>
          <Relationships target={t} writable={can('assets:write')} />
          <section className="inv-section" aria-label="Relationship graph">
            <header><h2>Relationship graph</h2></header>
            <Suspense fallback={<Spinner label="Loading the graph view…" />}>
              <RelationshipGraph target={t} />
            </Suspense>
          </section>
          {editing && <TargetDialog target={t} onClose={() => setEditing(false)} />}
        </>
      )}
    </Loading>
  );
}

/** The latest runs that included the target (GET /api/v1/runs?target=). */
function TargetRuns({ name }: { name: string }) {
  const runs = useQuery({
    queryKey: ['runs', 'by-target', name],
    queryFn: () => api.get<{ items: RunItem[]; next?: string }>(`/api/v1/runs${qs({ target: name, limit: 10 })}`),
  });
  return (
    <section className="card" aria-label="Runs">
      <h2>Recent runs on this target</h2>
      <Loading query={runs} what="runs">
        {(d) =>
          d.items.length === 0 ? (
            <p className="muted">No run has included this target yet. Start one from a job; its runs will be listed here.</p>
          ) : (
            <table>
              <thead><tr><th>Run</th><th>Job</th><th>Status</th><th>Started</th></tr></thead>
              <tbody>
                {d.items.map((r) => (
                  <tr key={r.id}>
                    <td><Link className="mono" to={`/runs/${r.id}`}>{r.id.slice(0, 12)}</Link></td>
                    <td><Link to={`/jobs/${encodeURIComponent(r.job)}`}>{r.job}</Link></td>
                    <td><StatusBadge status={r.status} /></td>
                    <td><Time at={r.created_at} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
      {runs.data?.next && <p><Link to={`/runs?target=${encodeURIComponent(name)}`}>All runs on this target →</Link></p>}
    </section>
  );
}

/**
 * Credentials attached to the target or to one of its groups. The list
 * endpoint carries no attachments, so each credential's detail is read;
 * inventories hold tens of credentials, not thousands.
 */
function TargetCredentials({ t }: { t: Target }) {
  const list = useQuery({ queryKey: ['credentials', 'list'], queryFn: () => api.get<{ items: CredentialMeta[] }>('/api/v1/credentials') });
  const names = list.data?.items.map((c) => c.name) ?? [];
  const details = useQueries({
    queries: names.map((n) => ({
      queryKey: ['credentials', 'one', n],
      queryFn: () => api.get<CredentialMeta>(`/api/v1/credentials/${encodeURIComponent(n)}`),
    })),
  });
  const groups = new Set([...t.groups, ...(t.dynamic_groups ?? [])]);
  const rows = details.flatMap((d) =>
    (d.data?.attachments ?? [])
      .filter((a) => (a.scope === 'target' && (a.name === t.name || a.name === t.id)) || (a.scope === 'group' && groups.has(a.name)))
      .map((a) => ({ cred: d.data!, ...a })),
  );
  const loading = list.isPending || details.some((d) => d.isPending);
  return (
    <section className="card" aria-label="Credentials">
      <h2>Credentials attached</h2>
      <ErrorBox error={list.error ?? details.find((d) => d.error)?.error} />
      {loading ? (
        <Spinner label="Loading credentials…" />
      ) : rows.length === 0 ? (
        <EmptyState title="No credential is attached" hint={<>Attach one from <Link to="/credentials">Credentials</Link> to this target or one of its groups, with a role such as ssh.</>} />
      ) : (
        <table>
          <thead><tr><th>Credential</th><th>Kind</th><th>Role</th><th>Through</th></tr></thead>
          <tbody>
            {rows.map((r) => (
              <tr key={`${r.cred.name}/${r.scope}/${r.name}/${r.role}`}>
                <td><Link to={`/credentials/${encodeURIComponent(r.cred.name)}`}>{r.cred.name}</Link></td>
                <td>{r.cred.kind}</td>
                <td><code>{r.role}</code></td>
                <td>{r.scope === 'target' ? 'this target' : <>group <Link to={`/inventory/groups/${encodeURIComponent(r.name)}`}>{r.name}</Link></>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
