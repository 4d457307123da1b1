import { describe, expect, it } from 'vitest';
import { agentState, formatBytes, parseTags, type Agent } from './types';

const agent = (over: Partial<Agent>): Agent => ({
  id: 'a', name: 'a', tags: {}, facts: {}, cert_serial: '', cert_not_after: '', enrolled_at: '', join_token_id: '',
  status: 'up', revoked: false, draining: false, ...over,
});

describe('parseTags', () => {
  it('reads key=value pairs separated by commas, trimming spaces', () => {
    expect(parseTags(' env=prod, rack = r12 ,,')).toEqual({ tags: { env: 'prod', rack: 'r12' }, problems: [] });
  });
  it('keeps "=" inside a value and names pieces that are not key=value', () => {
    expect(parseTags('q=a=b, bare, =x')).toEqual({ tags: { q: 'a=b' }, problems: ['"bare" is not key=value', '"=x" is not key=value'] });
  });
});

describe('agentState', () => {
  it('puts revoked before draining before up/down', () => {
    expect(agentState(agent({ revoked: true, draining: true }))).toEqual({ status: 'revoked', tone: 'idle' });
    expect(agentState(agent({ draining: true }))).toEqual({ status: 'draining', tone: 'warn' });
    expect(agentState(agent({}))).toEqual({ status: 'up', tone: 'ok' });
    expect(agentState(agent({ status: 'down', draining: true }))).toEqual({ status: 'down, draining', tone: 'bad' });
  });
});

describe('formatBytes', () => {
  it('uses binary units', () => {
    expect([undefined, 512, 1536, 25276026880].map(formatBytes)).toEqual(['—', '512 B', '1.5 KiB', '24 GiB']);
  });
});
