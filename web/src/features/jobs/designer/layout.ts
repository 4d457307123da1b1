// Node positions: never part of the job definition. They come from dagre
// (top to bottom) and, once the author moves nodes, from the browser's
// storage for that job, keyed by step ID.
import dagre from '@dagrejs/dagre';
import type { JobDoc } from './model';

export interface XY {
  x: number;
  y: number;
}
export type Positions = Record<string, XY>;

export const nodeWidth = 200;
export const nodeHeight = 64;

/** Lays the steps out top to bottom; edges are "needs". */
export function autoLayout(doc: JobDoc): Positions {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'TB', nodesep: 40, ranksep: 60, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  const ids = new Set<string>();
  for (const s of doc.steps) {
    if (ids.has(s.id)) continue;
    ids.add(s.id);
    g.setNode(s.id, { width: nodeWidth, height: nodeHeight });
  }
  for (const s of doc.steps) for (const n of s.needs ?? []) if (ids.has(n) && n !== s.id) g.setEdge(n, s.id);
  dagre.layout(g);
  const out: Positions = {};
  for (const id of ids) {
    const n = g.node(id);
    out[id] = { x: n.x - nodeWidth / 2, y: n.y - nodeHeight / 2 };
  }
  return out;
}

/** Positions for every step: stored ones, then a spot below the rest for new ones. */
export function completePositions(doc: JobDoc, stored: Positions): Positions {
  const missing = doc.steps.filter((s) => !stored[s.id]);
  if (missing.length === 0) return stored;
  if (missing.length === doc.steps.length) return autoLayout(doc);
  const out = { ...stored };
  let maxY = Math.max(0, ...Object.values(stored).map((p) => p.y));
  for (const s of missing) {
    maxY += nodeHeight + 40;
    out[s.id] = { x: 20, y: maxY };
  }
  return out;
}

const storageKey = (job: string) => `opsconductor.designer.layout.${job || '(new)'}`;

export function loadPositions(job: string): Positions {
  try {
    const raw = localStorage.getItem(storageKey(job));
    return raw ? (JSON.parse(raw) as Positions) : {};
  } catch {
    return {};
  }
}

export function savePositions(job: string, p: Positions): void {
  try {
    localStorage.setItem(storageKey(job), JSON.stringify(p));
  } catch {
    /* storage full or disabled: positions are a convenience */
  }
}
