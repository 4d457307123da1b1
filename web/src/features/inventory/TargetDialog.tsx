import { useState } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useNavigate } from 'react-router';
import { api, ApiError } from '../../api/client';
import { Button, Dialog, ErrorBox, Field } from '../../components/ui';
import { emptyTargetForm, targetToForm, toTargetInput, toTargetPatch, validateTarget, type TargetFormValues } from './targetForm';
import type { Target } from './types';

/** Creates an SSH target, or edits any target (an agent's: only its annotations). */
export function TargetDialog({ target, onClose }: { target: Target | null; onClose: () => void }) {
  const [v, setV] = useState<TargetFormValues>(target ? targetToForm(target) : emptyTargetForm);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const qc = useQueryClient();
  const nav = useNavigate();
  const agent = target?.connection.type === 'agent';
  const save = useMutation({
    mutationFn: () =>
      target
        ? api.patch<Target>(`/api/v1/targets/${encodeURIComponent(target.id)}`, toTargetPatch(v, target))
        : api.post<Target>('/api/v1/targets', toTargetInput(v)),
    onSuccess: async (t) => {
      await qc.invalidateQueries({ queryKey: ['targets'] });
      onClose();
      if (!target) void nav(`/inventory/targets/${encodeURIComponent(t.id)}`);
    },
    onError: (e) => {
      if (e instanceof ApiError) setErrors(e.fieldErrors());
    },
  });
  const submit = () => {
    const errs = validateTarget(v, agent);
    setErrors(errs);
    if (Object.keys(errs).length === 0) save.mutate();
  };
  const set = (k: keyof TargetFormValues) => (e: { target: { value: string } }) => setV({ ...v, [k]: e.target.value });
  const err = (...keys: string[]) => keys.map((k) => errors[k] ?? Object.entries(errors).find(([f]) => f.startsWith(`${k}.`) || f.startsWith(`${k}[`))?.[1]).find(Boolean);
  return (
    <Dialog
      title={target ? `Edit ${target.name}` : 'New SSH target'}
      open
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="primary" busy={save.isPending} onClick={submit}>{target ? 'Save' : 'Create target'}</Button>
        </>
      }
    >
      <form className="inv-form" onSubmit={(e) => { e.preventDefault(); submit(); }}>
        {agent && <p className="span2 muted">This target is an enrolled agent: its name, addresses and connection come from the agent. You can change its tags, groups, owner and notes.</p>}
        <Field label="Name" error={err('name')}>
          <input value={v.name} onChange={set('name')} disabled={agent} autoFocus />
        </Field>
        <Field label="Addresses" error={err('addresses')} hint="IP addresses or host names, comma separated">
          <input value={v.addresses} onChange={set('addresses')} disabled={agent} />
        </Field>
        {!agent && (
          <>
            <Field label="Relay agent (via)" error={err('connection.via', 'connection')} hint="The agent that opens the SSH connection">
              <input value={v.via} onChange={set('via')} />
            </Field>
            <Field label="SSH port" error={err('connection.port')} hint="Empty means 22">
              <input value={v.port} onChange={set('port')} inputMode="numeric" />
            </Field>
            <Field label="SSH user" error={err('connection.username')}>
              <input value={v.username} onChange={set('username')} />
            </Field>
            <Field label="Host key policy" error={err('connection.host_key_policy')}>
              <select value={v.hostKeyPolicy} onChange={set('hostKeyPolicy')}>
                <option value="">Trust on first use (default)</option>
                <option value="tofu">Trust on first use</option>
                <option value="pinned">Pinned key</option>
              </select>
            </Field>
            {v.hostKeyPolicy === 'pinned' && (
              <Field label="Host key" error={err('connection.host_key')}>
                <input className="mono span2" value={v.hostKey} onChange={set('hostKey')} placeholder="ssh-ed25519 AAAA…" />
              </Field>
            )}
          </>
        )}
        <Field label="Tags" error={err('tags')} hint="key=value, comma separated">
          <input value={v.tags} onChange={set('tags')} placeholder="env=prod, role=web" />
        </Field>
        <Field label="Groups" error={err('groups')} hint="Static group names, comma separated">
          <input value={v.groups} onChange={set('groups')} />
        </Field>
        <Field label="Owner" error={err('owner')}>
          <input value={v.owner} onChange={set('owner')} />
        </Field>
        <div className="span2">
          <Field label="Notes" error={err('notes')}>
            <textarea rows={3} value={v.notes} onChange={set('notes')} />
          </Field>
        </div>
        <button type="submit" hidden />
      </form>
      <ErrorBox error={save.error} />
    </Dialog>
  );
}
