import { Button, Field } from '../../../components/ui';
import { setJobKey, setKey, type JobDoc, type ParamDoc, type Problem } from './model';
import { DraftInput } from './StepPanel';

const asString = (v: unknown) => (v === undefined || v === null ? '' : String(v));
const textOk = (t: string) => ({ ok: true as const, value: t === '' ? undefined : t });
const listText = (v: unknown) => (Array.isArray(v) ? v.join(', ') : '');
const listParse = (t: string) => ({ ok: true as const, value: t.split(',').map((x) => x.trim()).filter(Boolean) });
const tagsText = (v: unknown) => (v && typeof v === 'object' ? Object.entries(v as Record<string, string>).map(([k, x]) => `${k}=${x}`).join(', ') : '');
const tagsParse = (t: string) => {
  const out: Record<string, string> = {};
  for (const part of t.split(',').map((x) => x.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) return { ok: false as const, error: `write key=value, got "${part}"` };
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return { ok: true as const, value: out };
};
/** A default as the author types it: JSON when it parses (numbers, booleans, lists), text otherwise. */
const defaultParse = (t: string) => {
  if (t === '') return { ok: true as const, value: undefined };
  try {
    return { ok: true as const, value: JSON.parse(t) as unknown };
  } catch {
    return { ok: true as const, value: t };
  }
};
const defaultText = (v: unknown) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

const numParse = (t: string) => {
  if (t.trim() === '') return { ok: true as const, value: undefined };
  const n = Number(t);
  return Number.isFinite(n) ? { ok: true as const, value: n } : { ok: false as const, error: 'must be a number' };
};
const enumText = (v: unknown) => (Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(', ') : '');
/** Allowed values: numbers and booleans as such, the rest as text. */
const enumParse = (t: string) => ({
  ok: true as const,
  value: t.split(',').map((x) => x.trim()).filter(Boolean).map((x) => {
    try {
      const v: unknown = JSON.parse(x);
      return typeof v === 'number' || typeof v === 'boolean' ? v : x;
    } catch {
      return x;
    }
  }),
});

const targetOrder = ['names', 'tags', 'groups', 'selector', 'all'];
const paramOrder = ['name', 'type', 'description', 'default', 'required', 'pattern', 'min', 'max', 'enum', 'secret'];

/** Job-level settings: shown when no step is selected. */
export function JobPanel({ doc, nameLocked, problems, onChange }: {
  doc: JobDoc;
  nameLocked: boolean;
  problems: Problem[];
  onChange: (fn: (d: JobDoc) => JobDoc, key: string) => void;
}) {
  const errOf = (path: string) => problems.filter((p) => p.field === path || p.field.startsWith(`${path}.`) || p.field.startsWith(`${path}[`)).map((p) => `${p.field === path ? '' : `${p.field}: `}${p.message}`).join('; ') || undefined;
  const set = (key: string, v: unknown) => onChange((d) => setJobKey(d, key, v), key);
  const targets = doc.targets ?? {};
  const setTarget = (key: string, v: unknown) => onChange((d) => setJobKey(d, 'targets', setKey(d.targets ?? {}, key, v, targetOrder)), `targets.${key}`);
  const params = doc.params ?? [];
  const setParam = (i: number, key: string, v: unknown) =>
    onChange((d) => setJobKey(d, 'params', (d.params ?? []).map((p, j) => (j === i ? setKey(p, key, v, paramOrder) : p))), `params[${i}].${key}`);
  return (
    <div className="panel-form" aria-label="Job settings">
      <div className="panel-title"><h2>Job</h2></div>
      <Field label="Name *" error={errOf('name')} hint={nameLocked ? 'A saved job keeps its name.' : 'Lower-case letters, digits, . _ -'}>
        <input aria-label="Job name" value={doc.name ?? ''} readOnly={nameLocked} onChange={(e) => set('name', e.target.value)} />
      </Field>
      <Field label="Description" error={errOf('description')}>
        <textarea aria-label="Description" rows={2} value={doc.description ?? ''} onChange={(e) => set('description', e.target.value)} />
      </Field>
      <fieldset>
        <legend>Targets</legend>
        {errOf('targets') && <p className="field-message" role="alert">{errOf('targets')}</p>}
        <Field label="Names" hint="Target names, comma separated (the dev server's agent is “local”).">
          <DraftInput aria-label="Target names" value={targets.names} format={listText} parse={listParse} onValue={(v) => setTarget('names', v)} />
        </Field>
        <Field label="Groups">
          <DraftInput aria-label="Target groups" value={targets.groups} format={listText} parse={listParse} onValue={(v) => setTarget('groups', v)} />
        </Field>
        <Field label="Tags" hint="key=value, comma separated">
          <DraftInput aria-label="Target tags" value={targets.tags} format={tagsText} parse={tagsParse} onValue={(v) => setTarget('tags', v)} />
        </Field>
        <Field label="Selector">
          <DraftInput aria-label="Target selector" value={targets.selector} format={asString} parse={textOk} onValue={(v) => setTarget('selector', v)} />
        </Field>
        <label className="check"><input type="checkbox" checked={!!targets.all} onChange={(e) => setTarget('all', e.target.checked)} /> Every target</label>
      </fieldset>
      <div className="field-row">
        <Field label="Concurrency" error={errOf('concurrency')}>
          <select aria-label="Concurrency" value={doc.concurrency ?? ''} onChange={(e) => set('concurrency', e.target.value)}>
            <option value="">allow (default)</option>
            <option value="queue">queue</option>
            <option value="forbid">forbid</option>
          </select>
        </Field>
        <Field label="Timeout" error={errOf('timeout')}>
          <DraftInput aria-label="Job timeout" placeholder="1h" value={doc.timeout} format={asString} parse={textOk} onValue={(v) => set('timeout', v)} />
        </Field>
      </div>
      <Field label="Credentials" error={errOf('credentials')} hint="Credential names the job may use, comma separated; each step lists the ones it receives.">
        <DraftInput aria-label="Job credentials" value={doc.credentials} format={listText} parse={listParse} onValue={(v) => set('credentials', v)} />
      </Field>
      <fieldset>
        <legend>Parameters</legend>
        {params.length === 0 && <p className="muted">No parameters. Add one to ask for a value when the job runs.</p>}
        {params.map((p: ParamDoc, i) => (
          <div key={i} className="param-row">
            <div className="field-row">
              <Field label="Name" error={errOf(`params[${i}].name`)}>
                <input aria-label={`Parameter ${i + 1} name`} value={p.name ?? ''} onChange={(e) => onChange((d) => setJobKey(d, 'params', (d.params ?? []).map((x, j) => (j === i ? { ...x, name: e.target.value } : x))), `params[${i}].name`)} />
              </Field>
              <Field label="Type" error={errOf(`params[${i}].type`)}>
                <select aria-label={`Parameter ${i + 1} type`} value={p.type ?? ''} onChange={(e) => setParam(i, 'type', e.target.value)}>
                  <option value="">string</option>
                  {['integer', 'number', 'boolean', 'array', 'object'].map((t) => <option key={t}>{t}</option>)}
                </select>
              </Field>
              <Field label="Default" error={errOf(`params[${i}].default`)}>
                <DraftInput aria-label={`Parameter ${i + 1} default`} value={p.default} format={defaultText} parse={defaultParse} onValue={(v) => setParam(i, 'default', v)} />
              </Field>
            </div>
            <div className="field-row">
              <Field label="Min" error={errOf(`params[${i}].min`)}>
                <DraftInput aria-label={`Parameter ${i + 1} min`} value={p.min} format={asString} parse={numParse} onValue={(v) => setParam(i, 'min', v)} />
              </Field>
              <Field label="Max" error={errOf(`params[${i}].max`)}>
                <DraftInput aria-label={`Parameter ${i + 1} max`} value={p.max} format={asString} parse={numParse} onValue={(v) => setParam(i, 'max', v)} />
              </Field>
              <Field label="Pattern" error={errOf(`params[${i}].pattern`)}>
                <DraftInput aria-label={`Parameter ${i + 1} pattern`} value={p.pattern} format={asString} parse={textOk} onValue={(v) => setParam(i, 'pattern', v)} />
              </Field>
            </div>
            <Field label="Allowed values" error={errOf(`params[${i}].enum`)} hint="Comma separated; empty allows any value.">
              <DraftInput aria-label={`Parameter ${i + 1} allowed values`} value={p.enum} format={enumText} parse={enumParse} onValue={(v) => setParam(i, 'enum', v)} />
            </Field>
            <Field label="Description">
              <input aria-label={`Parameter ${i + 1} description`} value={p.description ?? ''} onChange={(e) => setParam(i, 'description', e.target.value)} />
            </Field>
            <div className="field-row">
              <label className="check"><input type="checkbox" checked={!!p.required} onChange={(e) => setParam(i, 'required', e.target.checked)} /> Required</label>
              <label className="check"><input type="checkbox" checked={!!p.secret} onChange={(e) => setParam(i, 'secret', e.target.checked)} /> Secret</label>
              <Button variant="ghost" onClick={() => onChange((d) => setJobKey(d, 'params', (d.params ?? []).filter((_, j) => j !== i)), 'params')}>Remove</Button>
            </div>
          </div>
        ))}
        <Button onClick={() => onChange((d) => setJobKey(d, 'params', [...(d.params ?? []), { name: `param${(d.params?.length ?? 0) + 1}` }]), 'params')}>Add parameter</Button>
      </fieldset>
    </div>
  );
}
