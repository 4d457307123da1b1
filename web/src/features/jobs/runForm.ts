// The run dialog's form model: one field per job parameter, read from the
// job's canonical spec, and the conversion of the author's text to the
// values the API takes. The server checks again (and its per-field
// messages are shown under the same fields), so this only catches what is
// plain from the form.
import type { ParamDoc } from './designer/model';

export type RunFieldKind = 'string' | 'secret' | 'integer' | 'number' | 'boolean' | 'enum' | 'json';

export interface RunField {
  name: string;
  kind: RunFieldKind;
  required: boolean;
  description?: string;
  options?: string[];
  initial: string;
  param: ParamDoc;
}

export function runFields(params: ParamDoc[] | undefined): RunField[] {
  return (params ?? []).map((p) => {
    const type = p.type ?? 'string';
    let kind: RunFieldKind;
    if (p.enum?.length) kind = 'enum';
    else if (p.secret) kind = 'secret';
    else if (type === 'integer' || type === 'number' || type === 'boolean' || type === 'string') kind = type;
    else kind = 'json';
    const d = p.default;
    const initial = d === undefined ? '' : kind === 'json' ? JSON.stringify(d, null, 2) : String(d);
    return { name: p.name, kind, required: !!p.required, description: p.description, options: p.enum?.map(String), initial, param: p };
  });
}

/**
 * Reads the form: values only for fields the author filled (the server
 * applies defaults to the rest), and every problem at once under
 * "params.<name>", the server's own paths.
 */
export function readRunForm(fields: RunField[], text: Record<string, string>): { params: Record<string, unknown>; errors: Record<string, string> } {
  const params: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const f of fields) {
    const t = text[f.name] ?? f.initial;
    const key = `params.${f.name}`;
    if (t.trim() === '') {
      if (f.required && f.param.default === undefined) errors[key] = 'required';
      continue;
    }
    switch (f.kind) {
      case 'integer':
      case 'number': {
        const n = Number(t);
        if (!Number.isFinite(n)) errors[key] = 'must be a number';
        else if (f.kind === 'integer' && !Number.isInteger(n)) errors[key] = 'must be a whole number';
        else if (f.param.min !== undefined && n < f.param.min) errors[key] = `must be at least ${f.param.min}`;
        else if (f.param.max !== undefined && n > f.param.max) errors[key] = `must be at most ${f.param.max}`;
        else params[f.name] = n;
        break;
      }
      case 'boolean':
        params[f.name] = t === 'true';
        break;
      case 'enum': {
        const v = f.param.enum!.find((e) => String(e) === t);
        params[f.name] = v ?? t;
        break;
      }
      case 'json':
        try {
          params[f.name] = JSON.parse(t);
        } catch (e) {
          errors[key] = `not valid JSON: ${(e as Error).message}`;
        }
        break;
      default:
        if (f.param.pattern && !new RegExp(f.param.pattern).test(t)) errors[key] = `must match ${f.param.pattern}`;
        else params[f.name] = t;
    }
  }
  return { params, errors };
}
