import { useEffect, useRef, type ReactNode, type ButtonHTMLAttributes } from 'react';
import { ApiError } from '../api/client';

// The console's small component set. Status is always colour *and* text.

export type Tone = 'ok' | 'bad' | 'warn' | 'info' | 'idle';

const toneOf: Record<string, Tone> = {
  succeeded: 'ok', up: 'ok', healthy: 'ok', active: 'ok', delivered: 'ok', leader: 'ok', ready: 'ok',
  failed: 'bad', down: 'bad', lost: 'bad', dead: 'bad', revoked: 'bad', error: 'bad', unhealthy: 'bad',
  waiting: 'warn', queued: 'warn', pending: 'warn', draining: 'warn', retrying: 'warn', degraded: 'warn',
  running: 'info', dispatched: 'info', sending: 'info',
};

export function StatusBadge({ status, tone }: { status: string; tone?: Tone }) {
  const t = tone ?? toneOf[status] ?? 'idle';
  return (
    <span className={`badge badge-${t}`} data-status={status}>
      <span className="badge-dot" aria-hidden />
      {status}
    </span>
  );
}

export function Button({ variant = 'default', busy, children, ...rest }: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: 'default' | 'primary' | 'danger' | 'ghost'; busy?: boolean }) {
  return (
    <button {...rest} className={`btn btn-${variant} ${rest.className ?? ''}`} disabled={rest.disabled || busy} aria-busy={busy || undefined}>
      {busy && <Spinner />}
      {children}
    </button>
  );
}

export function Spinner({ label }: { label?: string }) {
  return (
    <span className="spinner-wrap" role="status">
      <span className="spinner" aria-hidden />
      {label && <span>{label}</span>}
    </span>
  );
}

export function EmptyState({ title, hint, action }: { title: string; hint?: ReactNode; action?: ReactNode }) {
  return (
    <div className="empty">
      <h3>{title}</h3>
      {hint && <p>{hint}</p>}
      {action}
    </div>
  );
}

export function PageHeader({ title, actions, children }: { title: ReactNode; actions?: ReactNode; children?: ReactNode }) {
  return (
    <header className="page-header">
      <div>
        <h1>{title}</h1>
        {children}
      </div>
      {actions && <div className="page-actions">{actions}</div>}
    </header>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const msg = error instanceof ApiError ? error.message : error instanceof Error ? error.message : String(error);
  const details = error instanceof ApiError ? error.problem.details : undefined;
  return (
    <div className="error-box" role="alert">
      <strong>{msg}</strong>
      {details && details.length > 0 && (
        <ul>
          {details.map((d, i) => (
            <li key={i}>
              {d.field && <code>{d.field}</code>} {d.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** A query's loading/error states in one place. */
export function Loading<T>({ query, children, what }: { query: { isPending: boolean; error: unknown; data: T | undefined }; children: (data: T) => ReactNode; what?: string }) {
  if (query.error) return <ErrorBox error={query.error} />;
  if (query.isPending || query.data === undefined) return <Spinner label={`Loading ${what ?? ''}…`} />;
  return <>{children(query.data)}</>;
}

export function Field({ label, error, hint, children }: { label: string; error?: string; hint?: ReactNode; children: ReactNode }) {
  return (
    <label className={`field ${error ? 'field-error' : ''}`}>
      <span className="field-label">{label}</span>
      {children}
      {hint && !error && <span className="field-hint">{hint}</span>}
      {error && <span className="field-message" role="alert">{error}</span>}
    </label>
  );
}

export function Dialog({ title, open, onClose, children, footer, wide }: { title: string; open: boolean; onClose: () => void; children: ReactNode; footer?: ReactNode; wide?: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  const close = useRef(onClose);
  close.current = onClose;
  useEffect(() => {
    if (!open) return;
    // Focus moves into the dialog and returns where it was on close; Esc
    // closes it from anywhere on the page.
    const before = document.activeElement as HTMLElement | null;
    const first = ref.current?.querySelector<HTMLElement>('[autofocus], input, select, textarea, button:not([aria-label="Close"])');
    (first ?? ref.current)?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        close.current();
        return;
      }
      // Tab stays inside the dialog: from the last control to the first
      // and back.
      if (e.key === 'Tab' && ref.current) {
        const items = [...ref.current.querySelectorAll<HTMLElement>('a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex="0"]')];
        const firstItem = items[0];
        const lastItem = items[items.length - 1];
        if (!firstItem || !lastItem) return;
        if (e.shiftKey && document.activeElement === firstItem) {
          e.preventDefault();
          lastItem.focus();
        } else if (!e.shiftKey && document.activeElement === lastItem) {
          e.preventDefault();
          firstItem.focus();
        }
      }
    };
    window.addEventListener('keydown', onKey);
    return () => {
      window.removeEventListener('keydown', onKey);
      before?.focus?.();
    };
  }, [open]);
  if (!open) return null;
  return (
    <div className="dialog-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div ref={ref} tabIndex={-1} className={`dialog ${wide ? 'dialog-wide' : ''}`} role="dialog" aria-modal="true" aria-label={title}>
        <header>
          <h2>{title}</h2>
          <button className="btn btn-ghost" aria-label="Close" onClick={onClose}>×</button>
        </header>
        <div className="dialog-body">{children}</div>
        {footer && <footer>{footer}</footer>}
      </div>
    </div>
  );
}

/** Relative time, e.g. "3 min ago", with the absolute time as a tooltip. */
export function Time({ at }: { at?: string | null }) {
  if (!at) return <span className="muted">—</span>;
  const d = new Date(at);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const rel = Math.abs(s) < 60 ? `${Math.abs(s)} s` : Math.abs(s) < 3600 ? `${Math.round(Math.abs(s) / 60)} min` : Math.abs(s) < 86400 ? `${Math.round(Math.abs(s) / 3600)} h` : `${Math.round(Math.abs(s) / 86400)} d`;
  return <time dateTime={at} title={d.toLocaleString()}>{s >= 0 ? `${rel} ago` : `in ${rel}`}</time>;
}
