import { useState, type ReactNode } from 'react';
import { Button, Dialog, ErrorBox } from './ui';

/**
 * A button that asks first: it opens a dialog that says what will happen
 * and runs action on confirmation, showing its error in the dialog.
 */
export function ConfirmButton({
  label, title, body, confirmLabel, action, variant = 'default', danger, disabled, onDone, ariaLabel,
}: {
  label: ReactNode;
  title: string;
  body: ReactNode;
  confirmLabel?: string;
  action: () => Promise<unknown>;
  variant?: 'default' | 'primary' | 'danger' | 'ghost';
  danger?: boolean;
  disabled?: boolean;
  onDone?: (result: unknown) => void;
  /** The trigger's accessible name when its label is not enough ("Revoke token t1" in a table row). */
  ariaLabel?: string;
}) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <>
      <Button variant={variant} disabled={disabled} aria-label={ariaLabel} onClick={() => { setError(null); setOpen(true); }}>{label}</Button>
      <Dialog
        title={title}
        open={open}
        onClose={() => !busy && setOpen(false)}
        footer={
          <>
            <Button onClick={() => setOpen(false)} disabled={busy}>Cancel</Button>
            <Button
              variant={danger ? 'danger' : 'primary'}
              busy={busy}
              onClick={async () => {
                setBusy(true);
                setError(null);
                try {
                  const r = await action();
                  setOpen(false);
                  onDone?.(r);
                } catch (e) {
                  setError(e);
                } finally {
                  setBusy(false);
                }
              }}
            >
              {confirmLabel ?? title}
            </Button>
          </>
        }
      >
        {body}
        <ErrorBox error={error} />
      </Dialog>
    </>
  );
}
