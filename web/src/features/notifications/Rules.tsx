import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../../api/client';
import { useAuth } from '../../app/auth';
import { Button, Dialog, EmptyState, ErrorBox, Field, Loading, StatusBadge } from '../../components/ui';
import { ConfirmButton } from '../../components/ConfirmButton';
import { emptyRuleForm, ruleToForm, toRule, validateRule, type RuleFormValues } from './ruleForm';
import type { ChannelView, EventType, Rule, Template } from './types';

export function Rules() {
  const { can } = useAuth();
  const writable = can('notifications:write');
  const qc = useQueryClient();
  const [editing, setEditing] = useState<Rule | 'new' | null>(null);
  const rules = useQuery({ queryKey: ['notifications', 'rules'], queryFn: () => api.get<{ items: Rule[] }>('/api/v1/notifications/rules') });
  const toggle = async (r: Rule) => {
    await api.put(`/api/v1/notifications/rules/${encodeURIComponent(r.name)}`, { ...r, enabled: !r.enabled });
    await qc.invalidateQueries({ queryKey: ['notifications'] });
  };
  return (
    <>
      <div className="inv-toolbar" style={{ justifyContent: 'space-between' }}>
        <p className="muted" style={{ margin: 0 }}>A rule sends chosen events (optionally filtered by job, tags, groups, severity) to channels, with a throttle.</p>
        {writable && <Button variant="primary" onClick={() => setEditing('new')}>New rule</Button>}
      </div>
      <Loading query={rules} what="rules">
        {(d) =>
          d.items.length === 0 ? (
            <EmptyState title="No rules yet" hint="Without a rule nothing is sent. Create a channel first, then a rule such as run.failed → on-call." action={writable && <Button variant="primary" onClick={() => setEditing('new')}>New rule</Button>} />
          ) : (
            <table aria-label="Rules">
              <thead><tr><th>Name</th><th>State</th><th>Events</th><th>Filter</th><th>Channels</th><th>Throttle</th>{writable && <th aria-label="Actions" />}</tr></thead>
              <tbody>
                {d.items.map((r) => (
                  <tr key={r.name}>
                    <td>{r.name}{r.description && <div className="muted">{r.description}</div>}</td>
                    <td><StatusBadge status={r.enabled ? 'enabled' : 'disabled'} tone={r.enabled ? 'ok' : 'idle'} /></td>
                    <td>{r.events.join(', ')}</td>
                    <td>
                      {r.filter?.jobs?.length ? <div>jobs {r.filter.jobs.join(', ')}</div> : null}
                      {Object.entries(r.filter?.tags ?? {}).map(([k, v]) => <span key={k} className="chip">{k}={v}</span>)}
                      {r.filter?.groups?.length ? <div>groups {r.filter.groups.join(', ')}</div> : null}
                      {r.filter?.min_severity ? <div>≥ {r.filter.min_severity}</div> : null}
                      {!r.filter?.jobs?.length && !r.filter?.groups?.length && !r.filter?.min_severity && !Object.keys(r.filter?.tags ?? {}).length && <span className="muted">every event</span>}
                    </td>
                    <td>{r.channels.join(', ')}</td>
                    <td>{r.throttle?.max ? `${r.throttle.max} per ${r.throttle.window}` : <span className="muted">none</span>}</td>
                    {writable && (
                      <td>
                        <div className="inv-row-actions">
                          <Button variant="ghost" onClick={() => void toggle(r)}>{r.enabled ? 'Disable' : 'Enable'}</Button>
                          <Button variant="ghost" onClick={() => setEditing(r)}>Edit</Button>
                          <ConfirmButton label="Delete" variant="ghost" danger confirmLabel="Delete" title={`Delete rule ${r.name}?`}
                            action={async () => { await api.del(`/api/v1/notifications/rules/${encodeURIComponent(r.name)}`); await qc.invalidateQueries({ queryKey: ['notifications'] }); }}
                            body={<p>Its events stop being sent; past deliveries stay listed.</p>} />
                        </div>
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
      {editing && <RuleDialog rule={editing === 'new' ? null : editing} onClose={() => setEditing(null)} />}
    </>
  );
}

function RuleDialog({ rule, onClose }: { rule: Rule | null; onClose: () => void }) {
  const qc = useQueryClient();
  const [v, setV] = useState<RuleFormValues>(rule ? ruleToForm(rule) : emptyRuleForm);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const events = useQuery({ queryKey: ['notifications', 'events'], queryFn: () => api.get<{ items: EventType[] }>('/api/v1/notifications/events'), staleTime: Infinity });
  const channels = useQuery({ queryKey: ['notifications', 'channels'], queryFn: () => api.get<{ items: ChannelView[] }>('/api/v1/notifications/channels') });
  const templates = useQuery({ queryKey: ['notifications', 'templates', 'custom'], queryFn: () => api.get<{ items: Template[] }>('/api/v1/notifications/templates') });
  const set = (k: keyof RuleFormValues) => (e: { target: { value: string } }) => setV({ ...v, [k]: e.target.value });
  const toggleIn = (k: 'events' | 'channels', x: string) => setV({ ...v, [k]: v[k].includes(x) ? v[k].filter((y) => y !== x) : [...v[k], x] });
  const save = async () => {
    const errs = validateRule(v);
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    setError(null);
    try {
      const body = toRule(v, rule?.revision);
      if (rule) await api.put(`/api/v1/notifications/rules/${encodeURIComponent(rule.name)}`, body);
      else await api.post('/api/v1/notifications/rules', body);
      await qc.invalidateQueries({ queryKey: ['notifications'] });
      onClose();
    } catch (e) {
      setError(e);
      if (e instanceof ApiError) setErrors(e.fieldErrors());
    } finally {
      setBusy(false);
    }
  };
  const err = (k: string) => errors[k] ?? Object.entries(errors).find(([f]) => f.startsWith(`${k}.`) || f.startsWith(`${k}[`))?.[1];
  return (
    <Dialog title={rule ? `Edit rule ${rule.name}` : 'New rule'} open onClose={onClose}
      footer={<><Button onClick={onClose}>Cancel</Button><Button variant="primary" busy={busy} onClick={() => void save()}>{rule ? 'Save' : 'Create rule'}</Button></>}>
      <form className="inv-form" onSubmit={(e) => { e.preventDefault(); void save(); }} aria-label="Rule">
        <Field label="Name" error={err('name')}><input value={v.name} onChange={set('name')} disabled={!!rule} /></Field>
        <Field label="State">
          <select value={v.enabled ? 'on' : 'off'} onChange={(e) => setV({ ...v, enabled: e.target.value === 'on' })}>
            <option value="on">enabled</option>
            <option value="off">disabled</option>
          </select>
        </Field>
        <div className="span2"><Field label="Description" error={err('description')}><input value={v.description} onChange={set('description')} /></Field></div>
        <fieldset className="span2" style={{ border: '1px solid var(--border)', borderRadius: 6 }}>
          <legend>Events</legend>
          {(events.data?.items ?? []).map((e) => (
            <label key={e.type} style={{ marginRight: 10, whiteSpace: 'nowrap' }}><input type="checkbox" checked={v.events.includes(e.type)} onChange={() => toggleIn('events', e.type)} /> {e.type}</label>
          ))}
          {err('events') && <div className="field-message">{err('events')}</div>}
        </fieldset>
        <fieldset className="span2" style={{ border: '1px solid var(--border)', borderRadius: 6 }}>
          <legend>Channels</legend>
          {(channels.data?.items ?? []).length === 0 && <span className="muted">No channels yet: create one on the Channels tab.</span>}
          {(channels.data?.items ?? []).map((c) => (
            <label key={c.name} style={{ marginRight: 10, whiteSpace: 'nowrap' }}><input type="checkbox" checked={v.channels.includes(c.name)} onChange={() => toggleIn('channels', c.name)} /> {c.name} ({c.kind})</label>
          ))}
          {err('channels') && <div className="field-message">{err('channels')}</div>}
        </fieldset>
        <Field label="Jobs" error={err('filter.jobs')} hint="Names or globs such as deploy-*; empty: every job"><input value={v.jobs} onChange={set('jobs')} /></Field>
        <Field label="Tags" error={err('filter.tags')} hint="key=value, comma separated"><input value={v.tags} onChange={set('tags')} /></Field>
        <Field label="Groups" error={err('filter.groups')} hint="Comma separated"><input value={v.groups} onChange={set('groups')} /></Field>
        <Field label="Minimum severity" error={err('filter.min_severity')}>
          <select value={v.minSeverity} onChange={set('minSeverity')}>
            <option value="">any</option>
            <option value="info">info</option>
            <option value="warning">warning</option>
            <option value="critical">critical</option>
          </select>
        </Field>
        <Field label="Template" error={err('template')} hint="Empty: the channel's own">
          <select value={v.template} onChange={set('template')}>
            <option value="">channel default</option>
            {(templates.data?.items ?? []).map((t) => <option key={t.name} value={t.name}>{t.name} ({t.channel})</option>)}
          </select>
        </Field>
        <Field label="Throttle" error={err('throttle.max') ?? err('throttle.window') ?? err('throttle')} hint="At most N per window; the rest are sent as one digest">
          <span style={{ display: 'flex', gap: 6, alignItems: 'center' }}>
            <input value={v.throttleMax} onChange={set('throttleMax')} inputMode="numeric" style={{ width: 70 }} aria-label="Throttle count" /> per
            <input value={v.throttleWindow} onChange={set('throttleWindow')} style={{ width: 80 }} aria-label="Throttle window" placeholder="1m" />
          </span>
        </Field>
        <button type="submit" hidden />
      </form>
      <ErrorBox error={error} />
    </Dialog>
  );
}
