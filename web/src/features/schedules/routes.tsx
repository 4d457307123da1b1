import { useMemo, useState } from 'react';
import { Link, Route, Routes } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../../api/client';
import { Button, Dialog, EmptyState, ErrorBox, Field, PageHeader, Spinner, StatusBadge, Time } from '../../components/ui';
import { jobsApi } from '../jobs/api';
import type { JobDoc } from '../jobs/designer/model';
import { readRunForm, runFields } from '../jobs/runForm';
import { fromInput, toInput, type Schedule, type ScheduleInput } from './form';
import './schedules.css';

const base = '/api/v1/schedules';
const enc = encodeURIComponent;

export default function SchedulesRoutes() {
  return (
    <Routes>
      <Route index element={<SchedulesPage />} />
    </Routes>
  );
}

function SchedulesPage() {
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ['schedules', 'list'], queryFn: () => api.get<{ items: Schedule[] }>(base).then((r) => r.items) });
  const [editing, setEditing] = useState<Schedule | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Schedule | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const refresh = () => qc.invalidateQueries({ queryKey: ['schedules'] });

  const toggle = async (s: Schedule) => {
    setBusy(s.name);
    setError(null);
    try {
      await api.post(`${base}/${enc(s.name)}/${s.enabled ? 'disable' : 'enable'}`);
      await refresh();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };

  return (
    <div>
      <PageHeader title="Schedules" actions={<Button variant="primary" onClick={() => setEditing('new')}>New schedule</Button>}>
        <span className="muted">Run jobs on a cron schedule, in a time zone of your choice.</span>
      </PageHeader>
      <ErrorBox error={list.error ?? error} />
      {list.isPending ? (
        <Spinner label="Loading schedules…" />
      ) : list.data && list.data.length === 0 ? (
        <EmptyState title="No schedules" hint="Create one to run a job every night, every hour or on any cron spec." action={<Button variant="primary" onClick={() => setEditing('new')}>New schedule</Button>} />
      ) : (
        <table>
          <thead>
            <tr><th>Name</th><th>Job</th><th>When</th><th>State</th><th>Next fires</th><th>Last</th><th>Policy</th><th /></tr>
          </thead>
          <tbody>
            {(list.data ?? []).map((s) => (
              <tr key={s.name}>
                <td><strong>{s.name}</strong>{s.description && <div className="muted">{s.description}</div>}</td>
                <td><Link to={`/jobs/${enc(s.job)}`}>{s.job}</Link></td>
                <td><code>{s.cron}</code><div className="muted">{s.timezone}</div></td>
                <td>
                  <StatusBadge status={s.enabled ? 'enabled' : 'disabled'} tone={s.enabled ? 'ok' : 'idle'} />
                </td>
                <td>
                  {s.enabled && s.next_fires.length > 0 ? (
                    <ol className="fires">
                      {s.next_fires.map((f, i) => (
                        <li key={f} className={i === 0 ? '' : 'muted'}>
                          <time dateTime={f} title={f}>{formatFire(f)}</time>{i === 0 && <> (<Time at={f} />)</>}
                        </li>
                      ))}
                    </ol>
                  ) : (
                    <span className="muted">{s.enabled ? 'never' : 'paused'}</span>
                  )}
                </td>
                <td>
                  {s.last_fire_time ? <Time at={s.last_fire_time} /> : <span className="muted">—</span>}
                  {s.last_outcome && <div><StatusBadge status={s.last_outcome} tone={s.last_outcome === 'started' ? 'ok' : s.last_outcome.startsWith('skipped') ? 'warn' : s.last_outcome === 'failed' ? 'bad' : undefined} /></div>}
                  {s.last_run_id && <div><Link className="mono" to={`/runs/${s.last_run_id}`}>{s.last_run_id}</Link></div>}
                </td>
                <td className="muted">overlap: {s.overlap}<br />catch-up: {s.catch_up}</td>
                <td className="row-actions">
                  <Button busy={busy === s.name} onClick={() => void toggle(s)} aria-label={`${s.enabled ? 'Disable' : 'Enable'} ${s.name}`}>{s.enabled ? 'Disable' : 'Enable'}</Button>
                  <Button onClick={() => setEditing(s)} aria-label={`Edit ${s.name}`}>Edit</Button>
                  <Button variant="danger" onClick={() => setDeleting(s)} aria-label={`Delete ${s.name}`}>Delete</Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing && <ScheduleDialog schedule={editing === 'new' ? undefined : editing} onClose={() => setEditing(null)} onSaved={() => { setEditing(null); void refresh(); }} />}
      {deleting && <DeleteDialog schedule={deleting} onClose={() => setDeleting(null)} onDone={() => { setDeleting(null); void refresh(); }} />}
    </div>
  );
}

/** "Sat 28 Nov 02:00 +01:00": the fire time in the schedule's own zone, as the API gives it. */
export function formatFire(rfc3339: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(rfc3339);
  if (!m) return rfc3339;
  const [, y, mo, d, h, mi, sec, off] = m;
  const day = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  const wd = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][day.getUTCDay()];
  const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][Number(mo) - 1];
  const secs = sec && sec !== '00' ? `:${sec}` : '';
  return `${wd} ${Number(d)} ${mon} ${y} ${h}:${mi}${secs} ${off === 'Z' ? 'UTC' : off}`;
}

function DeleteDialog({ schedule, onClose, onDone }: { schedule: Schedule; onClose: () => void; onDone: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <Dialog
      title={`Delete schedule ${schedule.name}?`}
      open
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="danger" busy={busy} onClick={async () => {
            setBusy(true);
            try {
              await api.del(`${base}/${enc(schedule.name)}`);
              onDone();
            } catch (e) {
              setError(e);
              setBusy(false);
            }
          }}>Delete</Button>
        </>
      }
    >
      <p>No more runs of <strong>{schedule.job}</strong> will start from it. Runs it already started are not touched.</p>
      <ErrorBox error={error} />
    </Dialog>
  );
}

const zones = (() => {
  try {
    return (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? [];
  } catch {
    return [];
  }
})();

function ScheduleDialog({ schedule, onClose, onSaved }: { schedule?: Schedule; onClose: () => void; onSaved: () => void }) {
  const [form, setForm] = useState<ScheduleInput>(() => toInput(schedule));
  const [paramText, setParamText] = useState<Record<string, string>>(() => Object.fromEntries(Object.entries(schedule?.params ?? {}).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const jobs = useQuery({ queryKey: ['jobs', 'list'], queryFn: jobsApi.list });
  const job = useQuery({ queryKey: ['jobs', form.job, 'latest'], queryFn: () => jobsApi.get(form.job), enabled: !!form.job });
  const fields = useMemo(() => runFields(((job.data?.version.spec ?? {}) as JobDoc).params).filter((f) => f.kind !== 'secret'), [job.data]);
  const set = <K extends keyof ScheduleInput>(k: K, v: ScheduleInput[K]) => setForm((f) => ({ ...f, [k]: v }));

  const save = async () => {
    // A schedule's params are stored in its definition: secret params are
    // not offered (they belong in credentials), and blank fields take the
    // job's defaults at each run.
    const filled = Object.fromEntries(fields.map((f) => [f.name, paramText[f.name] ?? '']));
    const r = readRunForm(fields.map((f) => ({ ...f, required: false })), filled);
    setErrors(r.errors);
    setError(null);
    if (Object.keys(r.errors).length) return;
    setBusy(true);
    try {
      const body = fromInput({ ...form, params: r.params }, schedule);
      if (schedule) await api.put(`${base}/${enc(schedule.name)}`, body);
      else await api.post(base, body);
      onSaved();
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fieldErrors());
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog
      title={schedule ? `Edit schedule ${schedule.name}` : 'New schedule'}
      open
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="primary" busy={busy} onClick={() => void save()}>{schedule ? 'Save' : 'Create'}</Button>
        </>
      }
    >
      <form className="schedule-form" onSubmit={(e) => { e.preventDefault(); void save(); }}>
        <div className="field-row">
          <Field label="Name *" error={errors.name} hint={schedule ? undefined : 'Lower-case letters, digits, . _ -'}>
            <input aria-label="Schedule name" value={form.name} readOnly={!!schedule} onChange={(e) => set('name', e.target.value)} />
          </Field>
          <Field label="Job *" error={errors.job}>
            <select aria-label="Job" value={form.job} onChange={(e) => set('job', e.target.value)}>
              <option value="">{jobs.isPending ? 'Loading jobs…' : '(choose a job)'}</option>
              {(jobs.data ?? []).map((j) => <option key={j.name} value={j.name}>{j.name}</option>)}
              {form.job && jobs.data && !jobs.data.some((j) => j.name === form.job) && <option value={form.job}>{form.job} (not found)</option>}
            </select>
          </Field>
        </div>
        <div className="field-row">
          <Field label="Cron *" error={errors.cron} hint="minute hour day month weekday — e.g. 0 2 * * * — or @daily, @every 15m">
            <input aria-label="Cron" className="mono" value={form.cron} onChange={(e) => set('cron', e.target.value)} placeholder="0 2 * * *" />
          </Field>
          <Field label="Time zone" error={errors.timezone} hint="IANA name; UTC when empty">
            <input aria-label="Time zone" list="w2-zones" value={form.timezone} onChange={(e) => set('timezone', e.target.value)} placeholder="UTC" />
          </Field>
          <datalist id="w2-zones">{zones.map((z) => <option key={z} value={z} />)}</datalist>
        </div>
        <div className="field-row">
          <Field label="When a run is still going" error={errors.overlap}>
            <select aria-label="Overlap" value={form.overlap} onChange={(e) => set('overlap', e.target.value)}>
              <option value="skip">skip this tick</option>
              <option value="allow">start another run beside it</option>
            </select>
          </Field>
          <Field label="Ticks missed while down" error={errors.catch_up}>
            <select aria-label="Catch-up" value={form.catch_up} onChange={(e) => set('catch_up', e.target.value)}>
              <option value="skip">skip them</option>
              <option value="once">run once for the latest</option>
            </select>
          </Field>
        </div>
        <Field label="Description" error={errors.description}>
          <input aria-label="Description" value={form.description} onChange={(e) => set('description', e.target.value)} />
        </Field>
        <label className="check"><input type="checkbox" checked={form.enabled} onChange={(e) => set('enabled', e.target.checked)} /> Enabled</label>
        <fieldset>
          <legend>Parameters</legend>
          {!form.job ? <p className="muted">Choose a job to set its parameters.</p> : job.isPending ? <Spinner label="Loading the job's parameters…" /> : fields.length === 0 ? <p className="muted">The job takes no parameters a schedule can set.</p> : fields.map((f) => (
            <Field key={f.name} label={f.name} error={errors[`params.${f.name}`]} hint={[f.description, f.param.default !== undefined ? `blank: default ${JSON.stringify(f.param.default)}` : f.required ? 'required by the job' : ''].filter(Boolean).join(' — ')}>
              {f.kind === 'boolean' || f.kind === 'enum' ? (
                <select aria-label={`Parameter ${f.name}`} value={paramText[f.name] ?? ''} onChange={(e) => setParamText((p) => ({ ...p, [f.name]: e.target.value }))}>
                  <option value="">(default)</option>
                  {(f.kind === 'boolean' ? ['true', 'false'] : f.options!).map((o) => <option key={o} value={o}>{o}</option>)}
                </select>
              ) : (
                <input aria-label={`Parameter ${f.name}`} value={paramText[f.name] ?? ''} onChange={(e) => setParamText((p) => ({ ...p, [f.name]: e.target.value }))} />
              )}
            </Field>
          ))}
        </fieldset>
        <ErrorBox error={error} />
        <button type="submit" hidden />
      </form>
    </Dialog>
  );
}
