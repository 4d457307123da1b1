import { useCallback, useMemo, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../api/client';
import { Button, Dialog, EmptyState, ErrorBox, Loading, PageHeader, StatusBadge, Time } from '../../components/ui';
import { LogViewer, type Jump } from './LogViewer';
import { RunDag, type DagStep } from './RunDag';
import { stepTone } from './status';
import { useRunLog } from './useRunLog';
import { duration, triggerText } from './format';
import { maskedValue, runFinal, type Approval, type JobDetail, type Run, type StepView, type TargetView } from './types';

export default function RunView() {
  const { id = '' } = useParams();
  const q = useQuery({ queryKey: ['runs', id], queryFn: ({ signal }) => api.get<Run>(`/api/v1/runs/${encodeURIComponent(id)}`, { signal }) });
  return <Loading query={q} what="the run">{(run) => <RunPage run={run} />}</Loading>;
}

function RunPage({ run }: { run: Run }) {
  const qc = useQueryClient();
  const navigate = useNavigate();
  const { store, source, loadStored } = useRunLog(run.id, run);
  const [jump, setJump] = useState<Jump | undefined>();
  const pick = useCallback((target: string, step?: string) => setJump((j) => ({ target, step, n: (j?.n ?? 0) + 1 })), []);
  const pickStep = useCallback((step: string) => {
    const t = run.targets.find((x) => x.steps.some((s) => s.id === step && s.status !== 'pending')) ?? run.targets[0];
    if (t) pick(t.name, step);
  }, [run.targets, pick]);

  const job = useQuery({
    queryKey: ['jobs', run.job, run.version],
    queryFn: ({ signal }) => api.get<JobDetail>(`/api/v1/jobs/${encodeURIComponent(run.job)}?version=${run.version}`, { signal }),
    staleTime: Infinity, // a version never changes
    retry: false,
  });
  const dagSteps = useMemo<DagStep[]>(() => {
    const spec = job.data?.version.spec.steps;
    if (spec?.length) return spec.map((s) => ({ id: s.id, uses: s.uses, needs: s.needs }));
    // The job (or this version) is gone: the steps without their edges.
    return (run.targets[0]?.steps ?? []).map((s) => ({ id: s.id }));
  }, [job.data, run.targets]);

  const final = runFinal(run.status);
  const [confirmCancel, setConfirmCancel] = useState<string[] | null>(null);
  const cancel = useMutation({
    mutationFn: (targets: string[]) => api.post<Run>(`/api/v1/runs/${encodeURIComponent(run.id)}/cancel`, targets.length ? { targets } : {}),
    onSuccess: (r) => {
      qc.setQueryData(['runs', run.id], r);
      setConfirmCancel(null);
    },
  });
  const rerun = useMutation({
    mutationFn: (mode: 'all' | 'failed' | 'resume') => api.post<Run>(`/api/v1/runs/${encodeURIComponent(run.id)}/rerun`, { mode }),
    onSuccess: (r) => {
      qc.setQueryData(['runs', r.id], r);
      void qc.invalidateQueries({ queryKey: ['runs'] });
      void navigate(`/runs/${r.id}`);
    },
  });
  const someFailed = run.targets.some((t) => t.status !== 'succeeded');

  return (
    <div className="run-view">
      <PageHeader
        title={<>Run <span className="mono">{run.id}</span> <span data-testid="run-status">{<StatusBadge status={run.status} tone={stepTone(run.status)} />}</span></>}
        actions={
          <>
            {!final && (
              <Button variant="danger" onClick={() => setConfirmCancel([])} busy={cancel.isPending} disabled={!!run.cancel_requested_at}>
                {run.cancel_requested_at ? 'Canceling…' : 'Cancel run'}
              </Button>
            )}
            {final && (
              <>
                <Button onClick={() => rerun.mutate('all')} busy={rerun.isPending && rerun.variables === 'all'}>Rerun all</Button>
                <Button onClick={() => rerun.mutate('failed')} disabled={!someFailed} busy={rerun.isPending && rerun.variables === 'failed'} title="Rerun only the targets that did not succeed">
                  Rerun failed targets
                </Button>
                <Button onClick={() => rerun.mutate('resume')} disabled={!someFailed} busy={rerun.isPending && rerun.variables === 'resume'} title="Rerun the failed targets, keeping the steps that succeeded">
                  Resume
                </Button>
              </>
            )}
          </>
        }
      >
        <div className="run-meta">
          <span>Job <Link to={`/jobs/${encodeURIComponent(run.job)}`}>{run.job}</Link> <span className="muted">v{run.version}</span></span>
          <span>Started by <span className="mono">{triggerText(run.trigger)}</span></span>
          <span>Created <Time at={run.created_at} /></span>
          <span>Ran {duration(run.started_at, run.finished_at)}</span>
          {run.finished_at && <span>Finished <Time at={run.finished_at} /></span>}
          <span>Targets {run.summary.succeeded}/{run.summary.targets} succeeded{run.summary.failed ? `, ${run.summary.failed} failed` : ''}{run.hidden ? `, ${run.hidden} hidden from you` : ''}</span>
        </div>
      </PageHeader>

      {rerun.error ? <ErrorBox error={rerun.error} /> : null}
      {cancel.error && !confirmCancel ? <ErrorBox error={cancel.error} /> : null}
      <WhyWaiting run={run} />
      <Approvals run={run} />

      <div className="run-grid">
        <section className="card">
          <h2>Steps</h2>
          {dagSteps.length ? <RunDag run={run} steps={dagSteps} onPick={pickStep} /> : <EmptyState title="No steps" hint="This run has no targets, so no steps ran." />}
        </section>
        <section className="card">
          <h2>Parameters</h2>
          <Params params={run.params} />
        </section>
      </div>

      <section className="card">
        <h2>Targets × steps</h2>
        <Matrix run={run} onPick={pick} onCancelTarget={(t) => setConfirmCancel([t])} />
      </section>

      <LogViewer store={store} runID={run.id} source={source} jump={jump} onLoadStored={loadStored} />

      <Dialog
        title={confirmCancel?.length ? `Cancel ${confirmCancel[0]}?` : 'Cancel this run?'}
        open={confirmCancel !== null}
        onClose={() => setConfirmCancel(null)}
        footer={
          <>
            <Button onClick={() => setConfirmCancel(null)}>Keep running</Button>
            <Button variant="danger" busy={cancel.isPending} onClick={() => confirmCancel && cancel.mutate(confirmCancel)}>
              {confirmCancel?.length ? 'Cancel target' : 'Cancel run'}
            </Button>
          </>
        }
      >
        <p>
          {confirmCancel?.length
            ? `The steps running on ${confirmCancel[0]} are stopped and its remaining steps do not start. Other targets go on.`
            : 'Running steps are stopped on every target and no further step starts. This cannot be undone; you can rerun the run afterwards.'}
        </p>
        {cancel.error ? <ErrorBox error={cancel.error} /> : null}
      </Dialog>
    </div>
  );
}

function WhyWaiting({ run }: { run: Run }) {
  if (runFinal(run.status) && !run.reason) return null;
  const waiting: { target: string; step: StepView }[] = [];
  for (const t of run.targets) for (const s of t.steps) if ((s.status === 'waiting' || s.retry_at) && s.reason) waiting.push({ target: t.name, step: s });
  if (!run.reason && waiting.length === 0) return null;
  const tone = runFinal(run.status) ? (run.status === 'failed' ? 'bad' : 'idle') : 'warn';
  return (
    <div className={`callout callout-${tone}`} role="status" data-testid="run-reason">
      {run.reason && <div><strong>{runFinal(run.status) ? 'Why it ended: ' : `Why it is ${run.status}: `}</strong>{run.reason}</div>}
      {waiting.slice(0, 8).map(({ target, step }) => (
        <div key={`${target}/${step.id}`}>
          <span className="mono">{target} · {step.id}</span>: {step.reason}
          {step.retry_at && <> (next try <Time at={step.retry_at} />)</>}
        </div>
      ))}
      {waiting.length > 8 && <div className="muted">and {waiting.length - 8} more</div>}
    </div>
  );
}

function Approvals({ run }: { run: Run }) {
  const pending = (run.approvals ?? []).filter((a) => a.status === 'pending');
  const decided = (run.approvals ?? []).filter((a) => a.status !== 'pending');
  if (!pending.length && !decided.length) return null;
  return (
    <section className="card approvals">
      <h2>Approvals</h2>
      {pending.map((a) => <ApprovalForm key={a.step} runID={run.id} a={a} />)}
      {decided.map((a) => (
        <div key={a.step} className="approval-row">
          <span className="mono">{a.step}</span> <StatusBadge status={a.status} tone={stepTone(a.status)} />
          {a.decided_by && <span className="muted"> by {a.decided_by}</span>} {a.decided_at && <Time at={a.decided_at} />}
          {a.comment && <span className="muted"> — “{a.comment}”</span>}
        </div>
      ))}
    </section>
  );
}

function ApprovalForm({ runID, a }: { runID: string; a: Approval }) {
  const qc = useQueryClient();
  const [comment, setComment] = useState('');
  const decide = useMutation({
    mutationFn: (approve: boolean) => api.post<Approval>(`/api/v1/runs/${encodeURIComponent(runID)}/approvals/${encodeURIComponent(a.step)}`, { approve, comment: comment || undefined }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['runs', runID] }),
  });
  return (
    <div className="approval-row approval-pending" data-testid={`approval-${a.step}`}>
      <div>
        <strong className="mono">{a.step}</strong> <StatusBadge status="waiting for approval" tone="warn" />
        {a.message && <p>{a.message}</p>}
        <span className="muted">Requested <Time at={a.requested_at} />; expires <Time at={a.deadline} /></span>
      </div>
      <input aria-label={`Comment on ${a.step}`} placeholder="Comment (optional)" value={comment} maxLength={1024} onChange={(e) => setComment(e.target.value)} />
      <Button variant="primary" busy={decide.isPending && decide.variables === true} disabled={decide.isPending} onClick={() => decide.mutate(true)}>Approve</Button>
      <Button variant="danger" busy={decide.isPending && decide.variables === false} disabled={decide.isPending} onClick={() => decide.mutate(false)}>Reject</Button>
      {decide.error ? <ErrorBox error={decide.error} /> : null}
    </div>
  );
}

