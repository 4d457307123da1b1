// Turns a step's parameter JSON Schema into the fields of a form, and
// moves values between the form's text inputs and the step's `with`.
// Anything the form cannot edit well (nested objects, arrays of objects)
// becomes a JSON field, so no parameter is ever out of reach.

export type FieldKind = 'string' | 'text' | 'number' | 'integer' | 'boolean' | 'enum' | 'string-list' | 'key-value' | 'json';

export interface FormField {
  name: string;
  kind: FieldKind;
  required: boolean;
  description?: string;
  default?: unknown;
  options?: string[];
  /** For numbers: bounds from the schema. */
  minimum?: number;
  maximum?: number;
}

type Schema = Record<string, unknown>;

const asSchema = (v: unknown): Schema => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Schema) : {});

function typeOf(s: Schema): string | undefined {
  const t = s.type;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) return t.find((x) => x !== 'null') as string | undefined;
  return undefined;
}

/** Long free text (scripts, bodies) gets a multi-line input. */
const multiline = new Set(['script', 'body', 'content', 'template', 'command']);

export function fieldFor(name: string, prop: unknown, required: boolean): FormField {
  const s = asSchema(prop);
  const base = { name, required, description: typeof s.description === 'string' ? s.description : undefined, default: s.default };
  if (Array.isArray(s.enum) && s.enum.every((e) => typeof e === 'string')) {
    return { ...base, kind: 'enum', options: s.enum as string[] };
  }
  const t = typeOf(s);
  switch (t) {
    case 'string':
      return { ...base, kind: multiline.has(name) ? 'text' : 'string' };
    case 'integer':
    case 'number':
      return { ...base, kind: t, minimum: typeof s.minimum === 'number' ? s.minimum : undefined, maximum: typeof s.maximum === 'number' ? s.maximum : undefined };
    case 'boolean':
      return { ...base, kind: 'boolean' };
    case 'array': {
      const items = asSchema(s.items);
      return { ...base, kind: typeOf(items) === 'string' || s.items === undefined ? 'string-list' : 'json' };
    }
    case 'object': {
      const ap = s.additionalProperties;
      const props = asSchema(s.properties);
      const flat = Object.keys(props).length === 0 && (ap === undefined || ap === true || typeOf(asSchema(ap)) === 'string');
      return { ...base, kind: flat ? 'key-value' : 'json' };
    }
  }
  return { ...base, kind: 'json' };
}

/** The form's fields: required ones first, then the rest, each in schema order. */
export function formFields(schema: unknown): FormField[] {
  const s = asSchema(schema);
  const props = asSchema(s.properties);
  const required = new Set(Array.isArray(s.required) ? (s.required as string[]) : []);
  const fields = Object.keys(props).map((k) => fieldFor(k, props[k], required.has(k)));
  return [...fields.filter((f) => f.required), ...fields.filter((f) => !f.required)];
}

/** Whether the schema lets `with` hold keys it does not list. */
export function allowsExtra(schema: unknown): boolean {
  return asSchema(schema).additionalProperties !== false;
}

/** The text shown for a value. */
export function toText(field: FormField, v: unknown): string {
  if (v === undefined || v === null) return '';
  switch (field.kind) {
    case 'string-list':
      return Array.isArray(v) ? v.map(String).join('\n') : String(v);
    case 'key-value':
      return v && typeof v === 'object' && !Array.isArray(v)
        ? Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}=${typeof x === 'string' ? x : JSON.stringify(x)}`).join('\n')
        : String(v);
    case 'json':
      return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
    default:
      return typeof v === 'string' ? v : JSON.stringify(v);
  }
}

export type Parsed = { ok: true; value: unknown } | { ok: false; error: string };

/**
 * Reads a field's text back into a value; '' means "not set". A value that
 * is an expression (${{ … }}) stays text whatever the type: the server
 * evaluates it at run time.
 */
export function fromText(field: FormField, text: string): Parsed {
  if (text.trim() === '') return { ok: true, value: undefined };
  const expr = /^\s*\$\{\{.*\}\}\s*$/s.test(text);
  switch (field.kind) {
    case 'string':
    case 'text':
    case 'enum':
      return { ok: true, value: text };
    case 'integer':
    case 'number': {
      if (expr) return { ok: true, value: text.trim() };
      const n = Number(text.trim());
      if (!Number.isFinite(n)) return { ok: false, error: `must be a number` };
      if (field.kind === 'integer' && !Number.isInteger(n)) return { ok: false, error: 'must be a whole number' };
      return { ok: true, value: n };
    }
    case 'boolean':
      return { ok: true, value: text === 'true' };
    case 'string-list':
      return { ok: true, value: text.split('\n').map((l) => l.trim()).filter((l) => l !== '') };
    case 'key-value': {
      const out: Record<string, string> = {};
      const lines = text.split('\n');
      for (let i = 0; i < lines.length; i++) {
        const l = lines[i]!;
        if (l.trim() === '') continue;
        const eq = l.indexOf('=');
        if (eq <= 0) return { ok: false, error: `line ${i + 1}: write key=value` };
        out[l.slice(0, eq).trim()] = l.slice(eq + 1);
      }
      return { ok: true, value: out };
    }
    case 'json':
      try {
        return { ok: true, value: JSON.parse(text) };
      } catch (e) {
        return { ok: false, error: `not valid JSON: ${(e as Error).message}` };
      }
  }
}

/** Sets one parameter in a `with` map; undefined removes it. Key order is kept. */
export function setWith(w: Record<string, unknown> | undefined, key: string, value: unknown): Record<string, unknown> | undefined {
  const next = { ...(w ?? {}) };
  if (value === undefined) delete next[key];
  else next[key] = value;
  return Object.keys(next).length ? next : undefined;
}
