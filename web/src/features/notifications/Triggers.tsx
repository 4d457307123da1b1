import { Fragment, useState } from 'react';
import { Link } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../../api/client';
import { useAuth } from '../../app/auth';
import { Button, Dialog, EmptyState, ErrorBox, Field, Loading, StatusBadge, Time } from '../../components/ui';
import { ConfirmButton } from '../../components/ConfirmButton';
import { CopyButton } from '../../components/CopyButton';
import { formatParamMap, parseParamMap } from './triggerForm';

export interface TriggerView {
  id: string;
  name: string;
  description?: string;
  job: string;
  auth: 'hmac-github' | 'hmac-opsconductor' | 'bearer' | string;
  param_map?: Record<string, string>;
  filter?: string;
  rate_limit: number;
  enabled: boolean;
  path: string;
  owner: string;
  revision: number;
  created_at: string;
  updated_at: string;
  /** Only in the answer to a create or a rotate. */
  secret?: string;
}

interface TriggerDelivery {
  time: string;
  delivery_id?: string;
  outcome: string;
  reason?: string;
  run_id?: string;
  source: string;
}

const authLabels: Record<string, string> = {
  'hmac-github': 'GitHub signature (X-Hub-Signature-256)',
  'hmac-opsconductor': 'OpsConductor signature (timestamped)',
  bearer: 'Bearer secret (Authorization header)',
};

const hookURL = (path: string) => new URL(path, window.location.origin).toString();

