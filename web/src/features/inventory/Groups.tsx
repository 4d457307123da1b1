import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError, qs } from '../../api/client';
import { useAuth } from '../../app/auth';
import { Button, Dialog, EmptyState, ErrorBox, Field, Loading, PageHeader, Time } from '../../components/ui';
import { ConfirmButton } from '../../components/ConfirmButton';
import { InventoryTabs } from './InventoryTabs';
import { TargetState } from './TargetsPage';
import { splitList } from './targetForm';
import type { Group, TargetPage } from './types';

export function GroupsPage() {
  const { can } = useAuth();
  const [editing, setEditing] = useState<Group | 'new' | null>(null);
  const groups = useQuery({ queryKey: ['targets', 'groups'], queryFn: () => api.get<{ items: Group[] }>('/api/v1/groups') });
  return (
    <>
      <PageHeader title="Inventory" actions={can('assets:write') && <Button variant="primary" onClick={() => setEditing('new')}>New group</Button>} />
      <InventoryTabs />
      <Loading query={groups} what="groups">
        {(d) =>
          d.items.length === 0 ? (
            <EmptyState
              title="No groups yet"
              hint="A static group lists its targets (give a target the group's name); a dynamic group holds every target its selector matches, such as env=prod."
              action={can('assets:write') && <Button variant="primary" onClick={() => setEditing('new')}>New group</Button>}
            />
          ) : (
            <table aria-label="Groups">
              <thead><tr><th>Name</th><th>Kind</th><th>Selector</th><th>Description</th><th>Changed</th></tr></thead>
              <tbody>
                {d.items.map((g) => (
                  <tr key={g.name}>
                    <td><Link to={`/inventory/groups/${encodeURIComponent(g.name)}`}>{g.name}</Link></td>
                    <td>{g.kind}</td>
                    <td className="mono">{g.selector || '—'}</td>
                    <td>{g.description}</td>
                    <td><Time at={g.updated_at} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
      {editing && <GroupDialog group={editing === 'new' ? null : editing} onClose={() => setEditing(null)} />}
    </>
  );
}

export function GroupDetail() {
  const { name = '' } = useParams();
  const { can } = useAuth();
  const qc = useQueryClient();
  const nav = useNavigate();
  const [editing, setEditing] = useState(false);
  const [cursor, setCursor] = useState('');
  const group = useQuery({ queryKey: ['targets', 'group', name], queryFn: () => api.get<Group>(`/api/v1/groups/${encodeURIComponent(name)}`) });
  const members = useQuery({
    queryKey: ['targets', 'group-members', name, cursor],
    queryFn: () => api.get<TargetPage>(`/api/v1/groups/${encodeURIComponent(name)}/members${qs({ limit: 100, cursor })}`),
    placeholderData: keepPreviousData,
  });
  return (
    <Loading query={group} what="group">
      {(g) => (
        <>
          <PageHeader
            title={`Group ${g.name}`}
            actions={
              can('assets:write') && (
                <>
                  <Button onClick={() => setEditing(true)}>Edit</Button>
                  <ConfirmButton
                    label="Delete"
                    title={`Delete group ${g.name}?`}
                    action={async () => {
                      await api.del(`/api/v1/groups/${encodeURIComponent(g.name)}`);
                      await qc.invalidateQueries({ queryKey: ['targets'] });
                      void nav('/inventory/groups');
                    }} confirmLabel="Delete" danger body={<><p>The group is removed; its targets stay.</p></>} />
                </>
              )
            }
          >
            <Link to="/inventory/groups">← Groups</Link>
          </PageHeader>
          <section className="card inv-section">
            <dl className="inv-kv">
              <dt>Kind</dt><dd>{g.kind}</dd>
              {g.selector && <><dt>Selector</dt><dd className="mono">{g.selector}</dd></>}
              <dt>Description</dt><dd>{g.description || '—'}</dd>
              <dt>Created</dt><dd><Time at={g.created_at} />{g.created_by ? ` by ${g.created_by}` : ''}</dd>
            </dl>
          </section>
          <h2>Members</h2>
          <Loading query={members} what="members">
            {(m) =>
              m.items.length === 0 ? (
                <EmptyState title="No targets in this group" hint={g.kind === 'dynamic' ? 'No target matches the selector yet.' : 'Edit the group to list targets, or add the group to a target.'} />
              ) : (
                <>
                  <table aria-label="Members">
                    <thead><tr><th>Name</th><th>Address</th><th>Connection</th><th>State</th></tr></thead>
                    <tbody>
                      {m.items.map((t) => (
                        <tr key={t.id}>
                          <td><Link to={`/inventory/targets/${encodeURIComponent(t.id)}`}>{t.name}</Link></td>
                          <td className="mono">{t.addresses.join(', ')}</td>
                          <td>{t.connection.type}</td>
                          <td><TargetState t={t} /></td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                  <div className="inv-pager">
                    <Button disabled={!cursor} onClick={() => setCursor('')}>First page</Button>
                    <Button disabled={!m.next} onClick={() => setCursor(m.next)}>Next →</Button>
                  </div>
                </>
              )
            }
          </Loading>
          {editing && <GroupDialog group={g} onClose={() => setEditing(false)} />}
        </>
      )}
    </Loading>
  );
}

function GroupDialog({ group, onClose }: { group: Group | null; onClose: () => void }) {
  const qc = useQueryClient();
  const nav = useNavigate();
  const [name, setName] = useState(group?.name ?? '');
  const [kind, setKind] = useState(group?.kind ?? 'static');
  const [selector, setSelector] = useState(group?.selector ?? '');
  const [description, setDescription] = useState(group?.description ?? '');
  const [members, setMembers] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const fe = error instanceof ApiError ? error.fieldErrors() : {};
  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, unknown> = { name, kind, description };
      if (kind === 'dynamic') body.selector = selector;
      if (kind === 'static' && members.trim()) body.members = splitList(members);
      const g = group
        ? await api.put<Group>(`/api/v1/groups/${encodeURIComponent(group.name)}`, body)
        : await api.post<Group>('/api/v1/groups', body);
      await qc.invalidateQueries({ queryKey: ['targets'] });
      onClose();
      if (!group) void nav(`/inventory/groups/${encodeURIComponent(g.name)}`);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog
      title={group ? `Edit group ${group.name}` : 'New group'}
      open
      onClose={onClose}
      footer={<><Button onClick={onClose}>Cancel</Button><Button variant="primary" busy={busy} onClick={() => void save()}>Save</Button></>}
    >
      <Field label="Name" error={fe.name} hint="lower-case letters, digits and _ . -">
        <input value={name} onChange={(e) => setName(e.target.value)} disabled={!!group} />
      </Field>
      <Field label="Kind" error={fe.kind}>
        <select value={kind} onChange={(e) => setKind(e.target.value)} disabled={!!group}>
          <option value="static">static (targets listed)</option>
          <option value="dynamic">dynamic (a selector)</option>
        </select>
      </Field>
      {kind === 'dynamic' ? (
        <Field label="Selector" error={fe.selector} hint='e.g. env=prod,role in (web,api) or facts.os=linux'>
          <input className="mono" value={selector} onChange={(e) => setSelector(e.target.value)} />
        </Field>
      ) : (
        <Field label="Members" error={fe.members} hint={group ? 'Leave empty to keep the current members; a list replaces them.' : 'Target names or IDs, comma separated (optional)'}>
          <input value={members} onChange={(e) => setMembers(e.target.value)} />
        </Field>
      )}
      <Field label="Description" error={fe.description}>
        <input value={description} onChange={(e) => setDescription(e.target.value)} />
      </Field>
      <ErrorBox error={error} />
    </Dialog>
  );
}
