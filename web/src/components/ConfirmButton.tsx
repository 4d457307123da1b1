import { useState, type ReactNode } from 'react';
import { Button, Dialog, ErrorBox } from './ui';

/**
 * A button that asks before doing something that cannot be undone. The
 * dialog stays open while the action runs (the confirm button shows it is
 * busy) and shows the action's error if it fails; it closes on success.
 */
export function ConfirmButton({ label, title, confirmLabel, children, onConfirm, variant = 'danger', disabled, ariaLabel }: {
  label: ReactNode;
  title: string;
  confirmLabel?: string;
  children: ReactNode;
  onConfirm: () => Promise<unknown>;
  variant?: 'default' | 'danger' | 'ghost';
  disabled?: boolean;
  ariaLabel?: string;
}) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const close = () => {
    if (!busy) {
      setOpen(false);
      setError(null);
    }
  };
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      setOpen(false);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <Button variant={variant} onClick={() => setOpen(true)} disabled={disabled} aria-label={ariaLabel}>
        {label}
      </Button>
      <Dialog
        title={title}
        open={open}
        onClose={close}
        footer={
          <>
            <Button onClick={close} disabled={busy}>Cancel</Button>
            <Button variant="danger" busy={busy} onClick={() => void run()}>{confirmLabel ?? 'Delete'}</Button>
          </>
        }
      >
        {children}
        <ErrorBox error={error} />
      </Dialog>
    </>
  );
}
