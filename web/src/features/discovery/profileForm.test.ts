import { describe, expect, it } from 'vitest';
import { emptyProfileForm, isCIDR, isPortSpec, percent, profileToForm, toProfileInput, validateProfile } from './profileForm';
import { describePort } from './hosts';
import type { Profile } from './types';

describe('isCIDR and isPortSpec', () => {
  it('accepts IPv4 and IPv6 prefixes and bare addresses', () => {
    for (const c of ['10.0.0.0/24', '127.0.0.1', '0.0.0.0/0', 'fd00::/64', '::1']) expect(isCIDR(c), c).toBe(true);
    for (const c of ['10.0.0.0/33', '300.1.1.1/8', 'host.lan', '10.0.0.0/24/1', 'fd00::/129', '1::2::3']) expect(isCIDR(c), c).toBe(false);
  });
  it('accepts ports and ascending ranges', () => {
    for (const p of ['22', '1-1024', '65535']) expect(isPortSpec(p), p).toBe(true);
    for (const p of ['0', '70000', '100-10', 'ssh', '1-']) expect(isPortSpec(p), p).toBe(false);
  });
});

describe('validateProfile', () => {
  it('names every problem under the server field path', () => {
    const errs = validateProfile({ ...emptyProfileForm, name: 'Bad Name', cidrs: '10.0.0.0/99', ports: '22, 0', rate: '-1', timeout: '5', timeZone: 'UTC', autoImport: true, autoImportPorts: '' });
    expect(Object.keys(errs).sort()).toEqual(['agent', 'auto_import.ports', 'cidrs', 'name', 'ports', 'rate', 'time_zone', 'timeout']);
  });
  it('accepts a plain profile', () => {
    expect(validateProfile({ ...emptyProfileForm, name: 'office', agent: 'a1', cidrs: '10.0.0.0/24\n10.0.1.0/24', schedule: '0 3 * * *' })).toEqual({});
    expect(validateProfile({ ...emptyProfileForm, name: 'office', agent: 'a1', cidrs: '10.0.0.0/24', schedule: '@daily' })).toEqual({});
  });
});

describe('toProfileInput and back', () => {
  it('round-trips a profile through the form', () => {
    const p: Profile = {
      name: 'office', agent: 'agt_1', cidrs: ['10.0.0.0/24'], ports: ['22', '8000-8100'], schedule: '@daily', time_zone: 'Europe/Paris',
      resolve: false, auto_import: { ports: [22], tags: { source: 'scan' } }, created_at: '', updated_at: '', revision: 9,
    };
    expect(toProfileInput(profileToForm(p), p.revision)).toEqual({
      name: 'office', agent: 'agt_1', cidrs: ['10.0.0.0/24'], ports: ['22', '8000-8100'], schedule: '@daily', time_zone: 'Europe/Paris',
      resolve: false, auto_import: { ports: [22], tags: { source: 'scan' } }, revision: 9,
    });
  });
});

describe('percent and describePort', () => {
  it('is unknown until the total is known, and never above 100', () => {
    expect(percent({ probed: 0, total: 0 })).toBeNull();
    expect(percent({ probed: 128, total: 256 })).toBe(50);
    expect(percent({ probed: 300, total: 256 })).toBe(100);
  });
  it('says what a service answered', () => {
    expect(describePort({ port: 443, service: 'https', http: { status: 200, title: 'Console' }, tls: { subject: 'web', issuer: 'CA' } })).toBe('https, HTTP 200 “Console”, cert web by CA');
    expect(describePort({ port: 9 })).toBe('port 9');
  });
});
