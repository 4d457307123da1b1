import { memo } from 'react';
import { Handle, Position, type Node, type NodeProps } from '@xyflow/react';
import type { Problem, StepDoc } from './model';

export interface StepNodeData extends Record<string, unknown> {
  step: StepDoc;
  index: number;
  problems: Problem[];
  summary?: string;
}

export type StepFlowNode = Node<StepNodeData, 'step'>;

/** One step on the canvas: its ID, what it uses, and its first problem. */
function StepNodeView({ data, selected }: NodeProps<StepFlowNode>) {
  const { step, problems } = data;
  const flags = [step.when && 'when', step.retries?.count && `retries ${step.retries.count}`, step.timeout && `timeout ${step.timeout}`,
    step.on_failure && 'on failure', step.continue_on_error && 'continue on error'].filter(Boolean) as string[];
  return (
    <div
      className={`step-node ${selected ? 'selected' : ''} ${problems.length ? 'has-error' : ''}`}
      data-testid={`designer-node-${step.id}`}
      title={data.summary}
    >
      <Handle type="target" position={Position.Top} aria-label={`connect into ${step.id}`} />
      <div className="step-node-head">
        <strong className="step-node-id">{step.id || '(no id)'}</strong>
        <span className="step-node-uses mono">{step.uses || '?'}</span>
      </div>
      {step.name && <div className="step-node-name">{step.name}</div>}
      {preview(step) && <div className="step-node-preview mono">{preview(step)}</div>}
      {flags.length > 0 && <div className="step-node-flags">{flags.join(' · ')}</div>}
      {problems.length > 0 && (
        <div className="step-node-error" data-testid="node-error" role="alert">
          {problems[0]!.message}
          {problems.length > 1 && <span className="muted"> (+{problems.length - 1} more)</span>}
        </div>
      )}
      <Handle type="source" position={Position.Bottom} aria-label={`connect from ${step.id}`} />
    </div>
  );
}

/** The step's first text parameter (a command, a URL…), to tell similar steps apart. */
function preview(step: StepDoc): string {
  const v = Object.values(step.with ?? {}).find((x) => typeof x === 'string' && x.trim() !== '');
  return typeof v === 'string' ? v.split('\n')[0]! : '';
}

export const StepNode = memo(StepNodeView);
