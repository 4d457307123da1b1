import { useMemo, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError } from '../../api/client';
import { Button, Dialog, EmptyState, ErrorBox, Field, Loading, PageHeader, Spinner, StatusBadge, Time } from '../../components/ui';
import { jobsApi, type JobDetail } from './api';
import { diffLines, diffStats } from './diff';
import type { JobDoc } from './designer/model';
import { readRunForm, runFields } from './runForm';

/** /jobs/<name>: the definition, its runs and versions. */
export function JobDetailPage() {
  const { name = '' } = useParams();
  const job = useQuery({ queryKey: ['jobs', name, 'latest'], queryFn: () => jobsApi.get(name) });
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [running, setRunning] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [delError, setDelError] = useState<unknown>(null);
  const [delBusy, setDelBusy] = useState(false);
  if (job.error instanceof ApiError && job.error.status === 404) {
    return <EmptyState title={`No job named “${name}”`} hint="It may have been deleted." action={<Link to="/jobs">All jobs</Link>} />;
  }
  return (
    <Loading query={job} what="the job">
      {(j) => {
        const spec = (j.version.spec ?? { steps: [] }) as JobDoc;
        return (
          <div>
            <PageHeader
              title={j.name}
              actions={
                <>
                  <Button variant="primary" onClick={() => setRunning(true)}>Run…</Button>
                  <Link className="btn" to={`/jobs/${encodeURIComponent(j.name)}/edit`}>Edit</Link>
                  <Button variant="danger" onClick={() => setDeleting(true)}>Delete</Button>
                </>
              }
            >
              <span className="muted">{j.description || 'No description.'} · version {j.latest_version} · updated <Time at={j.updated_at} /> by {j.updated_by}</span>
            </PageHeader>
            <div className="job-detail">
              <Summary spec={spec} />
              <RecentRuns name={j.name} />
              <Versions job={j} />
            </div>
            {running && <RunDialog job={j} spec={spec} onClose={() => setRunning(false)} />}
            <Dialog
              title={`Delete job ${j.name}?`}
              open={deleting}
              onClose={() => setDeleting(false)}
              footer={
                <>
                  <Button onClick={() => setDeleting(false)}>Cancel</Button>
                  <Button
                    variant="danger"
                    busy={delBusy}
                    onClick={async () => {
                      setDelBusy(true);
                      setDelError(null);
                      try {
                        await jobsApi.del(j.name);
                        qc.removeQueries({ queryKey: ['jobs', j.name] });
                        void qc.invalidateQueries({ queryKey: ['jobs'] });
                        navigate('/jobs');
                      } catch (e) {
                        setDelError(e);
                      } finally {
                        setDelBusy(false);
                      }
                    }}
                  >
                    Delete
                  </Button>
                </>
              }
            >
              <p>The job and all {j.latest_version} of its versions are removed. Past runs stay in the history.</p>
              <ErrorBox error={delError} />
            </Dialog>
          </div>
        );
      }}
    </Loading>
  );
}

