import { describe, expect, it } from 'vitest';
import { emptyTargetForm, parseTags, toTargetInput, toTargetPatch, validateTarget } from './targetForm';
import type { Target } from './types';

describe('validateTarget', () => {
  it('names every problem under the server field path', () => {
    const errs = validateTarget({ ...emptyTargetForm, name: '-bad', port: '70000', hostKeyPolicy: 'pinned', tags: 'env', groups: 'Web' });
    expect(Object.keys(errs).sort()).toEqual(['addresses', 'connection.host_key', 'connection.port', 'connection.via', 'groups', 'name', 'tags']);
  });
  it('accepts a complete SSH target', () => {
    expect(validateTarget({ ...emptyTargetForm, name: 'web-1', addresses: '10.0.0.1', via: 'relay-1', port: '2222', tags: 'env=prod' })).toEqual({});
  });
  it('does not ask an agent target for addresses or a relay', () => {
    expect(validateTarget({ ...emptyTargetForm, name: 'agent-host' }, true)).toEqual({});
  });
  it('refuses the reserved names', () => {
    expect(validateTarget({ ...emptyTargetForm, name: 'export', addresses: 'x', via: 'r' }).name).toMatch(/reserved/);
  });
});

describe('parseTags', () => {
  it('reads key=value lists and reports bad entries', () => {
    expect(parseTags('env=prod, role=web\nteam=ops')).toEqual({ tags: { env: 'prod', role: 'web', team: 'ops' }, errors: [] });
    expect(parseTags('facts.os=linux, x=a b').errors).toHaveLength(2);
  });
});

describe('toTargetInput and toTargetPatch', () => {
  const v = { ...emptyTargetForm, name: ' web-1 ', addresses: '10.0.0.1, web-1.lan', via: 'relay-1', port: '22', username: 'deploy', tags: 'env=prod', groups: 'web db' };
  it('builds an SSH target', () => {
    expect(toTargetInput(v)).toEqual({
      name: 'web-1', addresses: ['10.0.0.1', 'web-1.lan'], connection: { type: 'ssh', via: 'relay-1', port: 22, username: 'deploy' },
      tags: { env: 'prod' }, groups: ['web', 'db'], owner: undefined, notes: undefined,
    });
  });
  it('patches only the overlay of an agent target, with its revision', () => {
    const t = { id: 'a1', name: 'host', connection: { type: 'agent', agent_id: 'a1' }, revision: 7 } as Target;
    expect(toTargetPatch(v, t)).toEqual({ tags: { env: 'prod' }, groups: ['web', 'db'], owner: '', notes: '', revision: 7 });
  });
});
