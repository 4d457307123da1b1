import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../../api/client';
import { useAuth } from '../../app/auth';
import { ConfirmButton } from '../../components/ConfirmButton';
import { Button, Dialog, ErrorBox, Field, Loading, StatusBadge } from '../../components/ui';
import { useRoles, type Role } from './types';

/** Permissions grouped by their resource, "jobs:read" → jobs. */
function groupPermissions(perms: string[]): [string, string[]][] {
  const m = new Map<string, string[]>();
  for (const p of perms) {
    const g = p.split(':')[0] ?? p;
    m.set(g, [...(m.get(g) ?? []), p]);
  }
  return [...m.entries()];
}

export function Roles() {
  const { can } = useAuth();
  const admin = can('users:admin');
  const roles = useRoles();
  const [editing, setEditing] = useState<Role | 'new' | null>(null);
  return (
    <div className="stack">
      {admin && <div className="row-end"><Button variant="primary" onClick={() => setEditing('new')}>New role</Button></div>}
      <Loading query={roles} what="roles">
        {(d) => (
          <table>
            <thead><tr><th>Role</th><th>Permissions</th><th /></tr></thead>
            <tbody>
              {d.items.map((r) => (
                <tr key={r.name}>
                  <td><strong>{r.name}</strong> {r.builtin && <StatusBadge status="built-in" tone="idle" />}<div className="muted">{r.description}</div></td>
                  <td>{r.permissions.map((p) => <code key={p} className="tag">{p}</code>)}</td>
                  <td>
                    {admin && !r.builtin && (
                      <div className="row-end">
                        <Button onClick={() => setEditing(r)}>Edit</Button>
                        <DeleteRole r={r} />
                      </div>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Loading>
      {editing && <RoleEditor role={editing === 'new' ? null : editing} onClose={() => setEditing(null)} />}
    </div>
  );
}

function DeleteRole({ r }: { r: Role }) {
  const qc = useQueryClient();
  return (
    <ConfirmButton label="Delete" variant="danger" danger title="Delete role" confirmLabel="Delete role"
      body={<p>Deletes the role <strong>{r.name}</strong>. The server refuses while users or tokens still hold it.</p>}
      action={() => api.del(`/api/v1/roles/${encodeURIComponent(r.name)}`)} onDone={() => void qc.invalidateQueries({ queryKey: ['roles'] })} />
  );
}

function RoleEditor({ role, onClose }: { role: Role | null; onClose: () => void }) {
  const all = useQuery({ queryKey: ['roles', 'permissions'], queryFn: () => api.get<{ items: string[] }>('/api/v1/permissions') });
  const qc = useQueryClient();
  const [name, setName] = useState(role?.name ?? '');
  const [description, setDescription] = useState(role?.description ?? '');
  const [perms, setPerms] = useState<Set<string>>(new Set(role?.permissions ?? []));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const fe = error instanceof ApiError ? error.fieldErrors() : {};
  const toggle = (p: string, on: boolean) => {
    const n = new Set(perms);
    if (on) n.add(p);
    else n.delete(p);
    setPerms(n);
  };
  return (
    <Dialog title={role ? `Edit role ${role.name}` : 'New role'} open onClose={onClose} wide footer={
      <>
        <Button onClick={onClose}>Cancel</Button>
        <Button variant="primary" busy={busy} disabled={!name} onClick={async () => {
          setBusy(true); setError(null);
          const body = { name, description, permissions: [...perms] };
          try {
            if (role) await api.put(`/api/v1/roles/${encodeURIComponent(role.name)}`, body);
            else await api.post('/api/v1/roles', body);
            void qc.invalidateQueries({ queryKey: ['roles'] });
            onClose();
          } catch (e) { setError(e); } finally { setBusy(false); }
        }}>{role ? 'Save role' : 'Create role'}</Button>
      </>
    }>
      <Field label="Name" error={fe.name}><input value={name} disabled={!!role} onChange={(e) => setName(e.target.value)} /></Field>
      <Field label="Description" error={fe.description}><input value={description} onChange={(e) => setDescription(e.target.value)} /></Field>
      <Loading query={all} what="permissions">
        {(d) => (
          <fieldset className="fieldset">
            <legend className="field-label">Permissions</legend>
            {groupPermissions(d.items).map(([g, ps]) => (
              <div key={g} className="perm-group">
                <span className="muted">{g}</span>
                <div className="checks">
                  {ps.map((p) => <label key={p}><input type="checkbox" checked={perms.has(p)} onChange={(e) => toggle(p, e.target.checked)} /> {p}</label>)}
                </div>
              </div>
            ))}
          </fieldset>
        )}
      </Loading>
      <ErrorBox error={error} />
    </Dialog>
  );
}
