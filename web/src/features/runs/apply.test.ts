import { describe, expect, it } from 'vitest';
import { applyAttempt, applyRunEvent } from './useRunLog';
import type { Run } from './types';

const run = (): Run => ({
  id: 'run_1', job: 'j', version: 1, params: {}, trigger: { kind: 'api', by: 'admin' }, status: 'running', batch_size: 1,
  created_at: '', summary: { targets: 1, pending: 0, running: 1, waiting: 0, succeeded: 0, failed: 0, canceled: 0, skipped: 0 },
  targets: [{ name: 'web1', agent_id: 'a', batch: 0, status: 'waiting', steps: [{ id: 'build', status: 'pending', reason: 'ready' }, { id: 'test', status: 'pending' }] }],
});

describe('applyAttempt', () => {
  it('shows a started attempt as running on its step and target at once', () => {
    const r = applyAttempt(run(), { target: 'web1', step: 'build', attempt_id: 'att', try: 1, status: 'pending' });
    expect(r.targets[0]!.status).toBe('running');
    expect(r.targets[0]!.steps[0]).toMatchObject({ status: 'running', attempt_id: 'att', try: 1, reason: undefined });
    expect(r.targets[0]!.steps[1]!.status).toBe('pending');
  });
  it('maps an attempt error to failed and keeps its exit code', () => {
    const r = applyAttempt(run(), { target: 'web1', step: 'build', attempt_id: 'att', try: 2, status: 'error', exit_code: 3 });
    expect(r.targets[0]!.steps[0]).toMatchObject({ status: 'failed', exit_code: 3, try: 2 });
  });
  it('returns the same run for a step it does not have', () => {
    const before = run();
    expect(applyAttempt(before, { target: 'web9', step: 'build', attempt_id: 'x', try: 1, status: 'running' })).toBe(before);
  });
});

describe('applyRunEvent', () => {
  it('takes a newer state with its reason', () => {
    expect(applyRunEvent(run(), { status: 'waiting', reason: 'waiting for approval' })).toMatchObject({ status: 'waiting', reason: 'waiting for approval' });
  });
  it('ignores a replayed queued event once the run has moved on', () => {
    const before = run();
    expect(applyRunEvent(before, { status: 'queued' })).toBe(before);
  });
  it('never leaves a final state', () => {
    const done = { ...run(), status: 'succeeded' };
    expect(applyRunEvent(done, { status: 'running' })).toBe(done);
  });
});
