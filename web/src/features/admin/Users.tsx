import { useMemo, useState } from 'react';
import { Link } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, qs } from '../../api/client';
import { useAuth } from '../../app/auth';
import { SecretBlock } from '../../components/CopyButton';
import { Button, Dialog, EmptyState, ErrorBox, Field, Loading, StatusBadge, Time } from '../../components/ui';
import { RolePicker } from './RolePicker';
import { bindingLabel, userBadges, useRoles, type Binding, type User } from './types';

async function allUsers(): Promise<User[]> {
  const out: User[] = [];
  let after = '';
  for (;;) {
    const p = await api.get<{ items: User[]; next?: string }>(`/api/v1/users${qs({ limit: 1000, after })}`);
    out.push(...p.items);
    if (!p.next) return out;
    after = p.next;
  }
}

export function Users() {
  const { can } = useAuth();
  const admin = can('users:admin');
  const users = useQuery({ queryKey: ['users', 'list'], queryFn: allUsers });
  const [q, setQ] = useState('');
  const [creating, setCreating] = useState(false);
  const rows = useMemo(() => {
    const w = q.toLowerCase();
    return (users.data ?? []).filter((u) => !w || [u.username, u.display_name, u.email, ...u.roles.map((r) => r.role)].join(' ').toLowerCase().includes(w));
  }, [users.data, q]);
  return (
    <div className="stack">
      <div className="filters" style={{ justifyContent: 'space-between' }}>
        <input type="search" data-page-search aria-label="Search users" placeholder="Search users… (/)" value={q} onChange={(e) => setQ(e.target.value)} />
        {admin && <Button variant="primary" onClick={() => setCreating(true)}>New user</Button>}
      </div>
      <Loading query={users} what="users">
        {() => rows.length === 0 ? <EmptyState title="No user matches" hint="Clear the search, or create a user." /> : (
          <table>
            <thead><tr><th>User</th><th>Email</th><th>Roles</th><th>State</th><th>Last sign-in</th></tr></thead>
            <tbody>
              {rows.map((u) => (
                <tr key={u.id}>
                  <td><Link to={`/admin/users/${u.id}`}>{u.username}</Link>{u.display_name && <div className="muted">{u.display_name}</div>}</td>
                  <td>{u.email || <span className="muted">—</span>}</td>
                  <td>{u.roles.map((b) => <code key={bindingLabel(b)} className="tag">{bindingLabel(b)}</code>)}</td>
                  <td><div className="row">{userBadges(u).map((b) => <StatusBadge key={b.status} status={b.status} tone={b.tone} />)}</div></td>
                  <td><Time at={u.last_login_at} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Loading>
      <CreateUser open={creating} onClose={() => setCreating(false)} />
    </div>
  );
}

function CreateUser({ open, onClose }: { open: boolean; onClose: () => void }) {
  const roles = useRoles();
  const qc = useQueryClient();
  const [username, setUsername] = useState('');
  const [display, setDisplay] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [bindings, setBindings] = useState<Binding[]>([{ role: 'viewer' }]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<{ username: string; password?: string } | null>(null);
  const fe = error && typeof error === 'object' && 'fieldErrors' in error ? (error as { fieldErrors(): Record<string, string> }).fieldErrors() : {};
  const close = () => {
    setCreated(null); setError(null); setUsername(''); setDisplay(''); setEmail(''); setPassword(''); setBindings([{ role: 'viewer' }]);
    onClose();
  };
  return (
    <Dialog title="New user" open={open} onClose={close} footer={created ? <Button variant="primary" onClick={close}>Done</Button> : (
      <>
        <Button onClick={close}>Cancel</Button>
        <Button variant="primary" busy={busy} disabled={!username} onClick={async () => {
          setBusy(true); setError(null);
          try {
            const u = await api.post<User & { initial_password?: string }>('/api/v1/users', {
              username, display_name: display, email, roles: bindings, password: password || undefined,
            });
            setCreated({ username: u.username, password: u.initial_password });
            void qc.invalidateQueries({ queryKey: ['users'] });
          } catch (e) { setError(e); } finally { setBusy(false); }
        }}>Create user</Button>
      </>
    )}>
      {created ? (
        <>
          <div className="ok-box">User <strong>{created.username}</strong> created. They must choose a new password at first sign-in.</div>
          {created.password && (<><p>The generated password is shown only now:</p><SecretBlock value={created.password} label="Initial password" /></>)}
        </>
      ) : (
        <>
          <ErrorBox error={error} />
          <Field label="Username" error={fe.username}><input autoFocus value={username} onChange={(e) => setUsername(e.target.value)} /></Field>
          <Field label="Display name" error={fe.display_name}><input value={display} onChange={(e) => setDisplay(e.target.value)} /></Field>
          <Field label="Email" error={fe.email}><input type="email" value={email} onChange={(e) => setEmail(e.target.value)} /></Field>
          <Field label="Initial password" error={fe.password} hint="Leave empty to generate one; it is shown once.">
            <input type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} />
          </Field>
          {roles.data && <RolePicker roles={roles.data.items} value={bindings} onChange={setBindings} />}
          {fe.roles && <span className="field-message">{fe.roles}</span>}
        </>
      )}
    </Dialog>
  );
}
