import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { session } from './client';

const tokens = { access_token: 'new', expires_in: 900, session_id: 's1' };

describe('session.refresh', () => {
  beforeEach(() => {
    document.cookie = 'opsconductor_csrf=c1; path=/';
    session.set({ access_token: 'old', expires_in: 900, session_id: 's1' });
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    document.cookie = 'opsconductor_csrf=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/';
  });

  it('renews the token with the CSRF header', async () => {
    const f = vi.fn(async (_url: string, _init?: RequestInit) => new Response(JSON.stringify(tokens), { status: 200 }));
    vi.stubGlobal('fetch', f);
    expect(await session.refresh()).toBe(true);
    expect(session.accessToken).toBe('new');
    expect(f.mock.calls[0]![1]).toMatchObject({ method: 'POST', headers: { 'X-CSRF-Token': 'c1' } });
  });

  it('ends the session when the server refuses it, and marks it expired', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('{}', { status: 401 })));
    expect(await session.refresh()).toBe(false);
    expect(session.accessToken).toBeNull();
    expect(session.expired).toBe(true);
  });

  it('keeps the session and rejects when the controller is down', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('bad gateway', { status: 502 })));
    await expect(session.refresh()).rejects.toThrow(/unavailable \(HTTP 502\)/);
    expect(session.accessToken).toBe('old');
    vi.stubGlobal('fetch', vi.fn(async () => { throw new TypeError('Failed to fetch'); }));
    await expect(session.refresh()).rejects.toThrow('Failed to fetch');
    expect(session.accessToken).toBe('old');
  });

  it('asks nothing when there is no CSRF cookie, since there is no session cookie either', async () => {
    document.cookie = 'opsconductor_csrf=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/';
    const f = vi.fn();
    vi.stubGlobal('fetch', f);
    expect(await session.refresh()).toBe(false);
    expect(f).not.toHaveBeenCalled();
    expect(session.accessToken).toBeNull();
  });
});
