import { useRef, useState } from 'react';
import { useNavigate, useSearchParams } from 'react-router';
import { api, ApiError, session, type Tokens } from '../../api/client';
import { Button, ErrorBox, Field } from '../../components/ui';

/** Only same-site paths are followed after sign-in, never another origin. */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/login')) return '/';
  return next;
}

/** "too many tries" → "Too many tries." */
function sentence(s: string): string {
  const t = s.trim();
  if (!t) return t;
  return t[0]!.toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.');
}

/** A sign-in failure in words a person can act on. */
export function loginMessage(err: unknown): string | null {
  if (!(err instanceof ApiError)) return err instanceof Error ? `Could not reach the controller: ${err.message}` : null;
  switch (err.problem.code) {
    case 'invalid_credentials':
      return 'Wrong username or password.';
    case 'account_locked':
      return sentence(err.message);
    case 'rate_limited':
      return `Too many sign-in attempts from here. ${sentence(err.message)}`;
    case 'account_disabled':
      return 'This account is disabled. Ask an administrator to enable it.';
    default:
      return sentence(err.message);
  }
}

export default function Login() {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [needCode, setNeedCode] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const codeRef = useRef<HTMLInputElement>(null);
  const nav = useNavigate();
  const [params] = useSearchParams();
  const next = safeNext(params.get('next'));
  const expired = params.get('expired') === '1';

  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, unknown> = { username, password, cookie: true };
      if (needCode) body.totp = code.trim();
      const t = await api.post<Tokens>('/api/v1/auth/login', body);
      session.set(t);
      nav(t.must_change_password ? `/password?next=${encodeURIComponent(next)}` : next, { replace: true });
    } catch (err) {
      if (err instanceof ApiError && err.problem.code === 'totp_required') {
        setNeedCode(true);
        window.setTimeout(() => codeRef.current?.focus(), 0);
      } else {
        setError(err);
      }
    } finally {
      setBusy(false);
    }
  };
  const msg = loginMessage(error);
  return (
    <div className="center">
      <form
        className="card login"
        aria-label="Sign in"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <h1>Sign in to OpsConductor</h1>
        {expired && !error && <div className="warn-box" role="status">Your session ended. Sign in again to continue.</div>}
        {msg && <div className="error-box" role="alert">{msg}</div>}
        {!msg && <ErrorBox error={error} />}
        <Field label="Username"><input autoFocus autoComplete="username" name="username" value={username} readOnly={needCode} onChange={(e) => setUsername(e.target.value)} /></Field>
        <Field label="Password"><input type="password" autoComplete="current-password" name="password" value={password} readOnly={needCode} onChange={(e) => setPassword(e.target.value)} /></Field>
        {needCode && (
          <Field label="Two-factor code" hint="The 6-digit code from your authenticator app, or a recovery code.">
            <input
              ref={codeRef}
              name="totp"
              inputMode="numeric"
              autoComplete="one-time-code"
              value={code}
              onChange={(e) => setCode(e.target.value)}
            />
          </Field>
        )}
        <Button variant="primary" type="submit" busy={busy} disabled={!username || !password || (needCode && !code.trim())}>
          {needCode ? 'Verify and sign in' : 'Sign in'}
        </Button>
        {needCode && (
          <button type="button" className="btn btn-ghost" onClick={() => { setNeedCode(false); setCode(''); setError(null); }}>
            Use a different account
          </button>
        )}
      </form>
    </div>
  );
}