/** Inbound webhooks that start a job; the secret is shown once, when made. */
export function Triggers() {
  const { can } = useAuth();
  const writable = can('jobs:write');
  const qc = useQueryClient();
  const [editing, setEditing] = useState<TriggerView | 'new' | null>(null);
  const [revealed, setRevealed] = useState<TriggerView | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const triggers = useQuery({ queryKey: ['jobs', 'triggers'], queryFn: () => api.get<{ items: TriggerView[] }>('/api/v1/triggers') });
  const rotate = async (t: TriggerView) => {
    setError(null);
    try {
      setRevealed(await api.post<TriggerView>(`/api/v1/triggers/${encodeURIComponent(t.id)}/rotate-secret`));
      await qc.invalidateQueries({ queryKey: ['jobs', 'triggers'] });
    } catch (e) {
      setError(e);
    }
  };
  return (
    <>
      <div className="inv-toolbar" style={{ justifyContent: 'space-between' }}>
        <p className="muted" style={{ margin: 0 }}>An inbound trigger is a URL that starts a job when a sender (GitHub, a monitoring system…) posts to it, authenticated by its secret.</p>
        {writable && <Button variant="primary" onClick={() => setEditing('new')}>New trigger</Button>}
      </div>
      <ErrorBox error={error} />
      <Loading query={triggers} what="triggers">
        {(d) =>
          d.items.length === 0 ? (
            <EmptyState title="No inbound triggers" hint="Create one to let another system start a job; you will get its URL and secret once." action={writable && <Button variant="primary" onClick={() => setEditing('new')}>New trigger</Button>} />
          ) : (
            <table aria-label="Triggers">
              <thead><tr><th>Name</th><th>Job</th><th>URL</th><th>Authentication</th><th>State</th><th>Rate</th>{writable && <th aria-label="Actions" />}</tr></thead>
              <tbody>
                {d.items.map((t) => (
                  <Fragment key={t.id}>
                    <tr>
                      <td><button className="chip" onClick={() => setOpen(open === t.id ? null : t.id)} aria-expanded={open === t.id}>{t.name}</button>{t.description && <div className="muted">{t.description}</div>}</td>
                      <td><Link to={`/jobs/${encodeURIComponent(t.job)}`}>{t.job}</Link></td>
                      <td className="mono" style={{ wordBreak: 'break-all' }}>{hookURL(t.path)}</td>
                      <td>{authLabels[t.auth] ?? t.auth}</td>
                      <td><StatusBadge status={t.enabled ? 'enabled' : 'disabled'} tone={t.enabled ? 'ok' : 'idle'} /></td>
                      <td>{t.rate_limit}/min</td>
                      {writable && (
                        <td>
                          <div className="inv-row-actions">
                            <Button variant="ghost" onClick={() => setEditing(t)}>Edit</Button>
                            <ConfirmButton label="Rotate secret" variant="ghost" confirmLabel="Rotate" title={`Rotate the secret of ${t.name}?`} action={() => rotate(t)}
                              body={<p>The current secret stops working at once; the sender must be given the new one, which is shown once.</p>} />
                            <ConfirmButton label="Delete" variant="ghost" danger confirmLabel="Delete" title={`Delete trigger ${t.name}?`}
                              action={async () => { await api.del(`/api/v1/triggers/${encodeURIComponent(t.id)}`); await qc.invalidateQueries({ queryKey: ['jobs', 'triggers'] }); }}
                              body={<p>Its URL stops accepting deliveries.</p>} />
                          </div>
                        </td>
                      )}
                    </tr>
                    {open === t.id && (
                      <tr><td colSpan={7}><TriggerDetail t={t} /></td></tr>
                    )}
                  </Fragment>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
      {editing && (
        <TriggerDialog
          trigger={editing === 'new' ? null : editing}
          onClose={() => setEditing(null)}
          onCreated={(t) => { setEditing(null); setRevealed(t); }}
        />
      )}
      {revealed && <SecretOnce t={revealed} onClose={() => setRevealed(null)} />}
    </>
  );
}

function TriggerDetail({ t }: { t: TriggerView }) {
  const deliveries = useQuery({
    queryKey: ['jobs', 'triggers', 'deliveries', t.id],
    queryFn: () => api.get<{ items: TriggerDelivery[] }>(`/api/v1/triggers/${encodeURIComponent(t.id)}/deliveries`),
  });
  return (
    <div style={{ display: 'flex', flexDirection: 'column', gap: 6 }}>
      {t.param_map && Object.keys(t.param_map).length > 0 && <div><strong>Parameters:</strong> <pre style={{ margin: 0 }}>{formatParamMap(t.param_map)}</pre></div>}
      {t.filter && <div><strong>Filter:</strong> <code>{t.filter}</code></div>}
      <Loading query={deliveries} what="deliveries">
        {(d) =>
          d.items.length === 0 ? <p className="muted">No deliveries yet.</p> : (
            <table aria-label="Trigger deliveries">
              <thead><tr><th>When</th><th>Outcome</th><th>Run</th><th>From</th><th>Reason</th></tr></thead>
              <tbody>
                {d.items.map((x, i) => (
                  <tr key={x.delivery_id ?? i}>
                    <td><Time at={x.time} /></td>
                    <td><StatusBadge status={x.outcome} tone={x.outcome === 'started' ? 'ok' : x.outcome === 'skipped' ? 'idle' : 'bad'} /></td>
                    <td>{x.run_id ? <Link className="mono" to={`/runs/${x.run_id}`}>{x.run_id}</Link> : '—'}</td>
                    <td className="mono">{x.source}</td>
                    <td>{x.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
    </div>
  );
}

/** The URL and secret, shown this once; closing forgets the secret. */
function SecretOnce({ t, onClose }: { t: TriggerView; onClose: () => void }) {
  const url = hookURL(t.path);
  return (
    <Dialog title={`Trigger ${t.name}: URL and secret`} open onClose={onClose} footer={<Button variant="primary" onClick={onClose}>I have saved the secret</Button>}>
      <p><strong>Copy the secret now: it is not shown again.</strong> Rotate it to get a new one.</p>
      <Field label="URL (POST)">
        <span style={{ display: 'flex', gap: 6 }}><input readOnly value={url} className="mono" style={{ flex: 1 }} aria-label="Trigger URL" /><CopyButton text={url} /></span>
      </Field>
      {t.secret && (
        <Field label="Secret">
          <span style={{ display: 'flex', gap: 6 }}><input readOnly value={t.secret} className="mono" style={{ flex: 1 }} aria-label="Trigger secret" autoComplete="off" /><CopyButton text={t.secret} /></span>
        </Field>
      )}
      <p className="muted">
        {t.auth === 'hmac-github' && 'In GitHub: Settings → Webhooks → add this URL, content type application/json, and the secret.'}
        {t.auth === 'hmac-opsconductor' && 'Sign "<unix time>.<body>" with HMAC-SHA256 and send X-OpsConductor-Timestamp and X-OpsConductor-Signature: sha256=<hex>.'}
        {t.auth === 'bearer' && 'Send the secret as Authorization: Bearer <secret>.'}
      </p>
    </Dialog>
  );
}

function TriggerDialog({ trigger, onClose, onCreated }: { trigger: TriggerView | null; onClose: () => void; onCreated: (t: TriggerView) => void }) {
  const qc = useQueryClient();
  const [name, setName] = useState(trigger?.name ?? '');
  const [description, setDescription] = useState(trigger?.description ?? '');
  const [job, setJob] = useState(trigger?.job ?? '');
  const [auth, setAuth] = useState(trigger?.auth ?? 'hmac-github');
  const [params, setParams] = useState(formatParamMap(trigger?.param_map));
  const [filter, setFilter] = useState(trigger?.filter ?? '');
  const [rate, setRate] = useState(trigger?.rate_limit ? String(trigger.rate_limit) : '');
  const [enabled, setEnabled] = useState(trigger?.enabled ?? true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const jobs = useQuery({ queryKey: ['jobs', 'list', 'names'], queryFn: () => api.get<{ items: { name: string }[] }>('/api/v1/jobs') });
  const pm = parseParamMap(params);
  const fe = error instanceof ApiError ? error.fieldErrors() : {};
  const feOf = (k: string) => fe[k] ?? Object.entries(fe).find(([f]) => f.startsWith(`${k}.`) || f.startsWith(`${k}[`))?.[1];
  const save = async () => {
    if (pm.error) return;
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, unknown> = { name, description, job, auth, param_map: pm.map, filter, rate_limit: rate ? Number(rate) : 0, enabled };
      if (trigger) {
        await api.put(`/api/v1/triggers/${encodeURIComponent(trigger.id)}`, { ...body, revision: trigger.revision });
        await qc.invalidateQueries({ queryKey: ['jobs', 'triggers'] });
        onClose();
      } else {
        const t = await api.post<TriggerView>('/api/v1/triggers', body);
        await qc.invalidateQueries({ queryKey: ['jobs', 'triggers'] });
        onCreated(t);
      }
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title={trigger ? `Edit trigger ${trigger.name}` : 'New inbound trigger'} open onClose={onClose}
      footer={<><Button onClick={onClose}>Cancel</Button><Button variant="primary" busy={busy} onClick={() => void save()}>{trigger ? 'Save' : 'Create trigger'}</Button></>}>
      <form className="inv-form" onSubmit={(e) => { e.preventDefault(); void save(); }} aria-label="Trigger">
        <Field label="Name" error={feOf('name')}><input value={name} onChange={(e) => setName(e.target.value)} /></Field>
        <Field label="Job" error={feOf('job')}>
          <select value={job} onChange={(e) => setJob(e.target.value)}>
            <option value="">choose…</option>
            {jobs.data?.items.map((j) => <option key={j.name} value={j.name}>{j.name}</option>)}
          </select>
        </Field>
        <div className="span2"><Field label="Description" error={feOf('description')}><input value={description} onChange={(e) => setDescription(e.target.value)} /></Field></div>
        <Field label="Authentication" error={feOf('auth')}>
          <select value={auth} onChange={(e) => setAuth(e.target.value)} disabled={!!trigger}>
            {Object.entries(authLabels).map(([k, v]) => <option key={k} value={k}>{v}</option>)}
          </select>
        </Field>
        <Field label="Rate limit" error={feOf('rate_limit')} hint="Accepted deliveries per minute (default 60)"><input value={rate} onChange={(e) => setRate(e.target.value)} inputMode="numeric" /></Field>
        <div className="span2">
          <Field label="Job parameters" error={pm.error ?? feOf('param_map')} hint="One per line: param = expression over payload, headers and query, e.g. ref = payload.ref">
            <textarea rows={3} value={params} onChange={(e) => setParams(e.target.value)} spellCheck={false} />
          </Field>
        </div>
        <div className="span2">
          <Field label="Filter" error={feOf('filter')} hint='Run only when true, e.g. headers["X-GitHub-Event"] == "push"; empty: always'>
            <input className="mono" value={filter} onChange={(e) => setFilter(e.target.value)} />
          </Field>
        </div>
        <label><input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> Enabled</label>
        <button type="submit" hidden />
      </form>
      <ErrorBox error={error} />
    </Dialog>
  );
}
