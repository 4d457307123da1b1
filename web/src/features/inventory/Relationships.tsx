import { useState } from 'react';
import { Link } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError, qs } from '../../api/client';
import { Button, ErrorBox, Field, Loading } from '../../components/ui';
import { ConfirmButton } from '../../components/ConfirmButton';
import { relationshipTypes, type EdgePage, type EdgeView, type Target, type TargetPage } from './types';

/** The target's edges, both ways, with add and delete. */
export function Relationships({ target, writable }: { target: Target; writable: boolean }) {
  const qc = useQueryClient();
  const out = useQuery({
    queryKey: ['relationships', 'from', target.id],
    queryFn: () => api.get<EdgePage>(`/api/v1/relationships${qs({ from: target.id, limit: 500 })}`),
  });
  const inc = useQuery({
    queryKey: ['relationships', 'to', target.id],
    queryFn: () => api.get<EdgePage>(`/api/v1/relationships${qs({ to: target.id, limit: 500 })}`),
  });
  const both = { isPending: out.isPending || inc.isPending, error: out.error ?? inc.error, data: out.data && inc.data ? [...out.data.items, ...inc.data.items] : undefined };
  const [adding, setAdding] = useState(false);
  const remove = async (e: EdgeView) => {
    await api.del(`/api/v1/relationships/${encodeURIComponent(e.id)}`);
    await qc.invalidateQueries({ queryKey: ['relationships'] });
  };
  return (
    <section className="inv-section" aria-label="Relationships">
      <header>
        <h2>Relationships</h2>
        {writable && !adding && <Button onClick={() => setAdding(true)}>Add relationship</Button>}
      </header>
      {adding && <AddRelationship target={target} onDone={() => setAdding(false)} />}
      <Loading query={both} what="relationships">
        {(edges) =>
          edges.length === 0 ? (
            <p className="muted">No relationships. Add one to say what {target.name} depends on, runs on or connects to; the graph below draws them.</p>
          ) : (
            <table aria-label="Relationships">
              <thead><tr><th>From</th><th>Type</th><th>To</th><th>Attributes</th>{writable && <th aria-label="Actions" />}</tr></thead>
              <tbody>
                {edges.map((e) => (
                  <tr key={e.id}>
                    <td>{e.from === target.id ? <strong>{e.from_name}</strong> : <Link to={`/inventory/targets/${encodeURIComponent(e.from)}`}>{e.from_name}</Link>}</td>
                    <td><code>{e.type}</code></td>
                    <td>{e.to === target.id ? <strong>{e.to_name}</strong> : <Link to={`/inventory/targets/${encodeURIComponent(e.to)}`}>{e.to_name}</Link>}</td>
                    <td>{Object.entries(e.attributes ?? {}).map(([k, v]) => <span key={k} className="chip">{k}={v}</span>)}</td>
                    {writable && (
                      <td><div className="inv-row-actions">
                        <ConfirmButton label="Delete" variant="ghost" title="Delete this relationship?" action={() => remove(e)} confirmLabel="Delete" danger body={<><p><strong>{e.from_name}</strong> <code>{e.type}</code> <strong>{e.to_name}</strong> is removed.</p></>} />
                      </div></td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
    </section>
  );
}

function AddRelationship({ target, onDone }: { target: Target; onDone: () => void }) {
  const qc = useQueryClient();
  const [dir, setDir] = useState<'out' | 'in'>('out');
  const [type, setType] = useState('depends_on');
  const [custom, setCustom] = useState('');
  const [other, setOther] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  // Suggest targets as the operator types (server-side search).
  const suggestions = useQuery({
    queryKey: ['targets', 'list', { q: other, limit: 20, suggest: true }],
    queryFn: () => api.get<TargetPage>(`/api/v1/targets${qs({ q: other, limit: 20 })}`),
    enabled: other.length > 0,
  });
  const typ = type === 'custom' ? custom.trim() : type;
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const body = dir === 'out' ? { from: target.id, type: typ, to: other.trim() } : { from: other.trim(), type: typ, to: target.id };
      await api.post('/api/v1/relationships', body);
      await qc.invalidateQueries({ queryKey: ['relationships'] });
      onDone();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const fieldErr = error instanceof ApiError ? error.fieldErrors() : {};
  return (
    <form className="card inv-toolbar" style={{ marginBottom: 8 }} onSubmit={(e) => { e.preventDefault(); void submit(); }} aria-label="Add relationship">
      <Field label="Direction">
        <select value={dir} onChange={(e) => setDir(e.target.value as 'out' | 'in')}>
          <option value="out">{target.name} → other</option>
          <option value="in">other → {target.name}</option>
        </select>
      </Field>
      <Field label="Type" error={fieldErr.type}>
        <select value={type} onChange={(e) => setType(e.target.value)} aria-label="Relationship type">
          {relationshipTypes.map((t) => <option key={t} value={t}>{t}</option>)}
          <option value="custom">custom…</option>
        </select>
      </Field>
      {type === 'custom' && (
        <Field label="Custom type" hint="lower_snake_case">
          <input value={custom} onChange={(e) => setCustom(e.target.value)} />
        </Field>
      )}
      <Field label="Other target" error={fieldErr[dir === 'out' ? 'to' : 'from']}>
        <input value={other} onChange={(e) => setOther(e.target.value)} list="rel-targets" placeholder="name or ID" aria-label="Other target" />
        <datalist id="rel-targets">
          {suggestions.data?.items.filter((t) => t.id !== target.id).map((t) => <option key={t.id} value={t.name} />)}
        </datalist>
      </Field>
      <Button type="submit" variant="primary" busy={busy} disabled={!other.trim() || !typ}>Add</Button>
      <Button type="button" onClick={onDone}>Cancel</Button>
      <ErrorBox error={error} />
    </form>
  );
}
