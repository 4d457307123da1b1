import { useMemo } from 'react';
import { Link } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { api, qs } from '../../api/client';
import { useAuth } from '../../app/auth';
import { useHealth, usePeers } from '../../app/health';
import { ErrorBox, PageHeader, Spinner, StatusBadge, Time } from '../../components/ui';
import { RunsChart } from './RunsChart';
import { bucketRuns, totals } from './series';

interface RunRow { id: string; job: string; status: string; reason?: string; created_at: string; started_at?: string; finished_at?: string }
interface RunPage { items: RunRow[]; next?: string }

/** At most this many pages of 500 runs feed the chart; more is noted. */
const maxChartPages = 4;

async function runsSince(since: Date): Promise<{ runs: RunRow[]; truncated: boolean }> {
  const runs: RunRow[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < maxChartPages; i++) {
    const p = await api.get<RunPage>(`/api/v1/runs${qs({ since: since.toISOString().replace(/\.\d+Z$/, 'Z'), limit: 500, cursor })}`);
    runs.push(...p.items);
    if (!p.next) return { runs, truncated: false };
    cursor = p.next;
  }
  return { runs, truncated: true };
}

export default function Dashboard() {
  const { can } = useAuth();
  return (
    <div className="stack">
      <PageHeader title="Dashboard" />
      <div className="dash-grid">
        {can('jobs:read') && <RunsCard />}
        <HealthCard />
        {can('jobs:read') && <RunningNow />}
        {can('jobs:read') && <RecentFailures />}
      </div>
    </div>
  );
}

function RunsCard() {
  const q = useQuery({
    queryKey: ['runs', 'dashboard', '24h'],
    queryFn: () => runsSince(new Date(Date.now() - 24 * 3_600_000)),
  });
  const buckets = useMemo(() => (q.data ? bucketRuns(q.data.runs, new Date()) : null), [q.data]);
  const t = buckets ? totals(buckets) : null;
  return (
    <section className="card dash-wide" aria-labelledby="runs-24h">
      <h2 id="runs-24h">Runs in the last 24 hours</h2>
      {q.error ? <ErrorBox error={q.error} /> : !buckets || !t ? <Spinner label="Loading runs…" /> : (
        <>
          <div className="stats">
            <Stat n={t.succeeded} label="succeeded" />
            <Stat n={t.failed} label="failed" />
            <Stat n={t.canceled} label="canceled" />
            <Stat n={t.active} label="queued or running" />
          </div>
          <RunsChart buckets={buckets} />
          {q.data?.truncated && <p className="muted">Counting the newest {q.data.runs.length} runs only.</p>}
          {q.data && q.data.runs.length === 0 && <p className="muted">No runs today. Start one from <Link to="/jobs">Jobs</Link>.</p>}
        </>
      )}
    </section>
  );
}

function Stat({ n, label }: { n: number | string; label: string }) {
  return <div><div className="stat">{n}</div><div className="stat-label">{label}</div></div>;
}

function RunningNow() {
  const q = useQuery({
    queryKey: ['runs', 'dashboard', 'running'],
    queryFn: () => api.get<RunPage>(`/api/v1/runs${qs({ status: 'running', limit: 10 })}`),
  });
  return (
    <section className="card" aria-labelledby="running-now">
      <h2 id="running-now">Running now</h2>
      {q.error ? <ErrorBox error={q.error} /> : !q.data ? <Spinner label="Loading…" /> : q.data.items.length === 0 ? (
        <p className="muted">Nothing is running.</p>
      ) : (
        <RunTable runs={q.data.items} when="started" more={!!q.data.next} moreHref="/runs?status=running" />
      )}
    </section>
  );
}

function RecentFailures() {
  const q = useQuery({
    queryKey: ['runs', 'dashboard', 'failed'],
    queryFn: () => api.get<RunPage>(`/api/v1/runs${qs({ status: 'failed', limit: 8 })}`),
  });
  return (
    <section className="card" aria-labelledby="recent-failures">
      <h2 id="recent-failures">Recent failures</h2>
      {q.error ? <ErrorBox error={q.error} /> : !q.data ? <Spinner label="Loading…" /> : q.data.items.length === 0 ? (
        <p className="muted">No failed runs.</p>
      ) : (
        <RunTable runs={q.data.items} when="finished" more={!!q.data.next} moreHref="/runs?status=failed" />
      )}
    </section>
  );
}

