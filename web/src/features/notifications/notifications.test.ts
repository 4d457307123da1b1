import { describe, expect, it } from 'vitest';
import { formatParamMap, parseParamMap } from './triggerForm';
import { ApiError } from '../../api/client';
import { channelToForm, emptyChannelForm, lineOf, parseHeaders, toChannelRequest, validateChannel } from './channelForm';
import { emptyRuleForm, ruleToForm, toRule, validateRule } from './ruleForm';
import { diagnostics } from './Templates';
import type { ChannelView } from './types';

describe('channel form', () => {
  it('requires a 16-character signing key for a new webhook but not to keep one on edit', () => {
    const v = { ...emptyChannelForm, name: 'hooks', url: 'https://example.com/h', secret: 'short' };
    expect(validateChannel(v, false)).toEqual({ secret: expect.stringMatching(/16 characters/) });
    expect(validateChannel({ ...v, secret: '' }, true)).toEqual({});
  });
  it('checks an email channel under the server field paths', () => {
    const errs = validateChannel({ ...emptyChannelForm, kind: 'email', name: 'mail', port: '0', from: 'x', to: 'a@b, nope' }, false);
    expect(Object.keys(errs).sort()).toEqual(['config.email.from', 'config.email.host', 'config.email.port', 'config.email.to']);
  });
  it('builds a request that keeps, replaces or removes the secret', () => {
    const v = { ...emptyChannelForm, name: 'hooks', url: 'https://example.com/h', headers: 'X-Team: ops' };
    expect(toChannelRequest(v)).toEqual({ name: 'hooks', description: '', config: { kind: 'webhook', webhook: { url: 'https://example.com/h', headers: { 'X-Team': 'ops' }, template: undefined, timeout: undefined } } });
    expect(toChannelRequest({ ...v, secret: 'k'.repeat(16) }).secret).toBe('k'.repeat(16));
    expect(toChannelRequest({ ...v, removeSecret: true, secret: 'ignored' }).secret).toBe('');
  });
  it('asks for a chat URL again on edit, since the stored one is shown cut', () => {
    const c = { name: 'room', kind: 'chat', config: { kind: 'chat', chat: { flavor: 'slack', url: 'https://hooks.slack.com/…' } }, has_secret: false, max_attempts: 5, revision: 3, created_at: '', updated_at: '' } as ChannelView;
    const f = channelToForm(c);
    expect(f.chatURL).toBe('');
    expect(validateChannel(f, true)['config.chat.url']).toMatch(/again/);
  });
  it('reads header lines', () => {
    expect(parseHeaders('A: 1\n\nB:2')).toEqual({ headers: { A: '1', B: '2' } });
    expect(parseHeaders('nocolon').error).toMatch(/Name: value/);
  });
});

describe('template diagnostics', () => {
  it('splits the line from the message', () => {
    expect(lineOf('line 3, column 7: unexpected "}"')).toEqual({ line: 3, message: 'unexpected "}"' });
    expect(lineOf('line 12: function "nope" not defined')).toEqual({ line: 12, message: 'function "nope" not defined' });
    expect(lineOf('must be valid JSON')).toEqual({ line: null, message: 'must be valid JSON' });
  });
  it('groups a 400 problem by field', () => {
    const err = new ApiError(400, { kind: 'invalid', code: 'template_invalid', message: '2 problems', details: [
      { kind: 'invalid', code: 'template_invalid', field: 'text', message: 'line 2: unclosed action' },
      { kind: 'invalid', code: 'template_invalid', field: 'subject', message: 'line 1, column 4: bad' },
    ] });
    expect(diagnostics(err)).toEqual({ text: [{ line: 2, message: 'unclosed action' }], subject: [{ line: 1, message: 'bad' }] });
    expect(diagnostics(new Error('x'))).toEqual({});
  });
});

describe('rule form', () => {
  it('needs events, channels and a complete throttle', () => {
    const errs = validateRule({ ...emptyRuleForm, name: 'r', events: [], throttleMax: '5', throttleWindow: 'soon', tags: 'x' });
    expect(Object.keys(errs).sort()).toEqual(['channels', 'events', 'filter.tags', 'throttle.window']);
  });
  it('round-trips a rule', () => {
    const v = { ...emptyRuleForm, name: 'oncall', channels: ['pager'], jobs: 'deploy-*', tags: 'env=prod', minSeverity: 'warning' as const, throttleMax: '3', throttleWindow: '5m' };
    const body = toRule(v, 4);
    expect(body).toEqual({ name: 'oncall', description: undefined, events: ['run.failed'], channels: ['pager'], enabled: true,
      filter: { jobs: ['deploy-*'], tags: { env: 'prod' }, min_severity: 'warning' }, throttle: { max: 3, window: '5m' }, revision: 4 });
    expect(ruleToForm(body as never)).toEqual({ ...v, description: '' });
  });
});

describe('trigger parameter map', () => {
  it('reads one param = expression per line and keeps == inside expressions', () => {
    expect(parseParamMap('ref = payload.ref\nforce = payload.forced == true\n')).toEqual({ map: { ref: 'payload.ref', force: 'payload.forced == true' } });
    expect(formatParamMap({ a: 'payload.x' })).toBe('a = payload.x');
  });
  it('names the bad line', () => {
    expect(parseParamMap('justtext').error).toMatch(/justtext/);
    expect(parseParamMap('a == b').error).toMatch(/param = expression/);
    expect(parseParamMap('1x = y').error).toMatch(/not a parameter name/);
    expect(parseParamMap('a = 1\na = 2').error).toMatch(/twice/);
  });
});
