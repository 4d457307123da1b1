import { useState } from 'react';
import { Link, useParams } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, qs } from '../../api/client';
import { useLiveStatus } from '../../api/live';
import { useAuth } from '../../app/auth';
import { Button, EmptyState, ErrorBox, Field, Loading, PageHeader, StatusBadge, Time } from '../../components/ui';
import { ScanProgress } from './ScanProgress';
import { describePort, selectable } from './hosts';
import { activeScan, type Diff, type HostView, type ScanDetail as Detail } from './types';

interface ImportResult {
  report: { rows: number; created: number; invalid: number; written: boolean; errors: { row: number; field: string; message: string }[] };
  skipped: Record<string, string>;
}

export function ScanDetail() {
  const { id = '' } = useParams();
  const { can } = useAuth();
  const qc = useQueryClient();
  const live = useLiveStatus();
  const scan = useQuery({
    queryKey: ['discovery', 'scan', id],
    queryFn: () => api.get<Detail>(`/api/v1/discovery/scans/${encodeURIComponent(id)}`),
    // The "discovery" topic refreshes a running scan's progress; only
    // while the live connection is down does the page ask on its own.
    refetchInterval: (q) => (live !== 'live' && q.state.data && activeScan(q.state.data) ? 2000 : false),
  });
  const [cancelError, setCancelError] = useState<unknown>(null);
  const [canceling, setCanceling] = useState(false);
  const cancel = async () => {
    setCanceling(true);
    setCancelError(null);
    try {
      await api.post(`/api/v1/discovery/scans/${encodeURIComponent(id)}/cancel`);
      await qc.invalidateQueries({ queryKey: ['discovery'] });
    } catch (e) {
      setCancelError(e);
    } finally {
      setCanceling(false);
    }
  };
  return (
    <Loading query={scan} what="scan">
      {(s) => (
        <>
          <PageHeader
            title={<>Scan of {s.profile} <span data-testid="scan-status"><StatusBadge status={s.status} /></span></>}
            actions={can('assets:write') && activeScan(s) && <Button variant="danger" busy={canceling} onClick={() => void cancel()}>Cancel scan</Button>}
          >
            <Link to="/discovery">← Discovery</Link> <span className="mono muted">{s.id}</span>
          </PageHeader>
          <ErrorBox error={cancelError} />
          <section className="card inv-section" aria-label="Scan">
            <dl className="inv-kv">
              <dt>Progress</dt><dd><ScanProgress scan={s} /></dd>
              <dt>Ranges</dt><dd className="mono">{s.params.cidrs.join(', ')}</dd>
              <dt>Ports</dt><dd className="mono">{s.params.ports?.join(', ') || 'default set'}</dd>
              <dt>Started</dt><dd><Time at={s.started_at ?? s.created_at} />{s.created_by ? ` by ${s.created_by}` : ''}</dd>
              <dt>Finished</dt><dd><Time at={s.finished_at} /></dd>
              {s.previous && <><dt>Compared with</dt><dd><Link className="mono" to={`/discovery/scans/${encodeURIComponent(s.previous)}`}>{s.previous}</Link></dd></>}
              {s.summary && (
                <>
                  <dt>Found</dt><dd>{s.summary.hosts_up} hosts up, {s.summary.open_ports} open ports; {s.summary.proposed} not in the inventory{s.summary.auto_imported ? `, ${s.summary.auto_imported} imported automatically` : ''}</dd>
                </>
              )}
            </dl>
            {s.error && <ErrorBox error={new Error(s.error)} />}
          </section>
          {activeScan(s) && <p className="muted">Results appear here when the scan finishes.</p>}
          {s.diff && <DiffView diff={s.diff} first={!s.previous} />}
          {s.status === 'succeeded' && <Hosts scanID={s.id} writable={can('assets:write')} />}
        </>
      )}
    </Loading>
  );
}