function RunTable({ runs, when, more, moreHref }: { runs: RunRow[]; when: 'started' | 'finished'; more: boolean; moreHref: string }) {
  return (
    <>
      <table>
        <thead><tr><th>Job</th><th>Run</th><th>State</th><th>{when === 'started' ? 'Started' : 'Finished'}</th></tr></thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.id}>
              <td>{r.job}</td>
              <td><Link to={`/runs/${r.id}`} className="mono">{r.id}</Link></td>
              <td><StatusBadge status={r.status} />{r.reason && <div className="muted truncate" title={r.reason}>{r.reason}</div>}</td>
              <td><Time at={when === 'started' ? (r.started_at ?? r.created_at) : (r.finished_at ?? r.created_at)} /></td>
            </tr>
          ))}
        </tbody>
      </table>
      {more && <p><Link to={moreHref}>See all</Link></p>}
    </>
  );
}

function HealthCard() {
  const { can } = useAuth();
  const admin = can('cluster:admin');
  const h = useHealth();
  const peers = usePeers(admin);
  const raft = h.data?.raft;
  const agents = h.data?.agents;
  const maxLag = peers.data ? Math.max(0, ...peers.data.peers.map((p) => p.trails_leader_by ?? 0)) : null;
  const unreachable = peers.data?.peers.filter((p) => !p.reachable).length ?? 0;
  return (
    <section className="card" aria-labelledby="health">
      <h2 id="health">
        Cluster and agents
        {admin && <Link to="/cluster" className="muted" style={{ fontWeight: 400, fontSize: 12 }}>Details</Link>}
      </h2>
      {h.error ? <ErrorBox error={h.error} /> : !h.data ? <Spinner label="Loading health…" /> : (
        <div className="stack">
          <div className="stats">
            <Stat n={agents ? agents.connected : '—'} label="agents up" />
            <Stat n={agents ? agents.down : '—'} label="agents down" />
            <Stat n={raft ? raft.peers.length : '—'} label={raft?.peers.length === 1 ? 'controller' : 'controllers'} />
          </div>
          {agents && agents.down > 0 && (
            <div className="warn-box">{agents.down} agent{agents.down === 1 ? ' is' : 's are'} down. {can('agents:read') && <Link to="/agents">See agents</Link>}</div>
          )}
          {agents && agents.enrolled === 0 && (
            <p className="muted">No agents yet. {can('agents:admin') ? <Link to="/agents?add=1">Add an agent</Link> : 'Ask an administrator to add one.'}</p>
          )}
          <dl className="kv">
            <dt>Leader</dt>
            <dd>{raft?.leader_id ? <><span className="mono">{raft.leader_id}</span> <span className="muted">{raft.leader_addr}</span></> : <StatusBadge status="no leader" tone="bad" />}</dd>
            <dt>This node</dt>
            <dd><span className="mono">{h.data.node_id}</span> <StatusBadge status={raft?.state ?? 'unknown'} tone={raft?.state === 'leader' ? 'ok' : raft?.state === 'follower' ? 'info' : 'warn'} /></dd>
            <dt>Raft term / index</dt>
            <dd className="mono">{raft ? `${raft.term} / ${raft.applied_index}` : '—'}</dd>
            <dt>Replication lag</dt>
            <dd>
              {!admin ? <span className="muted">needs cluster:admin</span>
                : peers.error ? <ErrorBox error={peers.error} />
                : maxLag === null ? <Spinner />
                : <>{maxLag === 0 ? <StatusBadge status="in sync" tone="ok" /> : <StatusBadge status={`${maxLag} entries behind`} tone="warn" />}{unreachable > 0 && <> <StatusBadge status={`${unreachable} unreachable`} tone="bad" /></>}</>}
            </dd>
            <dt>History store</dt>
            <dd>{h.data.history ? <StatusBadge status={h.data.history.failing || !h.data.history.reachable ? 'failing' : 'healthy'} tone={h.data.history.failing || !h.data.history.reachable ? 'bad' : 'ok'} /> : '—'}</dd>
          </dl>
        </div>
      )}
    </section>
  );
}
