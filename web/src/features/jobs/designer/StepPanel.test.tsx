import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import { useState } from 'react';
import { StepPanel } from './StepPanel';
import type { StepDoc } from './model';
import type { CatalogStep } from '../api';

const catalog: CatalogStep = {
  kind: 'builtin', name: 'demo', version: '1.0.0', summary: 'A demo step.',
  params: {
    type: 'object',
    required: ['command'],
    properties: {
      command: { type: 'string', description: 'What to run.' },
      count: { type: 'integer' },
      env: { type: 'object', additionalProperties: { type: 'string' } },
    },
  },
};

/** The panel wired to real state, as the designer wires it. */
function Harness({ initial, onStep }: { initial: StepDoc; onStep: (s: StepDoc) => void }) {
  const [step, setStep] = useState(initial);
  return (
    <StepPanel
      step={step}
      catalog={catalog}
      problems={[{ field: 'steps[0].with.count', message: 'must be at least 1' }, { field: 'steps[0].credentials[0]', message: '"db" is not one of the job\'s credentials' }, { field: 'steps[0].idempotent', message: 'must be a boolean' }]}
      onChange={(fn) => setStep((s) => { const n = fn(s); onStep(n); return n; })}
      onRename={(id) => setStep((s) => { const n = { ...s, id }; onStep(n); return n; })}
      onDelete={() => {}}
    />
  );
}

afterEach(cleanup);

describe('StepPanel', () => {
  it('renders the schema form, marks required fields and shows server problems under their fields', () => {
    render(<Harness initial={{ id: 'a', uses: 'demo' }} onStep={() => {}} />);
    expect(screen.getByText('command *')).toBeTruthy();
    expect(screen.getByText('What to run.')).toBeTruthy();
    expect(screen.getByText('must be at least 1')).toBeTruthy();
    expect(screen.getByText(/is not one of the job's credentials/).closest('.field')).toBeTruthy();
    // A problem with no field of its own is listed at the top.
    expect(screen.getByText('must be a boolean').closest('.panel-problems')).toBeTruthy();
  });

  it('writes typed values into with, keeps bad text without writing it, and removes cleared keys', () => {
    const seen = vi.fn();
    render(<Harness initial={{ id: 'a', uses: 'demo' }} onStep={seen} />);
    fireEvent.change(screen.getByLabelText('command'), { target: { value: 'echo hi' } });
    expect(seen).toHaveBeenLastCalledWith({ id: 'a', uses: 'demo', with: { command: 'echo hi' } });
    fireEvent.change(screen.getByLabelText('count'), { target: { value: '3' } });
    expect(seen).toHaveBeenLastCalledWith({ id: 'a', uses: 'demo', with: { command: 'echo hi', count: 3 } });
    const calls = seen.mock.calls.length;
    fireEvent.change(screen.getByLabelText('count'), { target: { value: '3.5' } });
    expect(seen.mock.calls.length).toBe(calls);
    expect(screen.getByText('must be a whole number')).toBeTruthy();
    expect((screen.getByLabelText('count') as HTMLInputElement).value).toBe('3.5');
    fireEvent.change(screen.getByLabelText('env'), { target: { value: 'A=1\nB=two' } });
    expect(seen).toHaveBeenLastCalledWith({ id: 'a', uses: 'demo', with: { command: 'echo hi', count: 3, env: { A: '1', B: 'two' } } });
    fireEvent.change(screen.getByLabelText('command'), { target: { value: '' } });
    fireEvent.change(screen.getByLabelText('count'), { target: { value: '' } });
    fireEvent.change(screen.getByLabelText('env'), { target: { value: '' } });
    expect(seen).toHaveBeenLastCalledWith({ id: 'a', uses: 'demo' });
  });

  it('edits the flow settings', () => {
    const seen = vi.fn();
    render(<Harness initial={{ id: 'a', uses: 'demo' }} onStep={seen} />);
    fireEvent.change(screen.getByRole('textbox', { name: 'Needs' }), { target: { value: 'x, y' } });
    fireEvent.change(screen.getByLabelText('Retries'), { target: { value: '2' } });
    fireEvent.change(screen.getByLabelText('Timeout'), { target: { value: '5m' } });
    fireEvent.click(screen.getByLabelText('Continue on error'));
    expect(seen).toHaveBeenLastCalledWith({ id: 'a', uses: 'demo', needs: ['x', 'y'], retries: { count: 2 }, timeout: '5m', continue_on_error: true });
    fireEvent.change(screen.getByLabelText('Step ID'), { target: { value: 'Bad Id' } });
    expect(screen.getByText(/lower-case letters, digits/)).toBeTruthy();
  });
});
