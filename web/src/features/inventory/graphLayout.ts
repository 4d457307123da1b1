// Laying out a target's relationship graph (GET /api/v1/targets/{id}/graph)
// with dagre, as positioned nodes and edges the React Flow canvas draws.
// Kept free of React so that the layout input is tested on its own.

import dagre from '@dagrejs/dagre';
import type { Graph } from './types';

export const NODE_WIDTH = 180;
export const NODE_HEIGHT = 44;

export interface LayoutNode {
  id: string;
  name: string;
  depth: number;
  root: boolean;
}

export interface LayoutEdge {
  id: string;
  source: string;
  target: string;
  label: string;
}

export interface LayoutInput {
  nodes: LayoutNode[];
  edges: LayoutEdge[];
}

/**
 * The nodes and edges to lay out: every node once, and only edges whose
 * two ends are among the nodes (a truncated answer may name an end it
 * left out). Edges keep their direction: from depends on / runs on to.
 */
export function layoutInput(g: Graph): LayoutInput {
  const seen = new Set<string>();
  const nodes: LayoutNode[] = [];
  for (const n of g.nodes) {
    if (seen.has(n.id)) continue;
    seen.add(n.id);
    nodes.push({ id: n.id, name: n.name, depth: n.depth, root: n.id === g.root });
  }
  const edgeIDs = new Set<string>();
  const edges: LayoutEdge[] = [];
  for (const e of g.edges) {
    if (!seen.has(e.from) || !seen.has(e.to) || edgeIDs.has(e.id)) continue;
    edgeIDs.add(e.id);
    edges.push({ id: e.id, source: e.from, target: e.to, label: e.type.replace(/_/g, ' ') });
  }
  return { nodes, edges };
}

export interface Positioned extends LayoutNode {
  x: number;
  y: number;
}

/** Runs dagre: top-left positions per node (React Flow's origin). */
export function layout(input: LayoutInput, rankdir: 'LR' | 'TB' = 'LR'): Positioned[] {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir, nodesep: 24, ranksep: 70, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of input.nodes) g.setNode(n.id, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const e of input.edges) g.setEdge(e.source, e.target, { label: e.label }, e.id);
  dagre.layout(g);
  return input.nodes.map((n) => {
    const p = g.node(n.id) as { x: number; y: number };
    return { ...n, x: p.x - NODE_WIDTH / 2, y: p.y - NODE_HEIGHT / 2 };
  });
}
