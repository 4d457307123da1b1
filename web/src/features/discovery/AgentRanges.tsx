import { useEffect, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../../api/client';
import { Button, ErrorBox, Field, Time } from '../../components/ui';
import { isCIDR } from './profileForm';

interface Ranges {
  agent: string;
  cidrs: string[];
  updated_at?: string;
  updated_by?: string;
}

/**
 * The ranges each agent may scan, set by an agents admin: a profile whose
 * ranges fall outside its agent's is refused, so that discovery cannot be
 * pointed at networks nobody approved.
 */
export function AgentRanges({ agents }: { agents: { id: string; name: string }[] }) {
  const qc = useQueryClient();
  const [agent, setAgent] = useState(agents[0]?.id ?? '');
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const ranges = useQuery({
    queryKey: ['discovery', 'ranges', agent],
    queryFn: () => api.get<Ranges>(`/api/v1/discovery/agents/${encodeURIComponent(agent)}/ranges`),
    enabled: !!agent,
  });
  useEffect(() => {
    if (ranges.data) setText(ranges.data.cidrs.join('\n'));
  }, [ranges.data]);
  useEffect(() => {
    if (!agent && agents[0]) setAgent(agents[0].id);
  }, [agent, agents]);
  const cidrs = text.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
  const bad = cidrs.filter((c) => !isCIDR(c));
  const save = async () => {
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      await api.put(`/api/v1/discovery/agents/${encodeURIComponent(agent)}/ranges`, { cidrs });
      await qc.invalidateQueries({ queryKey: ['discovery', 'ranges'] });
      setSaved(true);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const fe = error instanceof ApiError ? error.fieldErrors() : {};
  return (
    <section className="inv-section card" aria-label="Allowed ranges">
      <h2>Ranges each agent may scan</h2>
      <div className="inv-toolbar" style={{ alignItems: 'flex-start' }}>
        <Field label="Agent">
          <select value={agent} onChange={(e) => { setAgent(e.target.value); setSaved(false); }} aria-label="Agent for ranges">
            {agents.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
          </select>
        </Field>
        <Field label="Allowed ranges (CIDR)" error={bad.length ? `Not a CIDR prefix: ${bad.join(', ')}` : (fe.cidrs ?? Object.entries(fe).find(([f]) => f.startsWith('cidrs['))?.[1])} hint="One per line; empty allows nothing (a dev server always allows loopback)">
          <textarea rows={3} value={text} onChange={(e) => { setText(e.target.value); setSaved(false); }} aria-label="Allowed ranges" style={{ minWidth: 260 }} />
        </Field>
        <Button variant="primary" busy={busy} disabled={!agent || bad.length > 0} onClick={() => void save()} style={{ marginTop: 18 }}>Save ranges</Button>
        {saved && <span role="status" className="muted" style={{ marginTop: 22 }}>Saved.</span>}
      </div>
      {ranges.data?.updated_at && !ranges.data.updated_at.startsWith('0001-') && <p className="muted" style={{ margin: 0 }}>Last set <Time at={ranges.data.updated_at} />{ranges.data.updated_by ? ` by ${ranges.data.updated_by}` : ''}.</p>}
      <ErrorBox error={error ?? ranges.error} />
    </section>
  );
}
