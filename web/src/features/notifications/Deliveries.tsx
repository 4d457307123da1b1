import { Fragment, useState } from 'react';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, qs } from '../../api/client';
import { useAuth } from '../../app/auth';
import { Button, EmptyState, ErrorBox, Field, Loading, StatusBadge, Time } from '../../components/ui';
import { AttemptList } from './Channels';
import type { ChannelView, Delivery, Rule } from './types';

/**
 * Deliveries, newest first; dead is the dead-letter list (deliveries that
 * used every attempt). A delivered or dead one can be sent again.
 */
export function Deliveries({ dead }: { dead?: boolean }) {
  const { can } = useAuth();
  const qc = useQueryClient();
  const [state, setState] = useState(dead ? 'dead' : '');
  const [channel, setChannel] = useState('');
  const [rule, setRule] = useState('');
  const [open, setOpen] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const effective = dead ? 'dead' : state;
  const list = useQuery({
    queryKey: ['notifications', 'deliveries', effective, channel, rule],
    queryFn: () => api.get<{ items: Delivery[] }>(`/api/v1/notifications/deliveries${qs({ state: effective, channel, rule, limit: 200 })}`),
    placeholderData: keepPreviousData,
  });
  const channels = useQuery({ queryKey: ['notifications', 'channels'], queryFn: () => api.get<{ items: ChannelView[] }>('/api/v1/notifications/channels') });
  const rules = useQuery({ queryKey: ['notifications', 'rules'], queryFn: () => api.get<{ items: Rule[] }>('/api/v1/notifications/rules') });
  const redeliver = async (d: Delivery) => {
    setBusy(d.id);
    setError(null);
    try {
      await api.post(`/api/v1/notifications/deliveries/${encodeURIComponent(d.id)}/redeliver`);
      await qc.invalidateQueries({ queryKey: ['notifications'] });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  return (
    <>
      <div className="inv-filters">
        {!dead && (
          <Field label="State">
            <select value={state} onChange={(e) => setState(e.target.value)} aria-label="Filter by state">
              <option value="">any</option>
              <option value="pending">pending</option>
              <option value="delivered">delivered</option>
              <option value="dead">dead</option>
            </select>
          </Field>
        )}
        <Field label="Channel">
          <select value={channel} onChange={(e) => setChannel(e.target.value)} aria-label="Filter by channel">
            <option value="">any</option>
            {channels.data?.items.map((c) => <option key={c.name} value={c.name}>{c.name}</option>)}
          </select>
        </Field>
        <Field label="Rule">
          <select value={rule} onChange={(e) => setRule(e.target.value)} aria-label="Filter by rule">
            <option value="">any</option>
            {rules.data?.items.map((r) => <option key={r.name} value={r.name}>{r.name}</option>)}
          </select>
        </Field>
      </div>
      <ErrorBox error={error} />
      <Loading query={list} what="deliveries">
        {(d) =>
          d.items.length === 0 ? (
            <EmptyState title={dead ? 'No dead letters' : 'No deliveries'} hint={dead ? 'Deliveries land here when a channel refused them on every attempt.' : 'Deliveries appear when a rule matches an event, or when you send a channel a test.'} />
          ) : (
            <table aria-label={dead ? 'Dead letters' : 'Deliveries'}>
              <thead><tr><th>When</th><th>Event</th><th>Rule</th><th>Channel</th><th>State</th><th>Attempts</th><th>Last answer</th>{can('notifications:write') && <th aria-label="Actions" />}</tr></thead>
              <tbody>
                {d.items.map((x) => (
                  <Fragment key={x.id}>
                    <tr>
                      <td><button className="chip" onClick={() => setOpen(open === x.id ? null : x.id)} aria-expanded={open === x.id}><Time at={x.created_at} /></button></td>
                      <td>{x.event.type}{x.event.summary && <div className="muted">{x.event.summary}</div>}</td>
                      <td>{x.test ? <span className="muted">test</span> : x.rule}</td>
                      <td>{x.channel}</td>
                      <td><StatusBadge status={x.state} tone={x.state === 'delivered' ? 'ok' : x.state === 'dead' ? 'bad' : 'warn'} />{x.state === 'pending' && x.next_attempt_at && <div className="muted">next <Time at={x.next_attempt_at} /></div>}</td>
                      <td>{x.attempts} / {x.max_attempts}</td>
                      <td className="mono" style={{ wordBreak: 'break-word' }}>{x.last_code ? `HTTP ${x.last_code} ` : ''}{x.last_error}</td>
                      {can('notifications:write') && (
                        <td>{x.state !== 'pending' && <Button busy={busy === x.id} onClick={() => void redeliver(x)}>Redeliver</Button>}</td>
                      )}
                    </tr>
                    {open === x.id && (
                      <tr>
                        <td colSpan={8}>
                          <p className="mono muted" style={{ margin: '0 0 6px' }}>{x.id}{x.template ? ` · template ${x.template}` : ''}{x.round ? ` · round ${x.round}` : ''}</p>
                          <AttemptList delivery={x} />
                        </td>
                      </tr>
                    )}
                  </Fragment>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
    </>
  );
}
