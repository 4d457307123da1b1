import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../../api/client';
import { useAuth } from '../../app/auth';
import { Button, Dialog, EmptyState, ErrorBox, Field, Loading, StatusBadge, Time } from '../../components/ui';
import { ConfirmButton } from '../../components/ConfirmButton';
import { channelTarget, channelToForm, emptyChannelForm, toChannelRequest, validateChannel, type ChannelFormValues } from './channelForm';
import type { ChannelView, Delivery, EventType, Template } from './types';

export function Channels() {
  const { can } = useAuth();
  const writable = can('notifications:write');
  const qc = useQueryClient();
  const [editing, setEditing] = useState<ChannelView | 'new' | null>(null);
  const [testing, setTesting] = useState<ChannelView | null>(null);
  const channels = useQuery({ queryKey: ['notifications', 'channels'], queryFn: () => api.get<{ items: ChannelView[] }>('/api/v1/notifications/channels') });
  return (
    <>
      <div className="inv-toolbar" style={{ justifyContent: 'space-between' }}>
        <p className="muted" style={{ margin: 0 }}>Where notifications go: an email list, a webhook (signed with its key), or a chat room.</p>
        {writable && <Button variant="primary" onClick={() => setEditing('new')}>New channel</Button>}
      </div>
      <Loading query={channels} what="channels">
        {(d) =>
          d.items.length === 0 ? (
            <EmptyState title="No channels yet" hint="Create a channel, send it a test, then add a rule that routes events to it." action={writable && <Button variant="primary" onClick={() => setEditing('new')}>New channel</Button>} />
          ) : (
            <table aria-label="Channels">
              <thead><tr><th>Name</th><th>Kind</th><th>Sends to</th><th>Secret</th><th>Attempts</th><th>Changed</th>{writable && <th aria-label="Actions" />}</tr></thead>
              <tbody>
                {d.items.map((c) => (
                  <tr key={c.name}>
                    <td>{c.name}{c.description && <div className="muted">{c.description}</div>}</td>
                    <td>{c.kind}{c.config.chat ? ` (${c.config.chat.flavor})` : ''}</td>
                    <td className="mono" style={{ wordBreak: 'break-all' }}>{channelTarget(c)}</td>
                    <td>{c.has_secret ? 'stored (write-only)' : <span className="muted">none</span>}</td>
                    <td>{c.max_attempts}</td>
                    <td><Time at={c.updated_at} /></td>
                    {writable && (
                      <td>
                        <div className="inv-row-actions">
                          <Button onClick={() => setTesting(c)}>Send test</Button>
                          <Button variant="ghost" onClick={() => setEditing(c)}>Edit</Button>
                          <ConfirmButton
                            label="Delete"
                            variant="ghost"
                            danger
                            confirmLabel="Delete"
                            title={`Delete channel ${c.name}?`}
                            action={async () => {
                              await api.del(`/api/v1/notifications/channels/${encodeURIComponent(c.name)}`);
                              await qc.invalidateQueries({ queryKey: ['notifications'] });
                            }}
                            body={<p>Rules that send to it must be changed first; the server names them if any do.</p>}
                          />
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
      {editing && <ChannelDialog channel={editing === 'new' ? null : editing} onClose={() => setEditing(null)} />}
      {testing && <TestDialog channel={testing} onClose={() => setTesting(null)} />}
    </>
  );
}

function ChannelDialog({ channel, onClose }: { channel: ChannelView | null; onClose: () => void }) {
  const qc = useQueryClient();
  const [v, setV] = useState<ChannelFormValues>(channel ? channelToForm(channel) : emptyChannelForm);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const templates = useQuery({ queryKey: ['notifications', 'templates', 'all'], queryFn: () => api.get<{ items: Template[] }>('/api/v1/notifications/templates?builtin=true') });
  const set = (k: keyof ChannelFormValues) => (e: { target: { value: string } }) => setV({ ...v, [k]: e.target.value });
  const save = async () => {
    const errs = validateChannel(v, !!channel);
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    setError(null);
    try {
      const body = toChannelRequest(v, channel ?? undefined);
      if (channel) await api.put(`/api/v1/notifications/channels/${encodeURIComponent(channel.name)}`, body);
      else await api.post('/api/v1/notifications/channels', body);
      setV((cur) => ({ ...cur, secret: '' }));
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
  const kindTemplates = (templates.data?.items ?? []).filter((t) => t.channel === v.kind);
  return (
    <Dialog
      title={channel ? `Edit channel ${channel.name}` : 'New channel'}
      open
      onClose={() => { setV((cur) => ({ ...cur, secret: '' })); onClose(); }}
      footer={<><Button onClick={onClose}>Cancel</Button><Button variant="primary" busy={busy} onClick={() => void save()}>{channel ? 'Save' : 'Create channel'}</Button></>}
    >
      <form className="inv-form" autoComplete="off" onSubmit={(e) => { e.preventDefault(); void save(); }} aria-label="Channel">
        <Field label="Name" error={err('name')}>
          <input value={v.name} onChange={set('name')} disabled={!!channel} />
        </Field>
        <Field label="Kind">
          <select value={v.kind} onChange={set('kind')} disabled={!!channel}>
            <option value="webhook">Webhook (signed JSON POST)</option>
            <option value="email">Email (SMTP)</option>
            <option value="chat">Chat (Slack, Mattermost, Teams)</option>
          </select>
        </Field>
        <div className="span2">
          <Field label="Description" error={err('description')}>
            <input value={v.description} onChange={set('description')} />
          </Field>
        </div>
        {v.kind === 'email' && (
          <>
            <Field label="SMTP host" error={err('config.email.host')}><input value={v.host} onChange={set('host')} /></Field>
            <Field label="Port" error={err('config.email.port')}><input value={v.port} onChange={set('port')} inputMode="numeric" /></Field>
            <Field label="TLS" error={err('config.email.tls')}>
              <select value={v.tls} onChange={set('tls')}>
                <option value="starttls">STARTTLS</option>
                <option value="tls">TLS from the start</option>
                <option value="none">none (local relays only)</option>
              </select>
            </Field>
            <Field label="SMTP user" error={err('config.email.username')}><input value={v.username} onChange={set('username')} autoComplete="off" /></Field>
            <Field label="From" error={err('config.email.from')}><input value={v.from} onChange={set('from')} placeholder="opsconductor@example.com" /></Field>
            <Field label="To" error={err('config.email.to')} hint="Comma separated"><input value={v.to} onChange={set('to')} /></Field>
            <Field label="Cc" error={err('config.email.cc')}><input value={v.cc} onChange={set('cc')} /></Field>
          </>
        )}
        {v.kind === 'webhook' && (
          <>
            <div className="span2"><Field label="URL" error={err('config.webhook.url')}><input value={v.url} onChange={set('url')} placeholder="https://hooks.example.com/opsconductor" /></Field></div>
            <div className="span2">
              <Field label="Extra headers" error={err('config.webhook.headers')} hint="One per line: Name: value">
                <textarea rows={2} value={v.headers} onChange={set('headers')} />
              </Field>
            </div>
          </>
        )}
        {v.kind === 'chat' && (
          <>
            <Field label="Flavor" error={err('config.chat.flavor')}>
              <select value={v.flavor} onChange={set('flavor')}>
                <option value="slack">Slack</option>
                <option value="mattermost">Mattermost</option>
                <option value="teams">Microsoft Teams</option>
              </select>
            </Field>
            <Field label="Incoming-webhook URL" error={err('config.chat.url')} hint={channel ? `Stored: ${channel.config.chat?.url ?? ''} — type the full URL again` : 'The URL is the credential: it is never shown in full again'}>
              <input type="password" value={v.chatURL} onChange={set('chatURL')} autoComplete="off" />
            </Field>
          </>
        )}
        {v.kind !== 'chat' && (
          <Field
            label={v.kind === 'webhook' ? 'Signing key' : 'SMTP password'}
            error={err('secret')}
            hint={channel?.has_secret ? 'Stored and write-only: leave empty to keep it' : v.kind === 'webhook' ? 'At least 16 characters; receivers verify the X-OpsConductor signature with it' : 'Optional'}
          >
            <input type="password" value={v.secret} onChange={set('secret')} autoComplete="off" disabled={v.removeSecret} />
          </Field>
        )}
        {channel?.has_secret && v.kind === 'email' && (
          <label><input type="checkbox" checked={v.removeSecret} onChange={(e) => setV({ ...v, removeSecret: e.target.checked })} /> Remove the stored password</label>
        )}
        <Field label="Template" error={err('config.template')} hint="Empty: the built-in one for each event">
          <select value={v.template} onChange={set('template')}>
            <option value="">built-in</option>
            {kindTemplates.map((t) => <option key={t.name} value={t.name}>{t.name}</option>)}
          </select>
        </Field>
        <Field label="Timeout" error={err('config.timeout')} hint="e.g. 10s (default)"><input value={v.timeout} onChange={set('timeout')} /></Field>
        <Field label="Max attempts" error={err('max_attempts')} hint="Retries with backoff before a delivery is dead"><input value={v.maxAttempts} onChange={set('maxAttempts')} inputMode="numeric" /></Field>
        <button type="submit" hidden />
      </form>
      <ErrorBox error={error} />
    </Dialog>
  );
}

/** Sends a sample event and shows what happened (the server waits up to 30 s). */
function TestDialog({ channel, onClose }: { channel: ChannelView; onClose: () => void }) {
  const [event, setEvent] = useState('run.failed');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<Delivery | null>(null);
  const events = useQuery({ queryKey: ['notifications', 'events'], queryFn: () => api.get<{ items: EventType[] }>('/api/v1/notifications/events'), staleTime: Infinity });
  const send = async () => {
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      setResult(await api.post<Delivery>(`/api/v1/notifications/channels/${encodeURIComponent(channel.name)}/test`, { event }));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Send a test to ${channel.name}`} open onClose={onClose} footer={<><Button onClick={onClose}>Close</Button><Button variant="primary" busy={busy} onClick={() => void send()}>Send test</Button></>}>
      <Field label="Sample event">
        <select value={event} onChange={(e) => setEvent(e.target.value)} aria-label="Sample event">
          {(events.data?.items ?? [{ type: 'run.failed' }]).map((e) => <option key={e.type} value={e.type}>{e.type}</option>)}
        </select>
      </Field>
      {busy && <p className="muted">Sending; the controller waits up to 30 seconds for the channel to answer…</p>}
      <ErrorBox error={error} />
      {result && (
        <div role="status" data-testid="test-result">
          <p>
            <StatusBadge status={result.state} />{' '}
            {result.state === 'delivered' ? 'Delivered.' : result.state === 'dead' ? 'Failed: the channel did not accept it.' : 'Still pending: the result will appear under Deliveries.'}
            {result.last_code ? ` HTTP ${result.last_code}.` : ''}
          </p>
          {result.last_error && <pre className="error-box" style={{ whiteSpace: 'pre-wrap' }}>{result.last_error}</pre>}
          <AttemptList delivery={result} />
        </div>
      )}
    </Dialog>
  );
}

export function AttemptList({ delivery }: { delivery: Delivery }) {
  if (!delivery.history?.length) return null;
  return (
    <table aria-label="Attempts">
      <thead><tr><th>When</th><th>Code</th><th>Took</th><th>Error / response</th></tr></thead>
      <tbody>
        {delivery.history.map((a, i) => (
          <tr key={i}>
            <td><Time at={a.at} /></td>
            <td>{a.code ?? '—'}</td>
            <td>{a.duration}</td>
            <td className="mono" style={{ whiteSpace: 'pre-wrap', wordBreak: 'break-word' }}>{a.error || a.response || ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
