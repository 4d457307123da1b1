import { describe, expect, it } from 'vitest';
import { allowsExtra, formFields, fromText, setWith, toText, type FormField } from './schemaForm';

const shell = {
  type: 'object',
  additionalProperties: false,
  properties: {
    interpreter: { type: 'string', minLength: 1, description: 'Program.' },
    command: { type: 'string', minLength: 1, description: 'Command line.' },
    env: { type: 'object', additionalProperties: { type: 'string' } },
    count: { type: 'integer', minimum: 1 },
    ratio: { type: 'number' },
    force: { type: 'boolean', default: false },
    mode: { type: 'string', enum: ['a', 'b'] },
    hosts: { type: 'array', items: { type: 'string' } },
    rules: { type: 'array', items: { type: 'object' } },
    nested: { type: 'object', properties: { x: { type: 'string' } } },
  },
  required: ['command'],
};

describe('formFields', () => {
  it('makes a field per property, required first, with kinds, hints and bounds', () => {
    const f = formFields(shell);
    expect(f.map((x) => [x.name, x.kind, x.required])).toEqual([
      ['command', 'text', true],
      ['interpreter', 'string', false],
      ['env', 'key-value', false],
      ['count', 'integer', false],
      ['ratio', 'number', false],
      ['force', 'boolean', false],
      ['mode', 'enum', false],
      ['hosts', 'string-list', false],
      ['rules', 'json', false],
      ['nested', 'json', false],
    ]);
    expect(f[1]!.description).toBe('Program.');
    expect(f[3]!.minimum).toBe(1);
    expect(f.find((x) => x.name === 'mode')!.options).toEqual(['a', 'b']);
    expect(allowsExtra(shell)).toBe(false);
    expect(allowsExtra({ type: 'object' })).toBe(true);
  });

  it('copes with a missing or odd schema', () => {
    expect(formFields(undefined)).toEqual([]);
    expect(formFields({ properties: { x: {} } })[0]!.kind).toBe('json');
    expect(formFields({ properties: { x: { type: ['string', 'null'] } } })[0]!.kind).toBe('string');
  });
});

describe('text ⇄ value', () => {
  const field = (kind: FormField['kind']): FormField => ({ name: 'f', kind, required: false });
  it('round-trips each kind', () => {
    const cases: [FormField['kind'], unknown][] = [
      ['string', 'hello'], ['integer', 42], ['number', 1.5], ['boolean', true], ['string-list', ['a', 'b']],
      ['key-value', { A: '1', B: 'x=y' }], ['json', [{ a: 1 }]], ['text', 'line1\nline2\n'],
    ];
    for (const [kind, v] of cases) {
      const r = fromText(field(kind), toText(field(kind), v));
      expect(r, kind).toEqual({ ok: true, value: v });
    }
  });
  it('treats empty as unset', () => {
    expect(fromText(field('integer'), '  ')).toEqual({ ok: true, value: undefined });
  });
  it('explains bad input', () => {
    expect(fromText(field('integer'), '1.5')).toEqual({ ok: false, error: 'must be a whole number' });
    expect(fromText(field('number'), 'abc')).toEqual({ ok: false, error: 'must be a number' });
    expect(fromText(field('key-value'), 'A=1\nnope')).toEqual({ ok: false, error: 'line 2: write key=value' });
    expect(fromText(field('json'), '{').ok).toBe(false);
  });
  it('keeps expressions as text in typed fields', () => {
    expect(fromText(field('integer'), '${{ params.n }}')).toEqual({ ok: true, value: '${{ params.n }}' });
  });
  it('sets and removes with keys', () => {
    expect(setWith(undefined, 'a', 1)).toEqual({ a: 1 });
    expect(setWith({ a: 1 }, 'a', undefined)).toBeUndefined();
    expect(Object.keys(setWith({ b: 1, a: 2 }, 'b', 3)!)).toEqual(['b', 'a']);
  });
});
