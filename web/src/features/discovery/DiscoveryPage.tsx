import { useState } from 'react';
import { Link, useNavigate } from 'react-router';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, qs } from '../../api/client';
import { useLiveStatus } from '../../api/live';
import { useAuth } from '../../app/auth';
import { Button, EmptyState, ErrorBox, Field, Loading, PageHeader, StatusBadge, Time } from '../../components/ui';
import { ConfirmButton } from '../../components/ConfirmButton';
import { ProfileDialog } from './ProfileDialog';
import { ScanProgress } from './ScanProgress';
import { AgentRanges } from './AgentRanges';
import { activeScan, type Profile, type Scan } from './types';

interface AgentItem {
  id: string;
  name: string;
}

/** Profiles (what to scan, from which agent, when) and the scans they ran. */
export function DiscoveryPage() {
  const { can } = useAuth();
  const writable = can('assets:write');
  const qc = useQueryClient();
  const nav = useNavigate();
  const [editing, setEditing] = useState<Profile | 'new' | null>(null);
  const [running, setRunning] = useState<string | null>(null);
  const [runError, setRunError] = useState<unknown>(null);
  const [profileFilter, setProfileFilter] = useState('');
  const [after, setAfter] = useState<string[]>([]);
  const profiles = useQuery({ queryKey: ['discovery', 'profiles'], queryFn: () => api.get<{ items: Profile[] }>('/api/v1/discovery/profiles') });
  const agents = useQuery({ queryKey: ['agents', 'list', 'names'], queryFn: () => api.get<{ items: AgentItem[] }>('/api/v1/agents'), enabled: can('agents:read') });
  const live = useLiveStatus();
  const cursor = after[after.length - 1] ?? '';
  const scans = useQuery({
    queryKey: ['discovery', 'scans', profileFilter, cursor],
    queryFn: () => api.get<{ items: Scan[]; next?: string }>(`/api/v1/discovery/scans${qs({ profile: profileFilter, after: cursor, limit: 25 })}`),
    placeholderData: keepPreviousData,
    // Live updates ("discovery" topic) move running scans along; while
    // the live connection is down, a running scan is asked for instead.
    refetchInterval: (q) => (live !== 'live' && q.state.data?.items.some(activeScan) ? 2000 : false),
  });
  const agentName = (id: string) => agents.data?.items.find((a) => a.id === id)?.name ?? id;
  const run = async (name: string) => {
    setRunning(name);
    setRunError(null);
    try {
      const sc = await api.post<Scan>(`/api/v1/discovery/profiles/${encodeURIComponent(name)}/run`);
      await qc.invalidateQueries({ queryKey: ['discovery'] });
      void nav(`/discovery/scans/${encodeURIComponent(sc.id)}`);
    } catch (e) {
      setRunError(e);
    } finally {
      setRunning(null);
    }
  };
  return (
    <>
      <PageHeader title="Discovery" actions={writable && <Button variant="primary" onClick={() => setEditing('new')}>New profile</Button>}>
        <p className="muted" style={{ margin: '4px 0 0' }}>An agent scans address ranges for open ports; found hosts can be imported as SSH targets it relays.</p>
      </PageHeader>
      <ErrorBox error={runError} />
      <section className="inv-section" aria-label="Profiles">
        <header><h2>Profiles</h2></header>
        <Loading query={profiles} what="profiles">
          {(d) =>
            d.items.length === 0 ? (
              <EmptyState
                title="No discovery profiles"
                hint="A profile names the ranges to scan (within the ranges an admin allowed the agent), the ports, and an optional schedule."
                action={writable && <Button variant="primary" onClick={() => setEditing('new')}>New profile</Button>}
              />
            ) : (
              <table aria-label="Profiles">
                <thead><tr><th>Name</th><th>Agent</th><th>Ranges</th><th>Ports</th><th>Schedule</th><th>Auto-import</th><th>Changed</th>{writable && <th aria-label="Actions" />}</tr></thead>
                <tbody>
                  {d.items.map((p) => (
                    <tr key={p.name}>
                      <td><button className="chip" onClick={() => { setProfileFilter(p.name); setAfter([]); }} title="Show this profile's scans">{p.name}</button></td>
                      <td>{agentName(p.agent)}</td>
                      <td className="mono">{p.cidrs.join(', ')}</td>
                      <td className="mono">{p.ports?.join(', ') || <span className="muted">default set</span>}</td>
                      <td>{p.schedule ? <><code>{p.schedule}</code>{p.time_zone ? ` (${p.time_zone})` : ''}</> : <span className="muted">manual</span>}</td>
                      <td>{p.auto_import ? `hosts with ${p.auto_import.ports.join(', ')} open` : <span className="muted">off</span>}</td>
                      <td><Time at={p.updated_at} /></td>
                      {writable && (
                        <td>
                          <div className="inv-row-actions">
                            <Button variant="primary" busy={running === p.name} disabled={!!running} onClick={() => void run(p.name)}>Run now</Button>
                            <Button variant="ghost" onClick={() => setEditing(p)}>Edit</Button>
                            <ConfirmButton
                              label="Delete"
                              variant="ghost"
                              danger
                              title={`Delete profile ${p.name}?`}
                              confirmLabel="Delete"
                              action={async () => {
                                await api.del(`/api/v1/discovery/profiles/${encodeURIComponent(p.name)}`);
                                await qc.invalidateQueries({ queryKey: ['discovery'] });
                              }}
                              body={<p>The profile and its schedule go; past scans stay listed.</p>}
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
      </section>
      <section className="inv-section" aria-label="Scans">
        <header>
          <h2>Scans{profileFilter && ` of ${profileFilter}`}</h2>
          <Field label="Profile">
            <select value={profileFilter} onChange={(e) => { setProfileFilter(e.target.value); setAfter([]); }} aria-label="Filter scans by profile">
              <option value="">Every profile</option>
              {profiles.data?.items.map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}
            </select>
          </Field>
        </header>
        <Loading query={scans} what="scans">
          {(d) =>
            d.items.length === 0 ? (
              <EmptyState title="No scans yet" hint="Run a profile now, or give it a schedule; its scans are listed here." />
            ) : (
              <>
                <table aria-label="Scans">
                  <thead><tr><th>Scan</th><th>Profile</th><th>Status</th><th>Progress</th><th>Found</th><th>Changes</th><th>Started</th></tr></thead>
                  <tbody>
                    {d.items.map((s) => (
                      <tr key={s.id}>
                        <td><Link className="mono" to={`/discovery/scans/${encodeURIComponent(s.id)}`}>{s.id}</Link></td>
                        <td>{s.profile}</td>
                        <td><StatusBadge status={s.status} /></td>
                        <td><ScanProgress scan={s} compact /></td>
                        <td>{s.summary ? `${s.summary.hosts_up} hosts, ${s.summary.open_ports} ports` : '—'}</td>
                        <td>
                          {s.summary ? (
                            <>
                              <span className="diff-new">+{s.summary.appeared} new</span>{' '}
                              <span className="diff-changed">~{s.summary.changed} changed</span>{' '}
                              <span className="diff-gone">−{s.summary.disappeared} gone</span>
                              {s.summary.proposed > 0 && <> · {s.summary.proposed} not in inventory</>}
                            </>
                          ) : '—'}
                        </td>
                        <td><Time at={s.started_at ?? s.created_at} /></td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                <div className="inv-pager">
                  <Button disabled={after.length === 0} onClick={() => setAfter(after.slice(0, -1))}>← Newer</Button>
                  <Button disabled={!d.next} onClick={() => d.next && setAfter([...after, d.next])}>Older →</Button>
                </div>
              </>
            )
          }
        </Loading>
      </section>
      {can('agents:admin') && (agents.data?.items.length ?? 0) > 0 && <AgentRanges agents={agents.data!.items} />}
      {editing && <ProfileDialog profile={editing === 'new' ? null : editing} agents={agents.data?.items ?? []} onClose={() => setEditing(null)} />}
    </>
  );
}
