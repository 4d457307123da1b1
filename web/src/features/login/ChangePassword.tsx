import { useState } from 'react';
import { Navigate, useNavigate, useSearchParams } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { api, ApiError, session } from '../../api/client';
import { useAuth } from '../../app/auth';
import { Button, ErrorBox, Field, Spinner } from '../../components/ui';
import { safeNext } from './Login';

/**
 * The forced first-login password change (and a voluntary one). The
 * server's password policy decides; its per-field errors are shown under
 * the field they name.
 */
export default function ChangePassword() {
  const { me, restoring, logout } = useAuth();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [confirm, setConfirm] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [params] = useSearchParams();
  const nav = useNavigate();
  const qc = useQueryClient();
  const after = safeNext(params.get('next'));
  if (restoring) return <div className="center"><Spinner label="Restoring session…" /></div>;
  if (!me) return <Navigate to={`/login?next=${encodeURIComponent('/password')}`} replace />;

  const fields = error instanceof ApiError ? error.fieldErrors() : {};
  const mismatch = confirm !== '' && confirm !== next ? 'does not match the new password' : undefined;
  const forced = me.user.must_change_password;
  return (
    <div className="center">
      <form
        className="card login"
        aria-label="Change password"
        onSubmit={async (e) => {
          e.preventDefault();
          if (next !== confirm) return;
          setBusy(true);
          setError(null);
          try {
            await api.post('/api/v1/me/password', { current_password: current, new_password: next });
            // The access token still says "must change password": take a
            // fresh one from the session cookie, then reload who I am.
            await session.refresh();
            await qc.invalidateQueries({ queryKey: ['me'] });
            nav(after, { replace: true });
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>{forced ? 'Choose a new password' : 'Change your password'}</h1>
        {forced && <p className="muted">Signed in as <strong>{me.user.username}</strong>. Before you continue, replace the password you were given.</p>}
        {error instanceof ApiError && Object.keys(fields).length > 0 ? null : <ErrorBox error={error} />}
        <Field label="Current password" error={fields.current_password}>
          <input type="password" autoFocus autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} />
        </Field>
        <Field label="New password" error={fields.new_password} hint="At least 12 characters.">
          <input type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} />
        </Field>
        <Field label="Confirm new password" error={mismatch}>
          <input type="password" autoComplete="new-password" value={confirm} onChange={(e) => setConfirm(e.target.value)} />
        </Field>
        <Button variant="primary" type="submit" busy={busy} disabled={!current || !next || next !== confirm}>
          Change password and continue
        </Button>
        {forced ? (
          <button type="button" className="btn btn-ghost" onClick={() => void logout().then(() => nav('/login', { replace: true }))}>
            Sign out instead
          </button>
        ) : (
          <button type="button" className="btn btn-ghost" onClick={() => nav(after, { replace: true })}>Cancel</button>
        )}
      </form>
    </div>
  );
}
