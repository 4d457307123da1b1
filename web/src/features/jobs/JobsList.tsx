import { useMemo, useState } from 'react';
import { Link } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { api } from '../../api/client';
import { EmptyState, ErrorBox, PageHeader, Spinner, StatusBadge, Time } from '../../components/ui';
import { jobsApi, type RunSummary } from './api';

interface ScheduleLite {
  name: string;
  job: string;
  cron: string;
  enabled: boolean;
  next_fires: string[];
}

/** /jobs: every job with its latest version, last run and schedules. */
export function JobsList() {
  const [q, setQ] = useState('');
  const jobs = useQuery({ queryKey: ['jobs', 'list'], queryFn: jobsApi.list });
  // The newest runs, to show each job's last state; one request for all jobs.
  const runs = useQuery({ queryKey: ['runs', 'latest-per-job'], queryFn: () => jobsApi.runs({ limit: 500 }) });
  const schedules = useQuery({
    queryKey: ['schedules', 'list'],
    queryFn: () => api.get<{ items: ScheduleLite[] }>('/api/v1/schedules').then((r) => r.items),
  });
  const lastRun = useMemo(() => {
    const m = new Map<string, RunSummary>();
    for (const r of runs.data?.items ?? []) if (!m.has(r.job)) m.set(r.job, r);
    return m;
  }, [runs.data]);
  const schedOf = useMemo(() => {
    const m = new Map<string, ScheduleLite[]>();
    for (const s of schedules.data ?? []) m.set(s.job, [...(m.get(s.job) ?? []), s]);
    return m;
  }, [schedules.data]);
  const list = useMemo(() => {
    const needle = q.trim().toLowerCase();
    return (jobs.data ?? []).filter((j) => !needle || `${j.name} ${j.description ?? ''}`.toLowerCase().includes(needle));
  }, [jobs.data, q]);

  return (
    <div>
      <PageHeader title="Jobs" actions={<Link className="btn btn-primary" to="/jobs/new">New job</Link>}>
        <span className="muted">Definitions of work to run on targets; each save is a new version.</span>
      </PageHeader>
      <ErrorBox error={jobs.error} />
      {jobs.isPending ? (
        <Spinner label="Loading jobs…" />
      ) : jobs.data && jobs.data.length === 0 ? (
        <EmptyState title="No jobs yet" hint="Build one in the visual designer: drag steps, connect them, save." action={<Link className="btn btn-primary" to="/jobs/new">New job</Link>} />
      ) : (
        <>
          <div className="toolbar">
            <input type="search" aria-label="Search jobs" placeholder="Search by name or description…" value={q} onChange={(e) => setQ(e.target.value)} />
            <span className="muted">{list.length} of {jobs.data?.length ?? 0}</span>
          </div>
          <table>
            <thead>
              <tr><th>Name</th><th>Description</th><th>Version</th><th>Last run</th><th>Schedule</th><th>Updated</th></tr>
            </thead>
            <tbody>
              {list.map((j) => {
                const r = lastRun.get(j.name);
                const ss = schedOf.get(j.name) ?? [];
                return (
                  <tr key={j.name}>
                    <td className="nowrap"><Link to={`/jobs/${encodeURIComponent(j.name)}`}>{j.name}</Link></td>
                    <td className="muted">{j.description}</td>
                    <td>v{j.latest_version}</td>
                    <td>{r ? <Link to={`/runs/${r.id}`}><StatusBadge status={r.status} /></Link> : runs.isPending ? <Spinner /> : <span className="muted">never run</span>}{r && <> <Time at={r.created_at} /></>}</td>
                    <td>
                      {ss.length === 0 ? <span className="muted">—</span> : ss.map((s) => (
                        <div key={s.name}>
                          <Link to="/schedules"><code>{s.cron}</code></Link>{' '}
                          {s.enabled ? s.next_fires[0] ? <>next <Time at={s.next_fires[0]} /></> : null : <StatusBadge status="disabled" tone="idle" />}
                        </div>
                      ))}
                    </td>
                    <td><Time at={j.updated_at} /> <span className="muted">{j.updated_by}</span></td>
                  </tr>
                );
              })}
              {list.length === 0 && <tr><td colSpan={6} className="muted">No job matches “{q}”.</td></tr>}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}
