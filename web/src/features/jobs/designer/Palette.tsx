import { useMemo, useState } from 'react';
import { usesOf, type CatalogStep } from '../api';

export const dragType = 'application/x-opsconductor-step';

/** The step catalog, searchable; entries are dragged onto the canvas (or added with Enter). */
export function Palette({ catalog, onAdd }: { catalog: CatalogStep[]; onAdd: (uses: string) => void }) {
  const [q, setQ] = useState('');
  const items = useMemo(() => {
    const needle = q.trim().toLowerCase();
    const list = [...catalog, approvalEntry];
    return needle ? list.filter((s) => `${s.name} ${s.summary ?? ''} ${s.kind}`.toLowerCase().includes(needle)) : list;
  }, [catalog, q]);
  return (
    <aside className="designer-palette" aria-label="Step catalog">
      <input type="search" placeholder="Search steps…" aria-label="Search steps" value={q} onChange={(e) => setQ(e.target.value)} />
      <p className="muted palette-hint">Drag a step onto the canvas.</p>
      <ul>
        {items.map((s) => {
          const uses = usesOf(s);
          return (
            <li
              key={`${s.kind}:${uses}`}
              className="palette-item"
              draggable
              tabIndex={0}
              data-testid={`step-palette-item-${s.kind === 'plugin' ? uses : s.name}`}
              onDragStart={(e) => {
                e.dataTransfer.setData(dragType, uses);
                e.dataTransfer.effectAllowed = 'move';
              }}
              onKeyDown={(e) => e.key === 'Enter' && onAdd(uses)}
              onDoubleClick={() => onAdd(uses)}
              title={s.summary}
            >
              <span className="palette-name">{s.name}</span>
              <span className="palette-kind muted">{s.kind === 'plugin' ? `plugin ${s.version}` : s.kind === 'builtin' ? 'built-in' : 'controller'}</span>
              {s.summary && <span className="palette-summary muted">{s.summary}</span>}
            </li>
          );
        })}
        {items.length === 0 && <li className="muted">No step matches “{q}”.</li>}
      </ul>
    </aside>
  );
}

/** Approval runs in the controller, so the agents' catalog does not list it. */
const approvalEntry: CatalogStep = {
  kind: 'builtin',
  name: 'approval',
  version: '',
  summary: 'Wait for a person to approve or reject before the steps that need it run.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      message: { type: 'string', description: 'What the approver is shown.' },
      timeout: { type: 'string', description: 'How long to wait for a decision (default 24h).' },
    },
  },
};

export function findCatalog(catalog: CatalogStep[], uses: string): CatalogStep | undefined {
  const [name, version] = uses.split('@');
  if (name === 'approval') return approvalEntry;
  const same = catalog.filter((s) => s.name === name);
  if (!version) return same.find((s) => s.kind === 'builtin') ?? same[0];
  return same.find((s) => s.version === version) ?? same.find((s) => s.version.startsWith(`${version}.`)) ?? same[0];
}
