import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { useState } from 'react';
import { ApiError } from '../api/client';
import { ConfirmButton } from './ConfirmButton';
import { Dialog } from './ui';

afterEach(cleanup);

function DialogHarness() {
  const [open, setOpen] = useState(true);
  return (
    <>
      <button onClick={() => setOpen(true)}>open</button>
      <Dialog title="Edit" open={open} onClose={() => setOpen(false)}>
        <input aria-label="first" />
        <button>last</button>
      </Dialog>
    </>
  );
}

describe('Dialog', () => {
  it('focuses its first control, keeps Tab inside and closes on Escape', () => {
    render(<DialogHarness />);
    const first = screen.getByLabelText('first');
    expect(document.activeElement).toBe(first);
    screen.getByText('last').focus();
    fireEvent.keyDown(window, { key: 'Tab' });
    // The trap moves focus from the last control back to the first one
    // (the close button comes first in the dialog's order).
    expect(document.activeElement).toBe(screen.getByLabelText('Close'));
    fireEvent.keyDown(window, { key: 'Escape' });
    expect(screen.queryByRole('dialog')).toBeNull();
  });
});

describe('ConfirmButton', () => {
  it('runs the action only after confirmation and reports success', async () => {
    const action = vi.fn(async () => 'ok');
    const onDone = vi.fn();
    render(<ConfirmButton label="Revoke" title="Revoke token" body={<p>Sure?</p>} action={action} onDone={onDone} />);
    fireEvent.click(screen.getByRole('button', { name: 'Revoke' }));
    expect(action).not.toHaveBeenCalled();
    fireEvent.click(screen.getByRole('button', { name: 'Revoke token' }));
    await waitFor(() => expect(onDone).toHaveBeenCalledWith('ok'));
    expect(screen.queryByRole('dialog')).toBeNull();
  });

  it('keeps the dialog open with the server error when the action fails', async () => {
    const action = vi.fn(async () => {
      throw new ApiError(409, { kind: 'conflict', code: 'in_use', message: 'role is still held by 2 users' });
    });
    render(<ConfirmButton label="Delete" title="Delete role" body="x" action={action} />);
    fireEvent.click(screen.getByRole('button', { name: 'Delete' }));
    fireEvent.click(screen.getByRole('button', { name: 'Delete role' }));
    expect((await screen.findByRole('alert')).textContent).toContain('role is still held by 2 users');
    expect(screen.getByRole('dialog')).toBeTruthy();
  });
});
