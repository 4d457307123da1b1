import { describe, expect, it } from 'vitest';
import { layout, layoutInput, NODE_WIDTH } from './graphLayout';
import type { Graph } from './types';

const edge = (id: string, from: string, to: string, type = 'depends_on') => ({ id, from, to, type, created_at: '', updated_at: '' });

describe('layoutInput', () => {
  it('keeps each node once, marks the root, and drops edges to nodes left out', () => {
    const g: Graph = {
      root: 'a', direction: 'both', depth: 1, truncated: true,
      nodes: [{ id: 'a', name: 'web-1', depth: 0 }, { id: 'b', name: 'db-1', depth: 1 }, { id: 'a', name: 'web-1', depth: 0 }],
      edges: [edge('e1', 'a', 'b'), edge('e2', 'b', 'zz'), edge('e1', 'a', 'b'), edge('e3', 'b', 'a', 'runs_on')],
    };
    const input = layoutInput(g);
    expect(input.nodes).toEqual([
      { id: 'a', name: 'web-1', depth: 0, root: true },
      { id: 'b', name: 'db-1', depth: 1, root: false },
    ]);
    expect(input.edges).toEqual([
      { id: 'e1', source: 'a', target: 'b', label: 'depends on' },
      { id: 'e3', source: 'b', target: 'a', label: 'runs on' },
    ]);
  });
});

describe('layout', () => {
  const chain: Graph = {
    root: 'a', direction: 'dependencies', depth: 3, truncated: false,
    nodes: [{ id: 'a', name: 'a', depth: 0 }, { id: 'b', name: 'b', depth: 1 }, { id: 'c', name: 'c', depth: 2 }],
    edges: [edge('1', 'a', 'b'), edge('2', 'b', 'c')],
  };
  it('places a dependency chain left to right in edge order', () => {
    const [a, b, c] = layout(layoutInput(chain), 'LR');
    expect(a!.x).toBeLessThan(b!.x);
    expect(b!.x).toBeLessThan(c!.x);
    expect(b!.x - a!.x).toBeGreaterThanOrEqual(NODE_WIDTH);
  });
  it('places it top to bottom when asked', () => {
    const [a, b] = layout(layoutInput(chain), 'TB');
    expect(a!.y).toBeLessThan(b!.y);
  });
});