function DiffView({ diff, first }: { diff: Diff; first: boolean }) {
  const none = diff.appeared.length + diff.changed.length + diff.disappeared.length === 0;
  return (
    <section className="inv-section" aria-label="What changed">
      <header><h2>What changed{first ? ' (first scan of this profile: every host is new)' : ' since the previous scan'}</h2></header>
      {none ? (
        <p className="muted">Nothing changed: the same hosts answered on the same ports with the same services.</p>
      ) : (
        <table aria-label="Changes">
          <thead><tr><th>Change</th><th>Host</th><th>Details</th></tr></thead>
          <tbody>
            {diff.appeared.map((h) => (
              <tr key={`a-${h.address}`}><td><StatusBadge status="new" tone="ok" /></td><td className="mono">{h.address}</td><td>{h.ports.map((p) => p.port).join(', ') || 'no open ports'}</td></tr>
            ))}
            {diff.changed.map((c) => (
              <tr key={`c-${c.address}`}>
                <td><StatusBadge status="changed" tone="warn" /></td>
                <td className="mono">{c.address}</td>
                <td>
                  {c.opened?.length ? <div>opened {c.opened.join(', ')}</div> : null}
                  {c.closed?.length ? <div>closed {c.closed.join(', ')}</div> : null}
                  {c.changed?.map((pc) => <div key={pc.port}>port {pc.port}: {describePort(pc.before)} → {describePort(pc.after)}</div>)}
                </td>
              </tr>
            ))}
            {diff.disappeared.map((h) => (
              <tr key={`d-${h.address}`}><td><StatusBadge status="gone" tone="bad" /></td><td className="mono">{h.address}</td><td>was {h.ports.map((p) => p.port).join(', ') || 'up'}</td></tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Hosts({ scanID, writable }: { scanID: string; writable: boolean }) {
  const qc = useQueryClient();
  const [proposedOnly, setProposedOnly] = useState(false);
  const [pages, setPages] = useState<string[]>(['']);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [tags, setTags] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<ImportResult | null>(null);
  const after = pages[pages.length - 1] ?? '';
  const hosts = useQuery({
    queryKey: ['discovery', 'hosts', scanID, proposedOnly, after],
    queryFn: () => api.get<{ items: HostView[]; next?: string }>(`/api/v1/discovery/scans/${encodeURIComponent(scanID)}/hosts${qs({ proposed: proposedOnly || undefined, after, limit: 200 })}`),
  });
  const items = hosts.data?.items ?? [];
  const toggle = (addr: string) => {
    const next = new Set(selected);
    if (next.has(addr)) next.delete(addr);
    else next.add(addr);
    setSelected(next);
  };
  const importHosts = async (all: boolean) => {
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const tagMap: Record<string, string> = {};
      for (const p of tags.split(',').map((x) => x.trim()).filter(Boolean)) {
        const i = p.indexOf('=');
        if (i > 0) tagMap[p.slice(0, i)] = p.slice(i + 1);
      }
      const body = { ...(all ? { all: true } : { hosts: [...selected] }), tags: Object.keys(tagMap).length ? tagMap : undefined };
      const r = await api.post<ImportResult>(`/api/v1/discovery/scans/${encodeURIComponent(scanID)}/import`, body);
      setResult(r);
      setSelected(new Set());
      await qc.invalidateQueries({ queryKey: ['discovery'] });
      await qc.invalidateQueries({ queryKey: ['targets'] });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const choosable = items.filter(selectable);
  return (
    <section className="inv-section" aria-label="Hosts">
      <header>
        <h2>Hosts found</h2>
        <label><input type="checkbox" checked={proposedOnly} onChange={(e) => { setProposedOnly(e.target.checked); setPages(['']); }} /> only hosts not in the inventory</label>
      </header>
      {writable && (
        <div className="card inv-toolbar">
          <Field label="Tags for imported targets" hint="key=value, comma separated">
            <input value={tags} onChange={(e) => setTags(e.target.value)} placeholder="source=discovery" aria-label="Tags for imported targets" />
          </Field>
          <Button variant="primary" busy={busy} disabled={selected.size === 0 || busy} onClick={() => void importHosts(false)}>Import {selected.size} selected</Button>
          <Button busy={busy} disabled={busy} onClick={() => void importHosts(true)}>Import every host not in the inventory</Button>
          <span className="muted">Imported hosts become SSH targets relayed by the scanning agent.</span>
        </div>
      )}
      <ErrorBox error={error} />
      {result && (
        <div className="card" role="status" style={{ marginBottom: 8 }}>
          <strong>{result.report.written ? `Imported ${result.report.created} target${result.report.created === 1 ? '' : 's'}.` : 'Nothing was imported.'}</strong>
          {Object.keys(result.skipped).length > 0 && <> {Object.keys(result.skipped).length} already in the inventory: {Object.entries(result.skipped).map(([a, t]) => `${a} (${t})`).join(', ')}.</>}
          {result.report.errors.length > 0 && (
            <ul>{result.report.errors.map((e, i) => <li key={i}>Row {e.row}{e.field ? ` ${e.field}` : ''}: {e.message}</li>)}</ul>
          )}
        </div>
      )}
      <Loading query={hosts} what="hosts">
        {() =>
          items.length === 0 ? (
            <EmptyState title={proposedOnly ? 'Every host found is already in the inventory' : 'No host answered'} hint={proposedOnly ? 'Clear the filter to see them.' : 'Check the ranges and ports of the profile, and that the agent can reach them.'} />
          ) : (
            <>
              <table aria-label="Hosts">
                <thead>
                  <tr>
                    {writable && (
                      <th>
                        <input
                          type="checkbox"
                          aria-label="Select every host not in the inventory on this page"
                          checked={choosable.length > 0 && choosable.every((h) => selected.has(h.address))}
                          onChange={(e) => setSelected(e.target.checked ? new Set([...selected, ...choosable.map((h) => h.address)]) : new Set())}
                        />
                      </th>
                    )}
                    <th>Address</th><th>Host names</th><th>Open ports</th><th>Inventory</th>
                  </tr>
                </thead>
                <tbody>
                  {items.map((h) => (
                    <tr key={h.address}>
                      {writable && (
                        <td>
                          <input type="checkbox" aria-label={`Select ${h.address}`} disabled={!selectable(h)} checked={selected.has(h.address)} onChange={() => toggle(h.address)} />
                        </td>
                      )}
                      <td className="mono">{h.address}</td>
                      <td>{h.hostnames?.join(', ') || <span className="muted">—</span>}</td>
                      <td>{h.ports.map((p) => <span key={p.port} className="chip" title={describePort(p)}>{p.port}{p.service ? ` ${p.service}` : ''}</span>)}</td>
                      <td>{h.target ? <Link to={`/inventory?q=${encodeURIComponent(h.target)}`}>{h.target}</Link> : <StatusBadge status="not in inventory" tone="info" />}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <div className="inv-pager">
                <Button disabled={pages.length === 1} onClick={() => setPages(pages.slice(0, -1))}>← Previous</Button>
                <Button disabled={!hosts.data?.next} onClick={() => hosts.data?.next && setPages([...pages, hosts.data.next])}>Next →</Button>
              </div>
            </>
          )
        }
      </Loading>
    </section>
  );
}
