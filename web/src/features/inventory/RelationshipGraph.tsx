import { useMemo, useState } from 'react';
import { useNavigate } from 'react-router';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { Background, Controls, Handle, MarkerType, Position, ReactFlow, type Edge as FlowEdge, type Node as FlowNode, type NodeProps } from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { api, qs } from '../../api/client';
import { useTheme } from '../../app/theme';
import { ErrorBox, Field, Spinner } from '../../components/ui';
import { layout, layoutInput } from './graphLayout';
import type { Direction, Graph, Target } from './types';

type TargetNodeData = { name: string; depth: number; root: boolean; horizontal: boolean };

function TargetNode({ data }: NodeProps<FlowNode<TargetNodeData>>) {
  return (
    <div className={`inv-graph-node ${data.root ? 'root' : ''}`} data-testid={`graph-node-${data.name}`}>
      <Handle type="target" position={data.horizontal ? Position.Left : Position.Top} />
      <strong>{data.name}</strong>
      <small>{data.root ? 'this target' : `${data.depth} hop${data.depth === 1 ? '' : 's'} away`}</small>
      <Handle type="source" position={data.horizontal ? Position.Right : Position.Bottom} />
    </div>
  );
}

const nodeTypes = { target: TargetNode };


const directions: Record<Direction, string> = {
  both: 'Neighbours (any type, either way)',
  dependencies: 'What it depends on',
  dependents: 'What depends on it (impact)',
};

/** The dagre-laid-out graph around one target, with direction and depth. */
export default function RelationshipGraph({ target }: { target: Target }) {
  const [direction, setDirection] = useState<Direction>('both');
  const [depth, setDepth] = useState(2);
  const [rankdir, setRankdir] = useState<'LR' | 'TB'>('LR');
  const nav = useNavigate();
  // The canvas follows the console's light or dark theme.
  const { theme } = useTheme();
  const graph = useQuery({
    queryKey: ['relationships', 'graph', target.id, direction, depth],
    queryFn: () => api.get<Graph>(`/api/v1/targets/${encodeURIComponent(target.id)}/graph${qs({ direction, depth })}`),
    placeholderData: keepPreviousData,
  });
  const flow = useMemo(() => {
    if (!graph.data) return null;
    const input = layoutInput(graph.data);
    const placed = layout(input, rankdir);
    const nodes: FlowNode<TargetNodeData>[] = placed.map((n) => ({
      id: n.id,
      type: 'target',
      position: { x: n.x, y: n.y },
      data: { name: n.name, depth: n.depth, root: n.root, horizontal: rankdir === 'LR' },
      draggable: false,
      connectable: false,
    }));
    const edges: FlowEdge[] = input.edges.map((e) => ({
      id: e.id,
      source: e.source,
      target: e.target,
      label: e.label,
      markerEnd: { type: MarkerType.ArrowClosed },
    }));
    return { nodes, edges };
  }, [graph.data, rankdir]);

  return (
    <>
      <div className="inv-toolbar">
        <Field label="Direction">
          <select value={direction} onChange={(e) => setDirection(e.target.value as Direction)} aria-label="Graph direction">
            {Object.entries(directions).map(([k, v]) => <option key={k} value={k}>{v}</option>)}
          </select>
        </Field>
        <Field label={`Depth: ${depth}`}>
          <input type="range" min={1} max={10} value={depth} onChange={(e) => setDepth(Number(e.target.value))} aria-label="Graph depth" />
        </Field>
        <Field label="Layout">
          <select value={rankdir} onChange={(e) => setRankdir(e.target.value as 'LR' | 'TB')} aria-label="Graph layout">
            <option value="LR">Left to right</option>
            <option value="TB">Top to bottom</option>
          </select>
        </Field>
        {graph.isFetching && <Spinner label="Walking the graph…" />}
        {graph.data && (
          <span className="muted">
            {graph.data.nodes.length} target{graph.data.nodes.length === 1 ? '' : 's'}, {graph.data.edges.length} relationship{graph.data.edges.length === 1 ? '' : 's'}
            {graph.data.truncated && ' — truncated: the walk hit its bound, lower the depth to see all of it'}
          </span>
        )}
      </div>
      <ErrorBox error={graph.error} />
      {flow && (flow.nodes.length <= 1 ? (
        <p className="muted">Nothing is related to {target.name} in this direction. Add a relationship above to see it drawn here.</p>
      ) : (
        <div className="inv-graph" aria-label="Relationship graph canvas">
          <ReactFlow
            nodes={flow.nodes}
            edges={flow.edges}
            nodeTypes={nodeTypes}
            colorMode={theme}
            fitView
            fitViewOptions={{ maxZoom: 1 }}
            nodesDraggable={false}
            nodesConnectable={false}
            onNodeClick={(_, n) => n.id !== target.id && void nav(`/inventory/targets/${encodeURIComponent(n.id)}`)}
          >
            <Background />
            <Controls showInteractive={false} />
          </ReactFlow>
        </div>
      ))}
    </>
  );
}
