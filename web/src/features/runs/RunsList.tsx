import { useMemo } from 'react';
import { Link, useSearchParams } from 'react-router';
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { api, qs } from '../../api/client';
import { Button, EmptyState, ErrorBox, PageHeader, Spinner, StatusBadge, Time } from '../../components/ui';
import { stepTone } from './status';
import { duration, triggerText } from './format';
import { runStatuses, type Run, type RunPage } from './types';

// Every run, newest first, filtered by state, job, who started it and
// when; the list refreshes itself when runs change (query key 'runs').

const periods: Record<string, { label: string; ms?: number }> = {
  '': { label: 'Any time' },
  '1h': { label: 'Last hour', ms: 3600e3 },
  '24h': { label: 'Last 24 hours', ms: 86400e3 },
  '7d': { label: 'Last 7 days', ms: 7 * 86400e3 },
  '30d': { label: 'Last 30 days', ms: 30 * 86400e3 },
};

const pageSize = 50;

export default function RunsList() {
  const [sp, setSp] = useSearchParams();
  const status = sp.get('status') ?? '';
  const job = sp.get('job') ?? '';
  const by = sp.get('by') ?? '';
  const period = sp.get('since') ?? '';
  const set = (k: string, v: string) => {
    const next = new URLSearchParams(sp);
    if (v) next.set(k, v);
    else next.delete(k);
    setSp(next, { replace: true });
  };

  const jobs = useQuery({
    queryKey: ['jobs', 'names'],
    queryFn: ({ signal }) => api.get<{ items: { name: string }[] }>('/api/v1/jobs', { signal }),
  });

  const runs = useInfiniteQuery({
    queryKey: ['runs', 'list', { status, job, period }],
    initialPageParam: '',
    queryFn: ({ pageParam, signal }) => {
      const ms = periods[period]?.ms;
      const since = ms ? new Date(Date.now() - ms).toISOString().replace(/\.\d+Z$/, 'Z') : undefined;
      return api.get<RunPage>(`/api/v1/runs${qs({ status, job, since, limit: pageSize, cursor: pageParam })}`, { signal });
    },
    getNextPageParam: (last) => last.next || undefined,
  });

  const rows = useMemo(() => {
    const all = runs.data?.pages.flatMap((p) => p.items) ?? [];
    const needle = by.trim().toLowerCase();
    return needle ? all.filter((r) => triggerText(r.trigger).toLowerCase().includes(needle)) : all;
  }, [runs.data, by]);

  const filtered = !!(status || job || by || period);
  return (
    <div>
      <PageHeader title="Runs" />
      <div className="filters" role="search">
        <label>
          <span>State</span>
          <select value={status} onChange={(e) => set('status', e.target.value)} aria-label="State">
            <option value="">Any state</option>
            {runStatuses.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <label>
          <span>Job</span>
          <select value={job} onChange={(e) => set('job', e.target.value)} aria-label="Job">
            <option value="">Any job</option>
            {job && !jobs.data?.items.some((j) => j.name === job) && <option value={job}>{job}</option>}
            {jobs.data?.items.map((j) => <option key={j.name} value={j.name}>{j.name}</option>)}
          </select>
        </label>
        <label>
          <span>Started by</span>
          <input type="search" value={by} placeholder="user, token or schedule" onChange={(e) => set('by', e.target.value)} aria-label="Started by" />
        </label>
        <label>
          <span>When</span>
          <select value={period} onChange={(e) => set('since', e.target.value)} aria-label="When">
            {Object.entries(periods).map(([k, p]) => <option key={k} value={k}>{p.label}</option>)}
          </select>
        </label>
        {filtered && <Button variant="ghost" onClick={() => setSp(new URLSearchParams(), { replace: true })}>Clear filters</Button>}
      </div>
      {runs.error ? <ErrorBox error={runs.error} /> : null}
      {runs.isPending ? (
        <Spinner label="Loading runs…" />
      ) : rows.length === 0 ? (
        filtered ? (
          <EmptyState title="No runs match these filters" hint={by && runs.hasNextPage ? 'Only the pages loaded so far are searched by who started them: load more, or clear the filters.' : 'Clear the filters to see every run.'}
            action={runs.hasNextPage ? <Button onClick={() => void runs.fetchNextPage()} busy={runs.isFetchingNextPage}>Load more</Button> : undefined} />
        ) : (
          <EmptyState title="No runs yet" hint={<>Start one from a job: open <Link to="/jobs">Jobs</Link>, pick a job and press Run.</>} />
        )
      ) : (
        <>
          <table className="runs-table">
            <thead>
              <tr>
                <th>Run</th>
                <th>Job</th>
                <th>State</th>
                <th>Targets</th>
                <th>Started by</th>
                <th>Created</th>
                <th>Duration</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => <RunRow key={r.id} r={r} />)}
            </tbody>
          </table>
          <div className="list-footer">
            {runs.hasNextPage ? (
              <Button onClick={() => void runs.fetchNextPage()} busy={runs.isFetchingNextPage}>Load more</Button>
            ) : (
              <span className="muted">{rows.length} run{rows.length === 1 ? '' : 's'}</span>
            )}
          </div>
        </>
      )}
    </div>
  );
}

function RunRow({ r }: { r: Run }) {
  const s = r.summary;
  return (
    <tr>
      <td><Link className="mono" to={`/runs/${r.id}`}>{r.id}</Link></td>
      <td><Link to={`/jobs/${encodeURIComponent(r.job)}`}>{r.job}</Link> <span className="muted">v{r.version}</span></td>
      <td>
        <StatusBadge status={r.status} tone={stepTone(r.status)} />
        {r.reason && <div className="muted reason" title={r.reason}>{r.reason}</div>}
      </td>
      <td>
        {s.targets === 0 ? <span className="muted">—</span> : (
          <span title={`${s.succeeded} succeeded, ${s.failed} failed, ${s.running} running, ${s.waiting} waiting, ${s.pending} pending, ${s.canceled} canceled, ${s.skipped} skipped`}>
            {s.succeeded}/{s.targets} ok{s.failed ? <span className="exit-bad">, {s.failed} failed</span> : null}{s.running ? `, ${s.running} running` : ''}
          </span>
        )}
      </td>
      <td className="mono">{triggerText(r.trigger)}</td>
      <td><Time at={r.created_at} /></td>
      <td>{duration(r.started_at, r.finished_at)}</td>
    </tr>
  );
}
