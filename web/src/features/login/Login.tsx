import { useState } from 'react';
import { useNavigate, useSearchParams } from 'react-router';
import { api, session, type Tokens } from '../../api/client';
import { Button, ErrorBox, Field } from '../../components/ui';

export default function Login() {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const nav = useNavigate();
  const [params] = useSearchParams();
  return (
    <div className="center">
      <form
        className="card login"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const t = await api.post<Tokens>('/api/v1/auth/login', { username, password, cookie: true });
            session.set(t);
            nav(t.must_change_password ? '/password' : (params.get('next') ?? '/'), { replace: true });
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>Sign in to OpsConductor</h1>
        <ErrorBox error={error} />
        <Field label="Username"><input autoFocus autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} /></Field>
        <Field label="Password"><input type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} /></Field>
        <Button variant="primary" type="submit" busy={busy}>Sign in</Button>
      </form>
    </div>
  );
}
