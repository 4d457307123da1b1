import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render } from '@testing-library/react';
import { chordTimeoutMs, interpretKey, useShortcuts } from './shortcuts';

describe('interpretKey', () => {
  it('jumps to a section when its key follows g in time', () => {
    expect(interpretKey({ key: 'g' }, null, 0)).toEqual({ kind: 'pending' });
    expect(interpretKey({ key: 'j' }, 1000, 1000 + chordTimeoutMs)).toEqual({ kind: 'go', path: '/jobs' });
    expect(interpretKey({ key: 'a' }, 0, 10)).toEqual({ kind: 'go', path: '/agents' });
    expect(interpretKey({ key: 'd' }, 0, 10)).toEqual({ kind: 'go', path: '/' });
  });
  it('forgets a g pressed too long ago', () => {
    expect(interpretKey({ key: 'j' }, 0, chordTimeoutMs + 1)).toEqual({ kind: 'none' });
  });
  it('does nothing for an unknown section key after g', () => {
    expect(interpretKey({ key: 'z' }, 0, 1)).toEqual({ kind: 'none' });
  });
  it('maps / to search and ? to help', () => {
    expect(interpretKey({ key: '/' }, null, 0)).toEqual({ kind: 'search' });
    expect(interpretKey({ key: '?' }, null, 0)).toEqual({ kind: 'help' });
  });
  it('leaves keys typed into fields and chords with modifiers alone', () => {
    expect(interpretKey({ key: '/', inField: true }, null, 0)).toEqual({ kind: 'none' });
    expect(interpretKey({ key: 'j', inField: true }, 0, 1)).toEqual({ kind: 'none' });
    expect(interpretKey({ key: 'g', ctrlKey: true }, null, 0)).toEqual({ kind: 'none' });
  });
});

function Harness(props: { go: (p: string) => void; help: () => void; allowed?: (p: string) => boolean }) {
  useShortcuts({ go: props.go, help: props.help, allowed: props.allowed ?? (() => true) });
  return (
    <main>
      <input aria-label="other" />
      <input type="search" aria-label="search" />
    </main>
  );
}

describe('useShortcuts', () => {
  afterEach(cleanup);
  it('navigates on g then a section key, and not when the section is not permitted', () => {
    const go = vi.fn();
    render(<Harness go={go} help={() => {}} allowed={(p) => p !== '/cluster'} />);
    fireEvent.keyDown(window, { key: 'g' });
    fireEvent.keyDown(window, { key: 'r' });
    expect(go).toHaveBeenCalledWith('/runs');
    fireEvent.keyDown(window, { key: 'g' });
    fireEvent.keyDown(window, { key: 'k' });
    expect(go).toHaveBeenCalledTimes(1);
  });
  it('focuses the search box on / and opens help on ?', () => {
    const help = vi.fn();
    const { getByLabelText } = render(<Harness go={() => {}} help={help} />);
    fireEvent.keyDown(window, { key: '/' });
    expect(document.activeElement).toBe(getByLabelText('search'));
    fireEvent.keyDown(window, { key: '?' });
    expect(help).toHaveBeenCalledTimes(1);
  });
  it('ignores keys typed into a text field', () => {
    const go = vi.fn();
    const { getByLabelText } = render(<Harness go={go} help={() => {}} />);
    const other = getByLabelText('other');
    other.focus();
    fireEvent.keyDown(other, { key: 'g' });
    fireEvent.keyDown(other, { key: 'j' });
    expect(go).not.toHaveBeenCalled();
  });
});
