import { memo, useMemo } from 'react';
import { Background, Handle, Position, ReactFlow, type Edge, type Node, type NodeProps } from '@xyflow/react';
import dagre from '@dagrejs/dagre';
import '@xyflow/react/dist/style.css';
import { StatusBadge } from '../../components/ui';
import { stepTone } from './status';
import type { Run } from './types';

// The run's steps as a read-only graph: edges are the job's `needs`, each
// node shows the step's state across the run's targets, live.

export interface DagStep {
  id: string;
  uses?: string;
  needs?: string[];
}

type StepNodeData = { id: string; uses?: string; status: string; counts: string };

const nodeW = 190;
const nodeH = 62;

/** How a step stands over all targets: the most pressing state wins. */
export function aggregate(statuses: string[]): string {
  if (statuses.length === 0) return 'pending';
  const order = ['failed', 'timed_out', 'lost', 'running', 'waiting', 'pending', 'canceled', 'skipped', 'succeeded'];
  for (const s of order) if (statuses.includes(s)) return s;
  return statuses[0]!;
}

const StepNode = memo(function StepNode({ data }: NodeProps<Node<StepNodeData>>) {
  return (
    <div className={`dag-node dag-${stepTone(data.status)}`} data-testid={`run-node-${data.id}`} title={`${data.id}: ${data.status}`}>
      <Handle type="target" position={Position.Top} isConnectable={false} />
      <div className="dag-node-head">
        <strong>{data.id}</strong>
        <StatusBadge status={data.status} tone={stepTone(data.status)} />
      </div>
      <div className="dag-node-sub muted">
        <span>{data.uses}</span>
        <span>{data.counts}</span>
      </div>
      <Handle type="source" position={Position.Bottom} isConnectable={false} />
    </div>
  );
});

const nodeTypes = { step: StepNode };

export function layoutSteps(steps: DagStep[]): Map<string, { x: number; y: number }> {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'TB', nodesep: 28, ranksep: 36, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  const ids = new Set(steps.map((s) => s.id));
  for (const s of steps) g.setNode(s.id, { width: nodeW, height: nodeH });
  for (const s of steps) for (const n of s.needs ?? []) if (ids.has(n)) g.setEdge(n, s.id);
  dagre.layout(g);
  const out = new Map<string, { x: number; y: number }>();
  for (const s of steps) {
    const n = g.node(s.id);
    out.set(s.id, { x: (n?.x ?? 0) - nodeW / 2, y: (n?.y ?? 0) - nodeH / 2 });
  }
  return out;
}

export function RunDag({ run, steps, onPick }: { run: Run; steps: DagStep[]; onPick: (step: string) => void }) {
  const positions = useMemo(() => layoutSteps(steps), [steps]);
  const nodes = useMemo<Node<StepNodeData>[]>(() => steps.map((s) => {
    const statuses = run.targets.map((t) => t.steps.find((x) => x.id === s.id)?.status ?? 'pending');
    const done = statuses.filter((x) => x === 'succeeded').length;
    return {
      id: s.id,
      type: 'step',
      position: positions.get(s.id) ?? { x: 0, y: 0 },
      data: { id: s.id, uses: s.uses, status: aggregate(statuses), counts: run.targets.length > 1 ? `${done}/${run.targets.length} done` : '' },
      draggable: false,
      connectable: false,
    };
  }), [steps, positions, run]);
  const edges = useMemo<Edge[]>(() => {
    const ids = new Set(steps.map((s) => s.id));
    const running = (id: string) => run.targets.some((t) => t.steps.find((x) => x.id === id)?.status === 'running');
    return steps.flatMap((s) => (s.needs ?? []).filter((n) => ids.has(n)).map((n) => ({
      id: `${n}->${s.id}`, source: n, target: s.id, animated: running(s.id),
    })));
  }, [steps, run]);
  const height = Math.min(420, Math.max(160, ...[...positions.values()].map((p) => p.y + nodeH + 48)));
  return (
    <div className="run-dag" style={{ height }} aria-label="Steps graph">
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        nodesDraggable={false}
        nodesConnectable={false}
        elementsSelectable={false}
        zoomOnScroll={false}
        preventScrolling={false}
        fitView
        fitViewOptions={{ padding: 0.15, maxZoom: 1 }}
        minZoom={0.3}
        onNodeClick={(_, n) => onPick(n.id)}
      >
        <Background gap={16} size={1} />
      </ReactFlow>
    </div>
  );
}
