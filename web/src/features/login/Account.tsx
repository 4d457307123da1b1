import { useState } from 'react';
import { Link } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { api } from '../../api/client';
import { useAuth } from '../../app/auth';
import { SecretBlock } from '../../components/CopyButton';
import { Button, ErrorBox, Field, PageHeader, StatusBadge } from '../../components/ui';
import { Sessions } from '../admin/Sessions';
import { Tokens } from '../admin/Tokens';

/** The signed-in user's own account: password and two-factor sign-in. */
export default function Account() {
  const { me } = useAuth();
  if (!me) return null;
  return (
    <div className="stack">
      <PageHeader title="My account">
        <p className="muted">Signed in as <strong>{me.user.username}</strong>{me.user.display_name && ` (${me.user.display_name})`}.</p>
      </PageHeader>
      <div className="grid">
        <section className="card stack">
          <h2>Password</h2>
          <p className="muted">Changing it keeps this session signed in.</p>
          <div><Link className="btn" to="/password?next=%2Faccount">Change password</Link></div>
        </section>
        <TwoFactor enabled={me.user.totp_enabled} />
      </div>
      <Sessions />
      <section className="stack" aria-labelledby="my-tokens">
        <h2 id="my-tokens">My API tokens</h2>
        <Tokens />
      </section>
    </div>
  );
}

type Step = { kind: 'idle' } | { kind: 'enrolling'; secret: string; uri: string } | { kind: 'done'; codes: string[] } | { kind: 'disabling' };

function TwoFactor({ enabled }: { enabled: boolean }) {
  const qc = useQueryClient();
  const [step, setStep] = useState<Step>({ kind: 'idle' });
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const reloadMe = () => qc.invalidateQueries({ queryKey: ['me'] });
  return (
    <section className="card stack" aria-labelledby="totp">
      <h2 id="totp">Two-factor sign-in {enabled ? <StatusBadge status="enabled" tone="ok" /> : <StatusBadge status="off" tone="idle" />}</h2>
      {step.kind === 'done' ? (
        <>
          <div className="ok-box">Two-factor sign-in is on. From now on, sign-in asks for a code from your app.</div>
          <p>Recovery codes, each usable once if you lose the device. They are shown only now: store them somewhere safe.</p>
          <SecretBlock value={step.codes.join('\n')} label="Recovery codes" />
          <div><Button onClick={() => setStep({ kind: 'idle' })}>Done</Button></div>
        </>
      ) : step.kind === 'enrolling' ? (
        <form className="stack" onSubmit={(e) => { e.preventDefault(); void run(async () => {
          const r = await api.post<{ recovery_codes: string[] }>('/api/v1/me/totp/confirm', { code: code.trim() });
          setStep({ kind: 'done', codes: r.recovery_codes });
          setCode('');
          await reloadMe();
        }); }}>
          <p>Add this account to your authenticator app: open the link on the device, or type the secret by hand (time-based, 6 digits, 30 s).</p>
          <SecretBlock value={step.secret} label="TOTP secret" />
          <SecretBlock value={step.uri} label="otpauth link" />
          <Field label="Code from the app"><input autoFocus inputMode="numeric" autoComplete="one-time-code" value={code} onChange={(e) => setCode(e.target.value)} /></Field>
          <ErrorBox error={error} />
          <div className="row"><Button type="submit" variant="primary" busy={busy} disabled={!code.trim()}>Turn on</Button><Button type="button" onClick={() => setStep({ kind: 'idle' })}>Cancel</Button></div>
        </form>
      ) : (
        <form className="stack" onSubmit={(e) => { e.preventDefault(); void run(async () => {
          if (enabled) {
            await api.post('/api/v1/me/totp/disable', { password });
            await reloadMe();
          } else {
            const r = await api.post<{ secret: string; uri: string }>('/api/v1/me/totp', { password });
            setStep({ kind: 'enrolling', secret: r.secret, uri: r.uri });
          }
          setPassword('');
        }); }}>
          <p className="muted">{enabled ? 'Sign-in asks for a code from your authenticator app. To turn it off, confirm your password.' : 'Ask for a code from an authenticator app at every sign-in. Start by confirming your password.'}</p>
          <Field label="Your password"><input type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} /></Field>
          <ErrorBox error={error} />
          <div><Button type="submit" variant={enabled ? 'danger' : 'primary'} busy={busy} disabled={!password}>{enabled ? 'Turn off two-factor sign-in' : 'Set up two-factor sign-in'}</Button></div>
        </form>
      )}
    </section>
  );
}
