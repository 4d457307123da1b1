import { useEffect, useRef, useState } from 'react';
import { Button, Field } from '../../../components/ui';
import type { CatalogStep } from '../api';
import { fieldWithinStep, isValidStepId, setStepKey, type Problem, type StepDoc } from './model';
import { allowsExtra, fieldFor, formFields, fromText, setWith, toText, type FormField } from './schemaForm';

/**
 * A text input bound to a value through a parser: the author's text is
 * kept while it does not parse (with the reason shown), and replaced when
 * the value changes from elsewhere (undo, the YAML tab).
 */
export function DraftInput({ value, format, parse, multiline, ...rest }: {
  value: unknown;
  format: (v: unknown) => string;
  parse: (text: string) => { ok: true; value: unknown } | { ok: false; error: string };
  onValue: (v: unknown) => void;
  onDraftError?: (e: string | undefined) => void;
  multiline?: boolean;
  'aria-label'?: string;
  placeholder?: string;
  id?: string;
  rows?: number;
}) {
  const { onValue, onDraftError, ...attrs } = rest;
  const [text, setText] = useState(() => format(value));
  const last = useRef(value);
  useEffect(() => {
    if (value !== last.current) {
      last.current = value;
      setText(format(value));
      onDraftError?.(undefined);
    }
  }, [value, format, onDraftError]);
  const change = (t: string) => {
    setText(t);
    const r = parse(t);
    if (r.ok) {
      last.current = r.value;
      onDraftError?.(undefined);
      onValue(r.value);
    } else {
      onDraftError?.(r.error);
    }
  };
  return multiline ? (
    <textarea {...attrs} rows={attrs.rows ?? 3} value={text} onChange={(e) => change(e.target.value)} />
  ) : (
    <input {...attrs} value={text} onChange={(e) => change(e.target.value)} />
  );
}

const asString = (v: unknown) => (v === undefined || v === null ? '' : String(v));
const textOk = (t: string) => ({ ok: true as const, value: t === '' ? undefined : t });
const listText = (v: unknown) => (Array.isArray(v) ? v.join(', ') : '');
const listParse = (t: string) => ({ ok: true as const, value: t.split(',').map((x) => x.trim()).filter(Boolean) });
const intParse = (t: string) => {
  if (t.trim() === '') return { ok: true as const, value: undefined };
  const n = Number(t);
  return Number.isInteger(n) && n >= 0 ? { ok: true as const, value: n } : { ok: false as const, error: 'must be a whole number ≥ 0' };
};

function ParamField({ field, value, error, onValue }: { field: FormField; value: unknown; error?: string; onValue: (v: unknown) => void }) {
  const [draftError, setDraftError] = useState<string>();
  const label = `${field.name}${field.required ? ' *' : ''}`;
  const hint = [field.description, field.default !== undefined ? `default ${JSON.stringify(field.default)}` : ''].filter(Boolean).join(' — ');
  if (field.kind === 'boolean') {
    return (
      <Field label={label} error={error} hint={hint}>
        <select aria-label={field.name} value={value === undefined ? '' : String(value)} onChange={(e) => onValue(e.target.value === '' ? undefined : e.target.value === 'true')}>
          <option value="">(not set)</option>
          <option value="true">true</option>
          <option value="false">false</option>
        </select>
      </Field>
    );
  }
  if (field.kind === 'enum') {
    return (
      <Field label={label} error={error} hint={hint}>
        <select aria-label={field.name} value={asString(value)} onChange={(e) => onValue(e.target.value === '' ? undefined : e.target.value)}>
          <option value="">(not set)</option>
          {field.options!.map((o) => <option key={o} value={o}>{o}</option>)}
        </select>
      </Field>
    );
  }
  const multi = field.kind === 'text' || field.kind === 'string-list' || field.kind === 'key-value' || field.kind === 'json';
  const placeholder = field.kind === 'key-value' ? 'KEY=value, one a line' : field.kind === 'string-list' ? 'one a line' : undefined;
  return (
    <Field label={label} error={draftError ?? error} hint={hint}>
      <DraftInput
        aria-label={field.name}
        multiline={multi}
        rows={field.kind === 'text' ? 2 : 3}
        placeholder={placeholder}
        value={value}
        format={(v) => toText(field, v)}
        parse={(t) => fromText(field, t)}
        onValue={onValue}
        onDraftError={setDraftError}
      />
    </Field>
  );
}

