import { useMemo, useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../../api/client';
import { useAuth } from '../../app/auth';
import { Button, EmptyState, ErrorBox, Field, Loading, Spinner, Time } from '../../components/ui';
import { ConfirmButton } from '../../components/ConfirmButton';
import { useDebounced } from './useDebounced';
import { lineOf } from './channelForm';
import type { ChannelKind, EventType, Rendered, Template } from './types';

export function Templates() {
  const { can } = useAuth();
  const [builtin, setBuiltin] = useState(false);
  const templates = useQuery({
    queryKey: ['notifications', 'templates', builtin ? 'all' : 'custom'],
    queryFn: () => api.get<{ items: Template[] }>(`/api/v1/notifications/templates${builtin ? '?builtin=true' : ''}`),
  });
  return (
    <>
      <div className="inv-toolbar" style={{ justifyContent: 'space-between' }}>
        <label><input type="checkbox" checked={builtin} onChange={(e) => setBuiltin(e.target.checked)} /> Show the built-in templates</label>
        {can('notifications:write') && <Link className="btn btn-primary" to="/notifications/templates/edit">New template</Link>}
      </div>
      <Loading query={templates} what="templates">
        {(d) =>
          d.items.length === 0 ? (
            <EmptyState title="No custom templates" hint="Every channel uses a built-in template per event until you write your own. Show the built-ins to start from a copy." />
          ) : (
            <table aria-label="Templates">
              <thead><tr><th>Name</th><th>Channel</th><th>Events</th><th>Changed</th></tr></thead>
              <tbody>
                {d.items.map((t) => (
                  <tr key={t.name}>
                    <td><Link to={`/notifications/templates/edit?name=${encodeURIComponent(t.name)}`}>{t.name}</Link>{t.description && <div className="muted">{t.description}</div>}</td>
                    <td>{t.channel}</td>
                    <td>{t.events?.length ? t.events.join(', ') : <span className="muted">every event</span>}</td>
                    <td>{t.updated_at ? <Time at={t.updated_at} /> : <span className="muted">built in</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
    </>
  );
}

const fieldsFor: Record<ChannelKind, ('subject' | 'text' | 'html' | 'body')[]> = {
  email: ['subject', 'text', 'html'],
  chat: ['subject', 'text', 'body'],
  webhook: ['body'],
};

const fieldHints: Record<string, string> = {
  subject: 'Mail subject or chat heading (newlines become spaces)',
  text: 'Plain text: the mail’s text part, or the chat message',
  html: 'The mail’s HTML part (escaped automatically)',
  body: 'JSON: the webhook body, or a complete chat payload (optional for chat)',
};

/** Problems per field, with the line each names, from a 400's details. */
export function diagnostics(err: unknown): Record<string, { line: number | null; message: string }[]> {
  const out: Record<string, { line: number | null; message: string }[]> = {};
  if (!(err instanceof ApiError)) return out;
  const list = err.problem.details?.length ? err.problem.details : [err.problem];
  for (const d of list) {
    const f = d.field ?? '';
    (out[f] ??= []).push(lineOf(d.message));
  }
  return out;
}

/** Create or edit a template with a live preview rendered by the server. */
export function TemplateEditor() {
  const [params] = useSearchParams();
  const name = params.get('name');
  const existing = useQuery({
    queryKey: ['notifications', 'template', name],
    queryFn: () => api.get<Template>(`/api/v1/notifications/templates/${name!.split('/').map(encodeURIComponent).join('/')}`),
    enabled: !!name,
  });
  if (name && !existing.data) return <Loading query={existing} what="template">{() => null}</Loading>;
  return <Editor key={name ?? 'new'} initial={existing.data ?? null} />;
}

function Editor({ initial }: { initial: Template | null }) {
  const { can } = useAuth();
  const builtin = !!initial?.name.startsWith('builtin/');
  const readOnly = builtin || !can('notifications:write');
  const nav = useNavigate();
  const qc = useQueryClient();
  const [t, setT] = useState<Template>(initial ?? { name: '', channel: 'email', events: [], subject: '', text: '', html: '', body: '' });
  const [event, setEvent] = useState(initial?.events?.[0] ?? 'run.failed');
  const [busy, setBusy] = useState(false);
  const [saveError, setSaveError] = useState<unknown>(null);
  const events = useQuery({ queryKey: ['notifications', 'events'], queryFn: () => api.get<{ items: EventType[] }>('/api/v1/notifications/events'), staleTime: Infinity });
  const draft = useDebounced(t, 400);
  const body = useMemo(() => {
    const tpl: Record<string, unknown> = { name: draft.name || undefined, channel: draft.channel, events: draft.events?.length ? draft.events : undefined };
    for (const f of fieldsFor[draft.channel]) if (draft[f]) tpl[f] = draft[f];
    return { template: tpl, event };
  }, [draft, event]);
  const preview = useQuery({
    queryKey: ['notifications', 'preview', body],
    queryFn: () => api.post<Rendered>('/api/v1/notifications/templates/preview', body),
    placeholderData: keepPreviousData,
    retry: false,
    // Nothing to render yet: the server would only say the fields are empty.
    enabled: fieldsFor[draft.channel].some((f) => !!draft[f]),
  });
  const diags = { ...diagnostics(saveError), ...diagnostics(preview.error) };
  const fieldDiag = (f: string) => diags[f]?.map((d) => (d.line ? `Line ${d.line}: ${d.message}` : d.message)).join('; ');
  const otherDiags = Object.entries(diags).filter(([f]) => !fieldsFor[t.channel].includes(f as 'text'));
  const set = (k: keyof Template) => (e: { target: { value: string } }) => setT({ ...t, [k]: e.target.value });
  const toggleEvent = (ev: string) => {
    const cur = new Set(t.events ?? []);
    if (cur.has(ev)) cur.delete(ev);
    else cur.add(ev);
    setT({ ...t, events: [...cur] });
  };
  const save = async () => {
    setBusy(true);
    setSaveError(null);
    try {
      const payload: Record<string, unknown> = { name: t.name, channel: t.channel, description: t.description || undefined, events: t.events ?? [] };
      for (const f of fieldsFor[t.channel]) payload[f] = t[f] ?? '';
      if (initial && !builtin) {
        await api.put(`/api/v1/notifications/templates/${encodeURIComponent(initial.name)}`, { ...payload, revision: initial.revision });
      } else {
        await api.post('/api/v1/notifications/templates', payload);
      }
      await qc.invalidateQueries({ queryKey: ['notifications'] });
      void nav('/notifications/templates');
    } catch (e) {
      setSaveError(e);
    } finally {
      setBusy(false);
    }
  };
  const copyAsNew = () => setT({ ...t, name: `${t.name.replace(/^builtin\//, '').replace(/[/]/g, '-')}-custom` });
  const editingBuiltinCopy = builtin && t.name !== initial?.name;
  const r = preview.data;
  return (
    <>
      <div className="inv-toolbar" style={{ justifyContent: 'space-between' }}>
        <Link to="/notifications/templates">← Templates</Link>
        <div style={{ display: 'flex', gap: 6 }}>
          {builtin && !editingBuiltinCopy && can('notifications:write') && <Button onClick={copyAsNew}>Copy as a new template</Button>}
          {initial && !builtin && can('notifications:write') && (
            <ConfirmButton
              label="Delete"
              danger
              confirmLabel="Delete"
              title={`Delete template ${initial.name}?`}
              action={async () => {
                await api.del(`/api/v1/notifications/templates/${encodeURIComponent(initial.name)}`);
                await qc.invalidateQueries({ queryKey: ['notifications'] });
                void nav('/notifications/templates');
              }}
              body={<p>Channels and rules that name it go back to the built-in templates, or the server refuses and names them.</p>}
            />
          )}
          {(!readOnly || editingBuiltinCopy) && <Button variant="primary" busy={busy} onClick={() => void save()}>Save template</Button>}
        </div>
      </div>
      {builtin && !editingBuiltinCopy && <p className="muted">Built-in templates are read-only: copy one to change it.</p>}
      <div className="inv-grid2" style={{ alignItems: 'start' }}>
        <section className="card" aria-label="Template source" style={{ display: 'flex', flexDirection: 'column', gap: 10 }}>
          <div className="inv-form">
            <Field label="Name" error={fieldDiag('name')}>
              <input value={t.name} onChange={set('name')} disabled={!!initial && !editingBuiltinCopy} />
            </Field>
            <Field label="Channel kind" error={fieldDiag('channel')}>
              <select value={t.channel} onChange={set('channel')} disabled={!!initial}>
                <option value="email">email</option>
                <option value="chat">chat</option>
                <option value="webhook">webhook</option>
              </select>
            </Field>
          </div>
          <Field label="Description"><input value={t.description ?? ''} onChange={set('description')} disabled={readOnly && !editingBuiltinCopy} /></Field>
          <fieldset style={{ border: '1px solid var(--border)', borderRadius: 6 }}>
            <legend>Events it is written for (none: every event)</legend>
            {(events.data?.items ?? []).map((e) => (
              <label key={e.type} style={{ marginRight: 10, whiteSpace: 'nowrap' }}>
                <input type="checkbox" checked={t.events?.includes(e.type) ?? false} onChange={() => toggleEvent(e.type)} disabled={readOnly && !editingBuiltinCopy} /> {e.type}
              </label>
            ))}
            {fieldDiag('events') && <div className="field-message">{fieldDiag('events')}</div>}
          </fieldset>
          {fieldsFor[t.channel].map((f) => (
            <Field key={f} label={f} error={fieldDiag(f)} hint={fieldHints[f]}>
              {f === 'subject' ? (
                <input className="mono" value={t[f] ?? ''} onChange={set(f)} disabled={readOnly && !editingBuiltinCopy} aria-label={`Template ${f}`} />
              ) : (
                <textarea rows={f === 'body' ? 10 : 8} value={t[f] ?? ''} onChange={set(f)} spellCheck={false} disabled={readOnly && !editingBuiltinCopy} aria-label={`Template ${f}`} />
              )}
            </Field>
          ))}
          <ErrorBox error={saveError && Object.keys(diagnostics(saveError)).length === 0 ? saveError : null} />
        </section>
        <section className="card" aria-label="Preview" style={{ display: 'flex', flexDirection: 'column', gap: 8 }}>
          <div className="inv-toolbar" style={{ margin: 0 }}>
            <h2 style={{ margin: 0 }}>Preview</h2>
            <Field label="Sample event">
              <select value={event} onChange={(e) => setEvent(e.target.value)} aria-label="Preview event">
                {(events.data?.items ?? [{ type: event }]).map((e) => <option key={e.type} value={e.type}>{e.type}</option>)}
              </select>
            </Field>
            {(preview.isFetching || draft !== t) && <Spinner label="Rendering…" />}
          </div>
          {preview.error ? (
            <div className="error-box" role="alert" data-testid="preview-errors">
              <strong>The template does not render:</strong>
              <ul>
                {Object.entries(diagnostics(preview.error)).flatMap(([f, ds]) => ds.map((d, i) => (
                  <li key={`${f}-${i}`}><code>{f || 'template'}</code>{d.line ? ` line ${d.line}` : ''}: {d.message}</li>
                )))}
              </ul>
            </div>
          ) : r ? (
            <div data-testid="preview">
              {r.subject !== undefined && <p><strong>Subject:</strong> {r.subject}</p>}
              {r.text !== undefined && <pre style={{ whiteSpace: 'pre-wrap', margin: 0 }} className="card">{r.text}</pre>}
              {r.html !== undefined && <details><summary>HTML part</summary><pre style={{ whiteSpace: 'pre-wrap' }}>{r.html}</pre></details>}
              {r.body !== undefined && <pre style={{ whiteSpace: 'pre-wrap' }} className="card">{JSON.stringify(r.body, null, 2)}</pre>}
              {r.subject === undefined && r.text === undefined && r.html === undefined && r.body === undefined && <p className="muted">Empty: fill in a field to see it rendered.</p>}
            </div>
          ) : null}
          {otherDiags.length > 0 && !preview.error && <ErrorBox error={saveError} />}
        </section>
      </div>
    </>
  );
}