function targetsText(t: JobDoc['targets']): string {
  if (!t) return '—';
  const parts: string[] = [];
  if (t.all) parts.push('every target');
  if (t.names?.length) parts.push(`names: ${t.names.join(', ')}`);
  if (t.groups?.length) parts.push(`groups: ${t.groups.join(', ')}`);
  if (t.tags && Object.keys(t.tags).length) parts.push(`tags: ${Object.entries(t.tags).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  if (t.selector) parts.push(`selector: ${t.selector}`);
  return parts.join('; ') || '—';
}

function Summary({ spec }: { spec: JobDoc }) {
  return (
    <section className="card">
      <h2>Definition</h2>
      <dl className="kv">
        <dt>Targets</dt><dd>{targetsText(spec.targets)}</dd>
        <dt>Concurrency</dt><dd>{spec.concurrency ?? 'allow'}</dd>
        {spec.timeout && <><dt>Timeout</dt><dd>{spec.timeout}</dd></>}
        {spec.credentials?.length ? <><dt>Credentials</dt><dd>{spec.credentials.join(', ')}</dd></> : null}
      </dl>
      <h3 style={{ marginTop: 10 }}>Parameters</h3>
      {spec.params?.length ? (
        <table>
          <thead><tr><th>Name</th><th>Type</th><th>Default</th><th>Required</th><th>Description</th></tr></thead>
          <tbody>
            {spec.params.map((p) => (
              <tr key={p.name}>
                <td><code>{p.name}</code>{p.secret && <> <StatusBadge status="secret" tone="warn" /></>}</td>
                <td>{p.enum ? `one of ${p.enum.map(String).join(', ')}` : p.type ?? 'string'}</td>
                <td>{p.default === undefined ? <span className="muted">—</span> : <code>{JSON.stringify(p.default)}</code>}</td>
                <td>{p.required ? 'yes' : 'no'}</td>
                <td className="muted">{p.description}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p className="muted">None.</p>
      )}
      <h3 style={{ marginTop: 10 }}>Steps ({spec.steps.length})</h3>
      <ol className="steps-list">
        {spec.steps.map((s) => (
          <li key={s.id}>
            <strong>{s.id}</strong> <code className="muted">{s.uses}</code>
            {s.needs?.length ? <span className="muted"> after {s.needs.join(', ')}</span> : null}
            {s.when && <span className="muted"> when {s.when}</span>}
          </li>
        ))}
      </ol>
    </section>
  );
}

function RecentRuns({ name }: { name: string }) {
  const runs = useQuery({ queryKey: ['runs', 'job', name], queryFn: () => jobsApi.runs({ job: name, limit: 20 }) });
  return (
    <section className="card">
      <h2>Recent runs</h2>
      <Loading query={runs} what="runs">
        {(page) =>
          page.items.length === 0 ? (
            <p className="muted">Not run yet. Use “Run…” to start it.</p>
          ) : (
            <table>
              <thead><tr><th>Run</th><th>Status</th><th>Version</th><th>Trigger</th><th>Started</th></tr></thead>
              <tbody>
                {page.items.map((r) => (
                  <tr key={r.id}>
                    <td><Link to={`/runs/${r.id}`} className="mono">{r.id}</Link></td>
                    <td><StatusBadge status={r.status} /></td>
                    <td>v{r.version}</td>
                    <td>{r.trigger.kind}{r.trigger.schedule ? ` (${r.trigger.schedule})` : ''}</td>
                    <td><Time at={r.started_at ?? r.created_at} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
    </section>
  );
}

function Versions({ job }: { job: JobDetail }) {
  const versions = useQuery({ queryKey: ['jobs', job.name, 'versions'], queryFn: () => jobsApi.versions(job.name) });
  const latest = job.latest_version;
  const [a, setA] = useState(Math.max(1, latest - 1));
  const [b, setB] = useState(latest);
  const va = useQuery({ queryKey: ['jobs', job.name, 'version', a], queryFn: () => jobsApi.get(job.name, a), staleTime: Infinity });
  const vb = useQuery({ queryKey: ['jobs', job.name, 'version', b], queryFn: () => jobsApi.get(job.name, b), staleTime: Infinity });
  const ops = useMemo(() => (va.data && vb.data ? diffLines(va.data.version.source, vb.data.version.source) : null), [va.data, vb.data]);
  const stats = ops ? diffStats(ops) : null;
  const pick = (value: number, set: (n: number) => void, label: string) => (
    <label>
      {label}{' '}
      <select aria-label={label} value={value} onChange={(e) => set(Number(e.target.value))}>
        {(versions.data ?? []).map((v) => (
          <option key={v.version} value={v.version}>v{v.version} — {new Date(v.created_at).toLocaleString()} by {v.created_by}</option>
        ))}
      </select>
    </label>
  );
  return (
    <section className="card wide">
      <h2>Versions</h2>
      <Loading query={versions} what="versions">
        {(vs) => (
          <>
            <table>
              <thead><tr><th>Version</th><th>Saved</th><th>By</th><th>Digest</th></tr></thead>
              <tbody>
                {vs.map((v) => (
                  <tr key={v.version}>
                    <td>v{v.version}{v.version === latest && <> <StatusBadge status="latest" tone="info" /></>}</td>
                    <td><Time at={v.created_at} /></td>
                    <td>{v.created_by}</td>
                    <td className="mono muted">{v.digest.slice(0, 12)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <h3 style={{ marginTop: 12 }}>Compare</h3>
            <div className="diff-controls">
              {pick(a, setA, 'From')}
              {pick(b, setB, 'To')}
              {stats && <span className="muted" data-testid="diff-stats">+{stats.added} −{stats.removed} lines</span>}
            </div>
            <ErrorBox error={va.error ?? vb.error} />
            {!ops ? (
              <Spinner label="Loading both versions…" />
            ) : a === b || (stats && stats.added + stats.removed === 0) ? (
              <p className="muted">The two versions read the same.</p>
            ) : (
              <div className="diff" role="table" aria-label={`Changes from v${a} to v${b}`}>
                {ops.map((o, i) => (
                  <div key={i} className={`diff-line diff-${o.op}`} role="row">
                    <span className="ln">{o.op !== 'add' ? o.a : ''}</span>
                    <span className="ln">{o.op !== 'del' ? o.b : ''}</span>
                    <span aria-label={o.op === 'add' ? 'added' : o.op === 'del' ? 'removed' : undefined}>{o.op === 'add' ? '+' : o.op === 'del' ? '−' : ' '}</span>
                    <span>{o.text}</span>
                  </div>
                ))}
              </div>
            )}
          </>
        )}
      </Loading>
    </section>
  );
}

export function RunDialog({ job, spec, onClose }: { job: JobDetail; spec: JobDoc; onClose: () => void }) {
  const navigate = useNavigate();
  const fields = useMemo(() => runFields(spec.params), [spec.params]);
  const [text, setText] = useState<Record<string, string>>(() => Object.fromEntries(fields.map((f) => [f.name, f.initial])));
  const names = spec.targets?.names ?? [];
  const [picked, setPicked] = useState<Set<string>>(() => new Set(names));
  const [narrow, setNarrow] = useState('');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const start = async () => {
    const r = readRunForm(fields, text);
    setErrors(r.errors);
    setError(null);
    if (Object.keys(r.errors).length) return;
    let targets: string[] | undefined;
    if (names.length) targets = picked.size === names.length ? undefined : [...picked];
    else if (narrow.trim()) targets = narrow.split(',').map((s) => s.trim()).filter(Boolean);
    if (targets && targets.length === 0) {
      setErrors({ targets: 'pick at least one target' });
      return;
    }
    setBusy(true);
    try {
      const run = await jobsApi.run(job.name, { params: Object.keys(r.params).length ? r.params : undefined, targets });
      navigate(`/runs/${run.id}`);
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fieldErrors());
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const targetError = Object.entries(errors).filter(([k]) => k === 'targets' || k.startsWith('targets')).map(([, v]) => v).join('; ') || undefined;
  return (
    <Dialog
      title={`Run ${job.name} (v${job.latest_version})`}
      open
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="primary" busy={busy} onClick={() => void start()}>Start run</Button>
        </>
      }
    >
      <form className="run-form" onSubmit={(e) => { e.preventDefault(); void start(); }}>
        {fields.length === 0 && <p className="muted">This job takes no parameters.</p>}
        {fields.map((f) => {
          const label = `${f.name}${f.required ? ' *' : ''}`;
          const v = text[f.name] ?? '';
          const set = (x: string) => setText((t) => ({ ...t, [f.name]: x }));
          const err = errors[`params.${f.name}`];
          return (
            <Field key={f.name} label={label} error={err} hint={f.description}>
              {f.kind === 'boolean' ? (
                <select aria-label={f.name} value={v} onChange={(e) => set(e.target.value)}>
                  {!f.required && <option value="">(default)</option>}
                  <option value="true">true</option>
                  <option value="false">false</option>
                </select>
              ) : f.kind === 'enum' ? (
                <select aria-label={f.name} value={v} onChange={(e) => set(e.target.value)}>
                  <option value="">{f.param.default !== undefined ? `(default: ${String(f.param.default)})` : '(choose)'}</option>
                  {f.options!.map((o) => <option key={o} value={o}>{o}</option>)}
                </select>
              ) : f.kind === 'json' ? (
                <textarea aria-label={f.name} rows={3} value={v} onChange={(e) => set(e.target.value)} placeholder={f.param.type === 'array' ? '["a", "b"]' : '{"key": "value"}'} />
              ) : (
                <input
                  aria-label={f.name}
                  type={f.kind === 'secret' ? 'password' : f.kind === 'integer' || f.kind === 'number' ? 'number' : 'text'}
                  step={f.kind === 'number' ? 'any' : undefined}
                  autoComplete={f.kind === 'secret' ? 'new-password' : 'off'}
                  value={v}
                  onChange={(e) => set(e.target.value)}
                />
              )}
            </Field>
          );
        })}
        <fieldset>
          <legend>Targets</legend>
          {names.length > 0 ? (
            <div className="targets-pick">
              {names.map((n) => (
                <label key={n} className="check">
                  <input type="checkbox" checked={picked.has(n)} onChange={(e) => setPicked((p) => { const s = new Set(p); if (e.target.checked) s.add(n); else s.delete(n); return s; })} /> {n}
                </label>
              ))}
            </div>
          ) : (
            <Field label="Only these targets (optional)" hint={`The job runs on: ${targetsText(spec.targets)}. Leave empty for all of them.`}>
              <input aria-label="Only these targets" value={narrow} onChange={(e) => setNarrow(e.target.value)} placeholder="web-1, web-2" />
            </Field>
          )}
          {targetError && <p className="field-message" role="alert">{targetError}</p>}
        </fieldset>
        <ErrorBox error={error} />
        <button type="submit" hidden />
      </form>
    </Dialog>
  );
}
