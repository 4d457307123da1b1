import { Fragment, useEffect, useState } from 'react';
import { useSearchParams } from 'react-router';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { api } from '../../api/client';
import { downloadWithToken } from '../../components/download';
import { Button, EmptyState, ErrorBox, Field, Loading, PageHeader, Spinner, StatusBadge } from '../../components/ui';
import { auditQuery, emptyFilters, filtersFromParams, filtersToParams, type AuditFilters } from './filters';

interface AuditEntry {
  seq: number; time: string; node: string; actor?: string; actor_type: string; source_ip?: string;
  action: string; resource?: string; outcome: string; request_id?: string; detail?: string;
  diff?: Record<string, unknown>; prev_hash: string; hash?: string;
}
interface AuditPage { items: AuditEntry[]; next?: string; undecodable?: number }
interface ChainReport {
  node: string; entries: number; first_seq: number; first_time?: string; last_seq: number; last_hash?: string;
  truncated: boolean; first_broken?: { seq: number; reason: string }; problems: number;
}
interface Verification { ok: boolean; first_broken?: { node: string; seq: number; reason: string }; chains: ChainReport[] }

const pageSize = 100;

export default function AuditLog() {
  const [params, setParams] = useSearchParams();
  const applied = filtersFromParams(params);
  const [draft, setDraft] = useState<AuditFilters>(applied);
  // Cursors of the pages before this one, for "Newer".
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const key = params.toString();
  useEffect(() => { setDraft(filtersFromParams(new URLSearchParams(key))); setCursors([]); }, [key]);
  const { query, problems } = auditQuery(applied, { limit: pageSize, cursor });
  const draftProblems = auditQuery(draft).problems;
  const page = useQuery({
    queryKey: ['audit', 'list', key, cursor ?? ''],
    queryFn: () => api.get<AuditPage>(`/api/v1/audit${query}`),
    enabled: Object.keys(problems).length === 0,
    placeholderData: keepPreviousData,
  });
  const [exporting, setExporting] = useState<string | null>(null);
  const [exportError, setExportError] = useState<unknown>(null);
  const exportAs = async (format: 'jsonl' | 'csv') => {
    setExporting(format);
    setExportError(null);
    try {
      await downloadWithToken(`/api/v1/audit/export${auditQuery(applied, { format }).query}`, `audit.${format}`);
    } catch (e) {
      setExportError(e);
    } finally {
      setExporting(null);
    }
  };
  const set = <K extends keyof AuditFilters>(k: K, v: AuditFilters[K]) => setDraft({ ...draft, [k]: v });
  return (
    <div className="stack">
      <PageHeader
        title="Audit log"
        actions={
          <>
            <Button busy={exporting === 'jsonl'} onClick={() => void exportAs('jsonl')}>Export JSON Lines</Button>
            <Button busy={exporting === 'csv'} onClick={() => void exportAs('csv')}>Export CSV</Button>
          </>
        }
      >
        <p className="muted">Every change and sign-in, newest first, hash-chained per controller. Exports include every entry matching the filter.</p>
      </PageHeader>
      <ErrorBox error={exportError} />
      <Verify />
      <form
        className="filters"
        aria-label="Audit filters"
        onSubmit={(e) => {
          e.preventDefault();
          if (Object.keys(draftProblems).length) return;
          setParams(filtersToParams(draft));
        }}
      >
        <Field label="Actor"><input type="search" data-page-search value={draft.actor} onChange={(e) => set('actor', e.target.value)} placeholder="username or token" /></Field>
        <Field label="Actor type">
          <select value={draft.actor_type} onChange={(e) => set('actor_type', e.target.value as AuditFilters['actor_type'])}>
            <option value="">any</option><option value="user">user</option><option value="token">token</option><option value="agent">agent</option><option value="system">system</option>
          </select>
        </Field>
        <Field label="Action"><input value={draft.action} onChange={(e) => set('action', e.target.value)} placeholder="auth.login" /></Field>
        <Field label="Resource"><input value={draft.resource} onChange={(e) => set('resource', e.target.value)} /></Field>
        <Field label="Outcome">
          <select value={draft.outcome} onChange={(e) => set('outcome', e.target.value as AuditFilters['outcome'])}>
            <option value="">any</option><option value="success">success</option><option value="failure">failure</option><option value="denied">denied</option>
          </select>
        </Field>
        <Field label="Since" error={draftProblems.since}><input type="datetime-local" value={draft.since} onChange={(e) => set('since', e.target.value)} /></Field>
        <Field label="Until" error={draftProblems.until}><input type="datetime-local" value={draft.until} onChange={(e) => set('until', e.target.value)} /></Field>
        <div className="row">
          <Button type="submit" variant="primary">Apply</Button>
          <Button type="button" onClick={() => { setDraft(emptyFilters); setParams({}); }}>Clear</Button>
        </div>
      </form>
      <Loading query={page} what="audit entries">
        {(d) => (
          <>
            {d.undecodable ? <div className="warn-box">{d.undecodable} stored record{d.undecodable === 1 ? ' is' : 's are'} not a readable audit entry; run the chain verification.</div> : null}
            {d.items.length === 0 ? (
              <EmptyState title="No entries" hint={Object.keys(filtersToParams(applied)).length ? 'Nothing matches these filters: widen the time range or clear a filter.' : 'Nothing has been audited yet.'} />
            ) : (
              <AuditTable items={d.items} />
            )}
            <div className="pager">
              {page.isFetching && <Spinner />}
              <span className="muted">Page {cursors.length + 1}</span>
              <Button disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>Newer</Button>
              <Button disabled={!d.next} onClick={() => d.next && setCursors([...cursors, d.next])}>Older</Button>
            </div>
          </>
        )}
      </Loading>
    </div>
  );
}

