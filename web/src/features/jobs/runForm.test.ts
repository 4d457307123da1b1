import { describe, expect, it } from 'vitest';
import { readRunForm, runFields } from './runForm';

const params = [
  { name: 'version', type: 'string', required: true, pattern: '^v\\d+$' },
  { name: 'count', type: 'integer', default: 3, min: 1, max: 10 },
  { name: 'ratio', type: 'number' },
  { name: 'dry', type: 'boolean', default: false },
  { name: 'env', enum: ['dev', 'prod'] },
  { name: 'token', secret: true, required: true },
  { name: 'hosts', type: 'array' },
];

describe('run form', () => {
  it('makes a field per parameter with its kind and default', () => {
    const f = runFields(params);
    expect(f.map((x) => [x.name, x.kind, x.required, x.initial])).toEqual([
      ['version', 'string', true, ''], ['count', 'integer', false, '3'], ['ratio', 'number', false, ''], ['dry', 'boolean', false, 'false'],
      ['env', 'enum', false, ''], ['token', 'secret', true, ''], ['hosts', 'json', false, ''],
    ]);
  });

  it('converts values to their types and leaves blank fields to the server defaults', () => {
    const r = readRunForm(runFields(params), { version: 'v2', count: '5', ratio: '0.5', dry: 'true', env: 'prod', token: 's3cret', hosts: '["a","b"]' });
    expect(r.errors).toEqual({});
    expect(r.params).toEqual({ version: 'v2', count: 5, ratio: 0.5, dry: true, env: 'prod', token: 's3cret', hosts: ['a', 'b'] });
    const d = readRunForm(runFields(params), { version: 'v1', token: 'x', count: '' });
    expect(d.params).toEqual({ version: 'v1', token: 'x', dry: false });
  });

  it('reports every problem at once under the server paths', () => {
    const r = readRunForm(runFields(params), { version: 'x', count: '2.5', ratio: 'abc', hosts: '[' });
    expect(Object.keys(r.errors).sort()).toEqual(['params.count', 'params.hosts', 'params.ratio', 'params.token', 'params.version']);
    expect(r.errors['params.token']).toBe('required');
    expect(r.errors['params.count']).toBe('must be a whole number');
    expect(readRunForm(runFields(params), { version: 'v1', token: 't', count: '11' }).errors).toEqual({ 'params.count': 'must be at most 10' });
  });
});