function Params({ params }: { params: Run['params'] }) {
  const entries = Object.entries(params ?? {});
  if (!entries.length) return <p className="muted">This run has no parameters.</p>;
  return (
    <table className="params">
      <tbody>
        {entries.map(([k, v]) => (
          <tr key={k}>
            <th scope="row">{k}</th>
            <td className="mono">{v === maskedValue ? <span className="muted" title="A secret parameter: its value is never shown">•••••• secret</span> : typeof v === 'string' ? v : JSON.stringify(v)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function cellTitle(t: TargetView, s: StepView): string {
  const parts = [`${t.name} · ${s.id}: ${s.status}`];
  if (s.reason) parts.push(s.reason);
  if (s.error) parts.push(`error: ${s.error}`);
  if (s.started_at) parts.push(`took ${duration(s.started_at, s.finished_at ?? undefined)}`);
  return parts.join('\n');
}

function Matrix({ run, onPick, onCancelTarget }: { run: Run; onPick: (target: string, step?: string) => void; onCancelTarget: (t: string) => void }) {
  const steps = run.targets[0]?.steps.map((s) => s.id) ?? [];
  if (!run.targets.length) return <EmptyState title="No targets" hint={run.hidden ? `${run.hidden} targets are outside what you may see.` : 'The job matched no targets.'} />;
  const final = runFinal(run.status);
  return (
    <div className="matrix-wrap">
      <table className="matrix">
        <thead>
          <tr>
            <th>Target</th>
            <th>State</th>
            {steps.map((s) => <th key={s} className="mono">{s}</th>)}
            {!final && <th><span className="sr-only">Actions</span></th>}
          </tr>
        </thead>
        <tbody>
          {run.targets.map((t) => (
            <tr key={t.name}>
              <th scope="row">
                <button className="linklike mono" onClick={() => onPick(t.name)}>{t.name}</button>
                {run.batch_size > 0 && run.targets.length > run.batch_size && <span className="muted"> batch {t.batch + 1}</span>}
              </th>
              <td><StatusBadge status={t.status} tone={stepTone(t.status)} /></td>
              {t.steps.map((s) => (
                <td key={s.id}>
                  <button className="cell" title={cellTitle(t, s)} onClick={() => onPick(t.name, s.id)} data-testid={`cell-${t.name}-${s.id}`}>
                    <StatusBadge status={s.status} tone={stepTone(s.status)} />
                    {(s.try ?? 0) > 1 && <span className="muted">try {s.try}</span>}
                    {s.exit_code != null && <span className={s.exit_code === 0 ? 'muted' : 'exit-bad'}>exit {s.exit_code}</span>}
                  </button>
                  {s.error && <div className="cell-error" title={s.error}>{s.error}</div>}
                </td>
              ))}
              {!final && (
                <td>
                  {!runFinal(t.status) && t.status !== 'skipped' && (
                    <Button variant="ghost" onClick={() => onCancelTarget(t.name)} aria-label={`Cancel ${t.name}`}>Cancel</Button>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
