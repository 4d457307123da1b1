import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../../api/client';
import { Button, Dialog, ErrorBox, Field } from '../../components/ui';
import { emptyProfileForm, profileToForm, toProfileInput, validateProfile, type ProfileFormValues } from './profileForm';
import type { Profile } from './types';

/** Create or edit a discovery profile. */
export function ProfileDialog({ profile, agents, onClose }: { profile: Profile | null; agents: { id: string; name: string }[]; onClose: () => void }) {
  const qc = useQueryClient();
  const [v, setV] = useState<ProfileFormValues>(profile ? profileToForm(profile) : { ...emptyProfileForm, agent: agents[0]?.id ?? '' });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  // The ranges the chosen agent may scan: a profile outside them is refused.
  const ranges = useQuery({
    queryKey: ['discovery', 'ranges', v.agent],
    queryFn: () => api.get<{ agent: string; cidrs: string[] }>(`/api/v1/discovery/agents/${encodeURIComponent(v.agent)}/ranges`),
    enabled: !!v.agent,
  });
  const set = (k: keyof ProfileFormValues) => (e: { target: { value: string } }) => setV({ ...v, [k]: e.target.value });
  const save = async () => {
    const errs = validateProfile(v);
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    setError(null);
    try {
      const body = toProfileInput(v, profile?.revision);
      if (profile) await api.put(`/api/v1/discovery/profiles/${encodeURIComponent(profile.name)}`, body);
      else await api.post('/api/v1/discovery/profiles', body);
      await qc.invalidateQueries({ queryKey: ['discovery'] });
      onClose();
    } catch (e) {
      setError(e);
      if (e instanceof ApiError) setErrors(e.fieldErrors());
    } finally {
      setBusy(false);
    }
  };
  const err = (k: string) => errors[k] ?? Object.entries(errors).find(([f]) => f.startsWith(`${k}[`) || f.startsWith(`${k}.`))?.[1];
  return (
    <Dialog
      title={profile ? `Edit profile ${profile.name}` : 'New discovery profile'}
      open
      onClose={onClose}
      footer={<><Button onClick={onClose}>Cancel</Button><Button variant="primary" busy={busy} onClick={() => void save()}>{profile ? 'Save' : 'Create profile'}</Button></>}
    >
      <form className="inv-form" onSubmit={(e) => { e.preventDefault(); void save(); }} aria-label="Discovery profile">
        <Field label="Name" error={err('name')}>
          <input value={v.name} onChange={set('name')} disabled={!!profile} />
        </Field>
        <Field label="Scanning agent" error={err('agent')}>
          {agents.length ? (
            <select value={v.agent} onChange={set('agent')}>
              {!agents.some((a) => a.id === v.agent) && <option value={v.agent}>{v.agent || 'choose…'}</option>}
              {agents.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
            </select>
          ) : (
            <input value={v.agent} onChange={set('agent')} placeholder="agent name or ID" />
          )}
        </Field>
        <div className="span2">
          <Field
            label="Ranges (CIDR)"
            error={err('cidrs')}
            hint={ranges.data ? (ranges.data.cidrs.length ? `This agent may scan: ${ranges.data.cidrs.join(', ')}` : 'No ranges are allowed for this agent yet (loopback only on a dev server): an admin sets them.') : 'One per line, e.g. 10.0.0.0/24'}
          >
            <textarea rows={3} value={v.cidrs} onChange={set('cidrs')} placeholder="10.0.0.0/24" />
          </Field>
        </div>
        <Field label="Ports" error={err('ports')} hint="e.g. 22, 80, 443, 8000-8100; empty for the default set">
          <input value={v.ports} onChange={set('ports')} />
        </Field>
        <Field label="Resolve host names">
          <select value={v.resolve ? 'yes' : 'no'} onChange={(e) => setV({ ...v, resolve: e.target.value === 'yes' })}>
            <option value="yes">yes (reverse DNS)</option>
            <option value="no">no</option>
          </select>
        </Field>
        <Field label="Schedule (cron)" error={err('schedule')} hint="Empty: run by hand. e.g. 0 3 * * * or @daily">
          <input value={v.schedule} onChange={set('schedule')} className="mono" />
        </Field>
        <Field label="Time zone" error={err('time_zone')} hint="IANA name; UTC when empty">
          <input value={v.timeZone} onChange={set('timeZone')} placeholder="Europe/Paris" />
        </Field>
        <Field label="Concurrency" error={err('concurrency')} hint="Connections at once (default)">
          <input value={v.concurrency} onChange={set('concurrency')} inputMode="numeric" />
        </Field>
        <Field label="Rate" error={err('rate')} hint="Connection attempts per second (default: the ceiling)">
          <input value={v.rate} onChange={set('rate')} inputMode="numeric" />
        </Field>
        <Field label="Connect timeout" error={err('timeout')} hint="e.g. 500ms">
          <input value={v.timeout} onChange={set('timeout')} />
        </Field>
        <Field label="Banner timeout" error={err('banner_timeout')} hint="e.g. 2s">
          <input value={v.bannerTimeout} onChange={set('bannerTimeout')} />
        </Field>
        <fieldset className="span2" style={{ border: '1px solid var(--border)', borderRadius: 6 }}>
          <legend>
            <label><input type="checkbox" checked={v.autoImport} onChange={(e) => setV({ ...v, autoImport: e.target.checked })} /> Import found hosts automatically</label>
          </legend>
          {v.autoImport && (
            <div className="inv-form">
              <Field label="When these ports are open" error={err('auto_import.ports')}>
                <input value={v.autoImportPorts} onChange={set('autoImportPorts')} />
              </Field>
              <Field label="With tags" error={err('auto_import.tags')} hint="key=value, comma separated">
                <input value={v.autoImportTags} onChange={set('autoImportTags')} />
              </Field>
            </div>
          )}
        </fieldset>
        <button type="submit" hidden />
      </form>
      <ErrorBox error={error} />
    </Dialog>
  );
}
