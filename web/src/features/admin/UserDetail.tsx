import { useEffect, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../../api/client';
import { useAuth } from '../../app/auth';
import { ConfirmButton } from '../../components/ConfirmButton';
import { SecretBlock } from '../../components/CopyButton';
import { Button, Dialog, ErrorBox, Field, Loading, PageHeader, StatusBadge, Time } from '../../components/ui';
import { RolePicker } from './RolePicker';
import { SessionTable } from './Sessions';
import { isLocked, userBadges, useRoles, type Binding, type SessionRow, type User } from './types';

export function UserDetail() {
  const { id = '' } = useParams();
  const q = useQuery({ queryKey: ['users', 'detail', id], queryFn: () => api.get<User>(`/api/v1/users/${encodeURIComponent(id)}`) });
  return <Loading query={q} what="user">{(u) => <UserView u={u} />}</Loading>;
}

function UserView({ u }: { u: User }) {
  const { can, me } = useAuth();
  const admin = can('users:admin');
  const qc = useQueryClient();
  const nav = useNavigate();
  const refresh = () => void qc.invalidateQueries({ queryKey: ['users'] });
  const [reset, setReset] = useState<{ password?: string } | null>(null);
  const self = me?.user.id === u.id;
  return (
    <div className="stack">
      <PageHeader
        title={<>{u.username} <span className="row" style={{ display: 'inline-flex' }}>{userBadges(u).map((b) => <StatusBadge key={b.status} status={b.status} tone={b.tone} />)}</span></>}
        actions={admin && (
          <>
            {isLocked(u) && <ConfirmButton label="Unlock" title="Unlock account" confirmLabel="Unlock" body={<p>Clears the failed sign-in count so <strong>{u.username}</strong> can sign in now.</p>} action={() => api.post(`/api/v1/users/${u.id}/unlock`)} onDone={refresh} />}
            <ConfirmButton label="Reset password" title="Reset password" confirmLabel="Reset password"
              body={<p>A new random password is generated for <strong>{u.username}</strong> and shown once. They must change it at next sign-in; their sessions end.</p>}
              action={() => api.post<{ password?: string }>(`/api/v1/users/${u.id}/password`)} onDone={(r) => { setReset((r as { password?: string }) ?? {}); refresh(); }} />
            {u.totp_enabled && <ConfirmButton label="Reset 2FA" title="Reset two-factor authentication" confirmLabel="Reset 2FA" danger
              body={<p><strong>{u.username}</strong> signs in with the password alone until they enrol a new authenticator.</p>} action={() => api.del(`/api/v1/users/${u.id}/totp`)} onDone={refresh} />}
            {u.disabled ? (
              <ConfirmButton label="Enable" title="Enable user" confirmLabel="Enable" body={<p><strong>{u.username}</strong> can sign in again.</p>} action={() => api.patch(`/api/v1/users/${u.id}`, { disabled: false })} onDone={refresh} />
            ) : (
              <ConfirmButton label="Disable" variant="danger" danger disabled={self} title="Disable user" confirmLabel="Disable" body={<p><strong>{u.username}</strong> cannot sign in, and every session they have ends now. API tokens they own stop working.</p>} action={() => api.patch(`/api/v1/users/${u.id}`, { disabled: true })} onDone={refresh} />
            )}
            <ConfirmButton label="Delete" variant="danger" danger disabled={self} title="Delete user" confirmLabel="Delete user" body={<p>Deletes <strong>{u.username}</strong>, their sessions and API tokens. The audit log keeps their actions.</p>} action={() => api.del(`/api/v1/users/${u.id}`)} onDone={() => { refresh(); nav('/admin/users'); }} />
          </>
        )}
      >
        <p className="muted"><Link to="/admin/users">Users</Link> / <span className="mono">{u.id}</span></p>
      </PageHeader>
      <div className="grid">
        <Profile u={u} editable={admin} />
        <section className="card">
          <h2>Account</h2>
          <dl className="kv">
            <dt>Created</dt><dd><Time at={u.created_at} /></dd>
            <dt>Last sign-in</dt><dd><Time at={u.last_login_at} /></dd>
            <dt>Password changed</dt><dd><Time at={u.password_changed_at} /></dd>
            <dt>Two-factor</dt><dd>{u.totp_enabled ? <StatusBadge status="enabled" tone="ok" /> : <StatusBadge status="not enrolled" tone="idle" />}</dd>
            {isLocked(u) && <><dt>Locked until</dt><dd>{new Date(u.locked_until!).toLocaleString()}</dd></>}
          </dl>
        </section>
      </div>
      {admin && <UserSessions u={u} />}
      <Dialog title="Password reset" open={!!reset} onClose={() => setReset(null)} footer={<Button variant="primary" onClick={() => setReset(null)}>Done</Button>}>
        {reset?.password ? <><p>The new password for <strong>{u.username}</strong>, shown only now:</p><SecretBlock value={reset.password} label="New password" /></> : <p>The password was reset.</p>}
      </Dialog>
    </div>
  );
}

function Profile({ u, editable }: { u: User; editable: boolean }) {
  const roles = useRoles();
  const qc = useQueryClient();
  const [display, setDisplay] = useState(u.display_name);
  const [email, setEmail] = useState(u.email);
  const [bindings, setBindings] = useState<Binding[]>(u.roles);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => { setDisplay(u.display_name); setEmail(u.email); setBindings(u.roles); }, [u]);
  const dirty = display !== u.display_name || email !== u.email || JSON.stringify(bindings) !== JSON.stringify(u.roles);
  const fe = error instanceof ApiError ? error.fieldErrors() : {};
  return (
    <section className="card">
      <h2>Profile and roles</h2>
      <form className="stack" onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true); setError(null); setSaved(false);
        try {
          await api.patch(`/api/v1/users/${u.id}`, { display_name: display, email, roles: bindings });
          setSaved(true);
          void qc.invalidateQueries({ queryKey: ['users'] });
        } catch (err) { setError(err); } finally { setBusy(false); }
      }}>
        <Field label="Display name" error={fe.display_name}><input value={display} disabled={!editable} onChange={(e) => setDisplay(e.target.value)} /></Field>
        <Field label="Email" error={fe.email}><input type="email" value={email} disabled={!editable} onChange={(e) => setEmail(e.target.value)} /></Field>
        {roles.data && (editable ? <RolePicker roles={roles.data.items} value={bindings} onChange={setBindings} /> : <p>Roles: {u.roles.map((r) => r.role).join(', ')}</p>)}
        <ErrorBox error={error} />
        {editable && <div className="row"><Button type="submit" variant="primary" busy={busy} disabled={!dirty}>Save</Button>{saved && !dirty && <span className="muted" role="status">Saved.</span>}</div>}
      </form>
    </section>
  );
}

function UserSessions({ u }: { u: User }) {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ['sessions', 'user', u.id], queryFn: () => api.get<{ items: SessionRow[] }>(`/api/v1/users/${u.id}/sessions`) });
  return (
    <section className="stack" aria-labelledby="user-sessions">
      <div className="row" style={{ justifyContent: 'space-between' }}>
        <h2 id="user-sessions">Sessions</h2>
        {q.data && q.data.items.length > 0 && (
          <ConfirmButton label="Revoke all" variant="danger" danger title="Revoke all sessions" confirmLabel="Revoke all"
            body={<p>Every session of <strong>{u.username}</strong> ends now; they must sign in again.</p>}
            action={() => api.del(`/api/v1/users/${u.id}/sessions`)} onDone={() => void qc.invalidateQueries({ queryKey: ['sessions'] })} />
        )}
      </div>
      <Loading query={q} what="sessions">{(d) => <SessionTable rows={d.items} showUser={false} />}</Loading>
    </section>
  );
}