export function StepPanel({ step, catalog, problems, onChange, onRename, onDelete }: {
  step: StepDoc;
  catalog?: CatalogStep;
  problems: Problem[];
  onChange: (fn: (s: StepDoc) => StepDoc, key: string) => void;
  onRename: (id: string) => void;
  onDelete: () => void;
}) {
  const errOf = (path: string) => problems.filter((p) => fieldWithinStep(p.field) === path || fieldWithinStep(p.field).startsWith(`${path}[`)).map((p) => p.message).join('; ') || undefined;
  const fields = formFields(catalog?.params);
  const known = new Set(fields.map((f) => f.name));
  const extra = Object.keys(step.with ?? {}).filter((k) => !known.has(k)).map((k) => fieldFor(k, {}, false));
  const shown = new Set(['id', 'name', 'uses', 'needs', 'when', 'retries.count', 'retries.backoff', 'timeout', 'on_failure', 'continue_on_error', 'credentials',
    ...[...fields, ...extra].map((f) => `with.${f.name}`)]);
  const other = problems.filter((p) => {
    const f = fieldWithinStep(p.field).replace(/\[\d+\]$/, '');
    return !shown.has(f);
  });
  const set = (key: string, v: unknown) => onChange((s) => setStepKey(s, key, v), key);
  return (
    <div className="panel-form" aria-label={`Step ${step.id}`}>
      <div className="panel-title">
        <h2>Step</h2>
        <Button variant="danger" onClick={onDelete} aria-label="Delete step">Delete</Button>
      </div>
      {other.length > 0 && (
        <ul className="panel-problems" role="alert">
          {other.map((p, i) => <li key={i}><code>{fieldWithinStep(p.field) || 'step'}</code> {p.message}</li>)}
        </ul>
      )}
      <Field label="ID *" error={errOf('id') ?? (step.id && !isValidStepId(step.id) ? 'lower-case letters, digits, _ or -, starting with a letter' : undefined)} hint="Other steps name it in needs.">
        <input aria-label="Step ID" value={step.id ?? ''} onChange={(e) => onRename(e.target.value)} />
      </Field>
      <Field label="Display name" error={errOf('name')}>
        <input aria-label="Display name" value={step.name ?? ''} onChange={(e) => set('name', e.target.value)} />
      </Field>
      <Field label="Uses *" error={errOf('uses')} hint={catalog?.summary}>
        <input aria-label="Uses" className="mono" value={step.uses ?? ''} onChange={(e) => onChange((s) => ({ ...s, uses: e.target.value }), 'uses')} />
      </Field>
      <fieldset>
        <legend>Parameters</legend>
        {fields.length === 0 && extra.length === 0 && <p className="muted">{catalog ? 'This step takes no parameters.' : 'Unknown step: its parameters cannot be listed.'}</p>}
        {[...fields, ...extra].map((f) => (
          <ParamField key={f.name} field={f} value={step.with?.[f.name]} error={errOf(`with.${f.name}`)} onValue={(v) => onChange((s) => setStepKey(s, 'with', setWith(s.with, f.name, v)), `with.${f.name}`)} />
        ))}
        {catalog && allowsExtra(catalog.params) && fields.length === 0 && <p className="muted">Edit other parameters in the YAML tab.</p>}
      </fieldset>
      <fieldset>
        <legend>Flow</legend>
        <Field label="Needs" error={errOf('needs')} hint="Step IDs, comma separated; or connect nodes on the canvas.">
          <DraftInput aria-label="Needs" value={step.needs} format={listText} parse={listParse} onValue={(v) => set('needs', v)} />
        </Field>
        <Field label="When" error={errOf('when')} hint="An expression, e.g. params.env == 'prod'">
          <DraftInput aria-label="When" value={step.when} format={asString} parse={textOk} onValue={(v) => set('when', v)} />
        </Field>
        <div className="field-row">
          <Field label="Retries" error={errOf('retries.count')}>
            <DraftInput aria-label="Retries" value={step.retries?.count} format={asString} parse={intParse}
              onValue={(v) => onChange((s) => setStepKey(s, 'retries', cleanRetries({ ...s.retries, count: v as number | undefined })), 'retries.count')} />
          </Field>
          <Field label="Backoff" error={errOf('retries.backoff')}>
            <DraftInput aria-label="Backoff" placeholder="1s" value={step.retries?.backoff} format={asString} parse={textOk}
              onValue={(v) => onChange((s) => setStepKey(s, 'retries', cleanRetries({ ...s.retries, backoff: v as string | undefined })), 'retries.backoff')} />
          </Field>
          <Field label="Timeout" error={errOf('timeout')}>
            <DraftInput aria-label="Timeout" placeholder="10m" value={step.timeout} format={asString} parse={textOk} onValue={(v) => set('timeout', v)} />
          </Field>
        </div>
        <Field label="Credentials" error={errOf('credentials')} hint="Job credentials this step receives, comma separated.">
          <DraftInput aria-label="Step credentials" value={step.credentials} format={listText} parse={listParse} onValue={(v) => set('credentials', v)} />
        </Field>
        <label className="check"><input type="checkbox" checked={!!step.on_failure} onChange={(e) => set('on_failure', e.target.checked)} /> Runs only when a step it needs failed (on_failure)</label>
        <label className="check"><input type="checkbox" checked={!!step.continue_on_error} onChange={(e) => set('continue_on_error', e.target.checked)} /> Continue on error</label>
      </fieldset>
    </div>
  );
}

function cleanRetries(r: { count?: number; backoff?: string; [k: string]: unknown }) {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) if (v !== undefined && v !== '') out[k] = v;
  return out;
}
