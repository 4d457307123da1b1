import { useEffect, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, qs } from '../../api/client';
import { useAuth } from '../../app/auth';
import { Button, EmptyState, ErrorBox, Field, PageHeader, Spinner, StatusBadge, Time } from '../../components/ui';
import { ConfirmButton } from '../../components/ConfirmButton';
import { useDebounced } from './useDebounced';
import { TargetDialog } from './TargetDialog';
import { ImportDialog } from './ImportDialog';
import { InventoryTabs } from './InventoryTabs';
import { downloadFrom } from './download';
import type { Group, Target, TargetPage } from './types';

const sorts: Record<string, string> = { name: 'Name A–Z', '-name': 'Name Z–A', '-updated': 'Recently changed', updated: 'Least recently changed' };

/** The target list: filters live in the URL so that a view can be shared. */
export function TargetsPage() {
  const [params, setParams] = useSearchParams();
  const { can } = useAuth();
  const writable = can('assets:write');
  const q = params.get('q') ?? '';
  const group = params.get('group') ?? '';
  const tags = params.getAll('tag');
  const sort = params.get('sort') ?? 'name';
  const limit = Number(params.get('limit') ?? 50);
  const [search, setSearch] = useState(q);
  const debounced = useDebounced(search, 300);
  // Cursors of the pages before the current one; [] is the first page.
  const [cursors, setCursors] = useState<string[]>([]);
  const [cursor, setCursor] = useState('');
  const [tagInput, setTagInput] = useState('');
  const [editing, setEditing] = useState<Target | null | 'new'>(null);
  const [importing, setImporting] = useState(false);
  const [exportError, setExportError] = useState<unknown>(null);
  const qc = useQueryClient();

  const update = (fn: (p: URLSearchParams) => void) => {
    const next = new URLSearchParams(params);
    fn(next);
    setParams(next, { replace: true });
    setCursors([]);
    setCursor('');
  };
  useEffect(() => {
    if (debounced !== (params.get('q') ?? '')) update((p) => (debounced ? p.set('q', debounced) : p.delete('q')));
    // Only a settled search changes the URL; update reads the current params.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [debounced]);

  const filters = { q, group, sort, limit };
  const listQS = () => {
    const base = qs({ ...filters, cursor });
    const t = tags.map((x) => `tag=${encodeURIComponent(x)}`).join('&');
    return t ? `${base}${base ? '&' : '?'}${t}` : base;
  };
  const list = useQuery({
    queryKey: ['targets', 'list', filters, tags, cursor],
    queryFn: () => api.get<TargetPage>(`/api/v1/targets${listQS()}`),
    placeholderData: keepPreviousData,
  });
  const groups = useQuery({ queryKey: ['targets', 'groups'], queryFn: () => api.get<{ items: Group[] }>('/api/v1/groups') });

  const addTag = (t: string) => {
    if (!t.includes('=') || tags.includes(t)) return;
    update((p) => p.append('tag', t));
  };
  const removeTag = (t: string) => update((p) => {
    const rest = p.getAll('tag').filter((x) => x !== t);
    p.delete('tag');
    rest.forEach((x) => p.append('tag', x));
  });
  const exportAs = async (format: 'csv' | 'json') => {
    setExportError(null);
    try {
      const t = tags.map((x) => `&tag=${encodeURIComponent(x)}`).join('');
      await downloadFrom(`/api/v1/targets/export${qs({ format, q, group })}${t}`, `targets.${format}`);
    } catch (e) {
      setExportError(e);
    }
  };
  const toggleSort = (col: 'name' | 'updated') => {
    const next = sort === col ? `-${col}` : sort === `-${col}` ? col : col === 'updated' ? '-updated' : 'name';
    update((p) => p.set('sort', next));
  };
  const arrow = (col: string) => (sort === col ? ' ▲' : sort === `-${col}` ? ' ▼' : '');
  const filtered = !!(q || group || tags.length);

  return (
    <>
      <PageHeader
        title="Inventory"
        actions={
          <>
            <Button onClick={() => void exportAs('csv')}>Export CSV</Button>
            <Button onClick={() => void exportAs('json')}>Export JSON</Button>
            {writable && <Button onClick={() => setImporting(true)}>Import…</Button>}
            {writable && <Button variant="primary" onClick={() => setEditing('new')}>New target</Button>}
          </>
        }
      />
      <InventoryTabs />
      <ErrorBox error={exportError} />
      <div className="inv-filters" role="search">
        <Field label="Search">
          <input type="search" placeholder="Name, address, ID, owner or notes" value={search} onChange={(e) => setSearch(e.target.value)} aria-label="Search targets" />
        </Field>
        <Field label="Group">
          <select value={group} onChange={(e) => update((p) => (e.target.value ? p.set('group', e.target.value) : p.delete('group')))} aria-label="Filter by group">
            <option value="">Any group</option>
            {groups.data?.items.map((g) => (
              <option key={g.name} value={g.name}>{g.name}{g.kind === 'dynamic' ? ' (dynamic)' : ''}</option>
            ))}
          </select>
        </Field>
        <Field label="Tag (key=value)">
          <form onSubmit={(e) => { e.preventDefault(); addTag(tagInput.trim()); setTagInput(''); }}>
            <input value={tagInput} onChange={(e) => setTagInput(e.target.value)} placeholder="env=prod, then Enter" aria-label="Add a tag filter" />
          </form>
        </Field>
        <Field label="Sort">
          <select value={sort} onChange={(e) => update((p) => p.set('sort', e.target.value))} aria-label="Sort">
            {Object.entries(sorts).map(([k, v]) => <option key={k} value={k}>{v}</option>)}
          </select>
        </Field>
        {list.isFetching && <Spinner label="Loading…" />}
      </div>
      {tags.length > 0 && (
        <div style={{ marginBottom: 8 }}>
          {tags.map((t) => (
            <span key={t} className="chip">
              tag {t}
              <button className="chip-remove" aria-label={`Remove tag filter ${t}`} onClick={() => removeTag(t)}>×</button>
            </span>
          ))}
        </div>
      )}
      {list.error ? <ErrorBox error={list.error} /> : !list.data ? <Spinner label="Loading targets…" /> : list.data.items.length === 0 && cursors.length === 0 ? (
        filtered ? (
          <EmptyState title="No targets match these filters" hint="Clear the search, group or tag filters to see every target." />
        ) : (
          <EmptyState
            title="No targets yet"
            hint="Targets appear when an agent enrols. Add SSH targets one by one with New target, or many at once with Import (CSV or JSON)."
            action={writable && <Button variant="primary" onClick={() => setImporting(true)}>Import targets…</Button>}
          />
        )
      ) : (
        <>
          <table aria-label="Targets">
            <thead>
              <tr>
                <th><button className="sort" onClick={() => toggleSort('name')}>Name{arrow('name')}</button></th>
                <th>Address</th>
                <th>Connection</th>
                <th>Tags</th>
                <th>Groups</th>
                <th>Agent / relay</th>
                <th>State</th>
                <th><button className="sort" onClick={() => toggleSort('updated')}>Changed{arrow('updated')}</button></th>
                {writable && <th aria-label="Actions" />}
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((t) => (
                <tr key={t.id}>
                  <td><Link to={`/inventory/targets/${encodeURIComponent(t.id)}`}>{t.name}</Link></td>
                  <td className="mono">{t.addresses.join(', ') || <span className="muted">—</span>}</td>
                  <td>{t.connection.type}{t.connection.type === 'ssh' && t.connection.port ? `:${t.connection.port}` : ''}</td>
                  <td>
                    {Object.entries(t.tags).map(([k, v]) => (
                      <button key={k} className="chip" title="Filter by this tag" onClick={() => addTag(`${k}=${v}`)}>{k}={v}</button>
                    ))}
                  </td>
                  <td>
                    {[...t.groups, ...(t.dynamic_groups ?? [])].map((g) => (
                      <button key={g} className="chip" title="Filter by this group" onClick={() => update((p) => p.set('group', g))}>{g}</button>
                    ))}
                  </td>
                  <td className="mono">{t.connection.type === 'agent' ? (t.connection.agent_id ?? '') : t.connection.via ? `via ${t.connection.via}` : '—'}</td>
                  <td><TargetState t={t} /></td>
                  <td><Time at={t.updated_at} /></td>
                  {writable && (
                    <td>
                      <div className="inv-row-actions">
                        <Button variant="ghost" onClick={() => setEditing(t)} aria-label={`Edit ${t.name}`}>Edit</Button>
                        <ConfirmButton
                          label="Delete"
                          variant="ghost"
                          title={`Delete ${t.name}?`}
                          action={async () => {
                            await api.del(`/api/v1/targets/${encodeURIComponent(t.id)}`);
                            await qc.invalidateQueries({ queryKey: ['targets'] });
                          }} confirmLabel="Delete" danger body={<><p>
                            The target <strong>{t.name}</strong> and its relationships are removed.
                            {t.connection.type === 'agent' && ' Its agent stays enrolled: only the annotations (tags, groups, owner, notes) go.'}
                          </p></>} />
                      </div>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
          <div className="inv-pager">
            <span className="muted">Page {cursors.length + 1} · {list.data.items.length} shown</span>
            <select value={limit} onChange={(e) => update((p) => p.set('limit', e.target.value))} aria-label="Page size">
              {[25, 50, 100, 250].map((n) => <option key={n} value={n}>{n} per page</option>)}
            </select>
            <Button disabled={cursors.length === 0} onClick={() => { setCursor(cursors[cursors.length - 1] ?? ''); setCursors(cursors.slice(0, -1)); }}>← Previous</Button>
            <Button disabled={!list.data.next} onClick={() => { setCursors([...cursors, cursor]); setCursor(list.data.next); }}>Next →</Button>
          </div>
        </>
      )}
      {editing && <TargetDialog target={editing === 'new' ? null : editing} onClose={() => setEditing(null)} />}
      {importing && <ImportDialog onClose={() => setImporting(false)} />}
    </>
  );
}

/** The agent's state for agent targets; the last run's outcome for SSH ones. */
export function TargetState({ t }: { t: Target }) {
  if (t.connection.type === 'agent') return <StatusBadge status={t.status.agent || 'unknown'} />;
  if (t.status.last_run) return <StatusBadge status={t.status.last_run.outcome} />;
  return <StatusBadge status="unknown" tone="idle" />;
}