function AuditTable({ items }: { items: AuditEntry[] }) {
  const [open, setOpen] = useState<string | null>(null);
  return (
    <table>
      <thead><tr><th>Time</th><th>Actor</th><th>Action</th><th>Resource</th><th>Outcome</th><th>Node / seq</th><th /></tr></thead>
      <tbody>
        {items.map((e) => {
          const id = `${e.node}/${e.seq}`;
          return (
            <Fragment key={id}>
              <tr>
                <td title={e.time}>{new Date(e.time).toLocaleString()}</td>
                <td>{e.actor || <span className="muted">—</span>} <span className="muted">({e.actor_type})</span>{e.source_ip && <div className="muted mono">{e.source_ip}</div>}</td>
                <td className="mono">{e.action}</td>
                <td className="mono truncate" title={e.resource}>{e.resource || '—'}</td>
                <td><StatusBadge status={e.outcome} tone={e.outcome === 'success' ? 'ok' : e.outcome === 'denied' ? 'warn' : 'bad'} /></td>
                <td className="mono">{e.node} #{e.seq}</td>
                <td><button className="btn btn-ghost" aria-expanded={open === id} onClick={() => setOpen(open === id ? null : id)}>{open === id ? 'Hide' : 'Details'}</button></td>
              </tr>
              {open === id && (
                <tr>
                  <td colSpan={7}>
                    <dl className="kv">
                      {e.request_id && <><dt>Request</dt><dd className="mono">{e.request_id}</dd></>}
                      {e.detail && <><dt>Detail</dt><dd>{e.detail}</dd></>}
                      <dt>Hash</dt><dd className="mono">{e.hash}</dd>
                      <dt>Previous hash</dt><dd className="mono">{e.prev_hash}</dd>
                      {e.diff && <><dt>Change</dt><dd><pre className="mono" style={{ margin: 0, whiteSpace: 'pre-wrap' }}>{JSON.stringify(e.diff, null, 2)}</pre></dd></>}
                    </dl>
                  </td>
                </tr>
              )}
            </Fragment>
          );
        })}
      </tbody>
    </table>
  );
}

function Verify() {
  const q = useQuery({ queryKey: ['audit', 'verify'], queryFn: () => api.get<Verification>('/api/v1/audit/verify'), staleTime: 0 });
  return (
    <section className="card" aria-labelledby="verify">
      <h2 id="verify">
        Chain verification
        <Button busy={q.isFetching} onClick={() => void q.refetch()}>Verify again</Button>
      </h2>
      <p className="muted">Walks every controller's chain and checks each entry's hash and its link to the one before.</p>
      {q.error ? <ErrorBox error={q.error} />
        : !q.data ? <Spinner label="Walking the chains…" />
        : (
          <div className="stack" data-testid="audit-verify">
            {q.data.ok ? (
              <div className="ok-box" role="status"><strong>Intact.</strong> {q.data.chains.length} chain{q.data.chains.length === 1 ? '' : 's'}, {q.data.chains.reduce((n, c) => n + c.entries, 0)} entries, every link checks.</div>
            ) : (
              <div className="error-box" role="alert">
                <strong>Broken.</strong> First broken link: node <code>{q.data.first_broken?.node}</code>, entry #{q.data.first_broken?.seq} — {q.data.first_broken?.reason}.
              </div>
            )}
            <table>
              <thead><tr><th>Node</th><th>State</th><th className="num">Entries</th><th>Range</th><th>Oldest entry</th><th>Newest hash</th></tr></thead>
              <tbody>
                {q.data.chains.map((c) => (
                  <tr key={c.node}>
                    <td className="mono">{c.node}</td>
                    <td>
                      {c.first_broken ? <StatusBadge status={`broken at #${c.first_broken.seq}`} tone="bad" /> : <StatusBadge status="intact" tone="ok" />}
                      {c.problems > 1 && <span className="muted"> {c.problems} problems</span>}
                      {c.first_broken && <div className="muted">{c.first_broken.reason}</div>}
                    </td>
                    <td className="num">{c.entries}</td>
                    <td className="mono">#{c.first_seq}–#{c.last_seq} {c.truncated && <StatusBadge status="head removed by retention" tone="warn" />}</td>
                    <td>{c.first_time ? new Date(c.first_time).toLocaleString() : '—'}</td>
                    <td className="mono truncate" title={c.last_hash}>{c.last_hash?.slice(0, 16) ?? '—'}…</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
    </section>
  );
}
