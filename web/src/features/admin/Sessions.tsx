import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../api/client';
import { useAuth } from '../../app/auth';
import { ConfirmButton } from '../../components/ConfirmButton';
import { EmptyState, Field, Loading, StatusBadge, Time } from '../../components/ui';
import type { SessionRow, User } from './types';

/** Browser and OS from a user agent string, briefly. */
export function shortAgent(ua: string): string {
  if (!ua) return '—';
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom(e|ium)\//.test(ua) ? 'Chromium' : /Safari\//.test(ua) ? 'Safari' : ua.split(/[ /]/)[0] ?? ua;
  const os = /Windows/.test(ua) ? 'Windows' : /Mac OS X/.test(ua) ? 'macOS' : /Android/.test(ua) ? 'Android' : /Linux/.test(ua) ? 'Linux' : '';
  return os ? `${browser} on ${os}` : browser;
}

export function SessionTable({ rows, showUser }: { rows: SessionRow[]; showUser: boolean }) {
  const qc = useQueryClient();
  if (!rows.length) return <p className="muted">No active sessions.</p>;
  return (
    <table>
      <thead><tr>{showUser && <th>User</th>}<th>Session</th><th>Client</th><th>From</th><th>Started</th><th>Last used</th><th>Expires</th><th /></tr></thead>
      <tbody>
        {rows.map((s) => (
          <tr key={s.id}>
            {showUser && <td>{s.username}</td>}
            <td className="mono">{s.id} {s.current && <StatusBadge status="this session" tone="info" />}{!s.active && <StatusBadge status={s.revoked_at ? 'revoked' : 'expired'} tone="idle" />}</td>
            <td title={s.user_agent}>{shortAgent(s.user_agent)}</td>
            <td className="mono">{s.source_ip || '—'}</td>
            <td><Time at={s.created_at} /></td>
            <td><Time at={s.last_used_at} /></td>
            <td><Time at={s.expires_at} /></td>
            <td>
              {s.active && (
                <ConfirmButton label="Revoke" variant="danger" danger title="Revoke session" confirmLabel="Revoke"
                  body={s.current ? <p>This is the session you are using: you will be signed out.</p> : <p>Session <code>{s.id}</code> ends now; its refresh token stops working and its access token within minutes.</p>}
                  action={() => api.del(`/api/v1/sessions/${s.id}`)} onDone={() => void qc.invalidateQueries({ queryKey: ['sessions'] })} />
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Sessions() {
  const { can } = useAuth();
  const qc = useQueryClient();
  const mine = useQuery({ queryKey: ['sessions', 'mine'], queryFn: () => api.get<{ items: SessionRow[] }>('/api/v1/sessions') });
  const others = (mine.data?.items ?? []).filter((s) => !s.current && s.active).length;
  return (
    <div className="stack">
      <section className="stack" aria-labelledby="my-sessions">
        <div className="row" style={{ justifyContent: 'space-between' }}>
          <h2 id="my-sessions">My sessions</h2>
          {others > 0 && (
            <ConfirmButton label="Sign out everywhere else" title="Revoke my other sessions" confirmLabel="Revoke others"
              body={<p>Ends your {others} other session{others === 1 ? '' : 's'}; this one stays signed in.</p>}
              action={() => api.post('/api/v1/sessions/revoke-others')} onDone={() => void qc.invalidateQueries({ queryKey: ['sessions'] })} />
          )}
        </div>
        <Loading query={mine} what="sessions">{(d) => <SessionTable rows={d.items} showUser={false} />}</Loading>
      </section>
      {can('users:admin') && <UserSessionsPicker />}
    </div>
  );
}

function UserSessionsPicker() {
  const users = useQuery({ queryKey: ['users', 'list'], queryFn: () => api.get<{ items: User[] }>('/api/v1/users?limit=1000').then((p) => p.items) });
  const [user, setUser] = useState('');
  const q = useQuery({
    queryKey: ['sessions', 'user', user],
    queryFn: () => api.get<{ items: SessionRow[] }>(`/api/v1/users/${encodeURIComponent(user)}/sessions`),
    enabled: !!user,
  });
  return (
    <section className="stack" aria-labelledby="user-sessions">
      <h2 id="user-sessions">A user's sessions</h2>
      <Field label="User">
        <select value={user} onChange={(e) => setUser(e.target.value)} style={{ maxWidth: 280 }}>
          <option value="">Choose a user…</option>
          {(users.data ?? []).map((u) => <option key={u.id} value={u.id}>{u.username}</option>)}
        </select>
      </Field>
      {!user ? <EmptyState title="Pick a user" hint="Their active sessions are listed here, each with a revoke button." /> : (
        <Loading query={q} what="sessions">{(d) => <SessionTable rows={d.items} showUser={false} />}</Loading>
      )}
    </section>
  );
}
