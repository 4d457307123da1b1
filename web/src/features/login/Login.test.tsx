import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { MemoryRouter, Route, Routes } from 'react-router';
import Login, { safeNext } from './Login';
import { session } from '../../api/client';

// A stand-in for POST /api/v1/auth/login with the controller's answers:
// totp_required until a code is sent, then tokens for the right code.
function fakeLogin(opts: { code: string; mustChange?: boolean }) {
  const bodies: Record<string, unknown>[] = [];
  const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
  const fetchFn = vi.fn(async (url: string, init?: RequestInit) => {
    if (url !== '/api/v1/auth/login') return json(404, { error: { kind: 'not_found', code: 'not_found', message: 'no route' } });
    const b = JSON.parse(String(init?.body)) as Record<string, unknown>;
    bodies.push(b);
    if (b.password !== 'right-password-1') return json(401, { error: { kind: 'unauthenticated', code: 'invalid_credentials', message: 'invalid username or password' } });
    if (!b.totp) return json(401, { error: { kind: 'unauthenticated', code: 'totp_required', message: 'this account needs a two-factor code: send it as totp' } });
    if (b.totp !== opts.code) return json(401, { error: { kind: 'unauthenticated', code: 'invalid_totp', message: 'the two-factor code is wrong' } });
    return json(200, { access_token: 'tok', expires_in: 900, session_id: 'ses_1', must_change_password: !!opts.mustChange });
  });
  return { fetchFn, bodies };
}

function renderAt(path: string) {
  return render(
    <MemoryRouter initialEntries={[path]}>
      <Routes>
        <Route path="/login" element={<Login />} />
        <Route path="/jobs" element={<p>jobs page</p>} />
        <Route path="/password" element={<p>password page</p>} />
        <Route path="/" element={<p>home page</p>} />
      </Routes>
    </MemoryRouter>,
  );
}

async function signIn(password: string) {
  fireEvent.change(screen.getByLabelText('Username'), { target: { value: 'alice' } });
  fireEvent.change(screen.getByLabelText('Password'), { target: { value: password } });
  fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
}

describe('Login', () => {
  beforeEach(() => session.set(null));
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
  });

  it('asks for the two-factor code when the server says one is needed, then signs in with it', async () => {
    const { fetchFn, bodies } = fakeLogin({ code: '123456' });
    vi.stubGlobal('fetch', fetchFn);
    renderAt('/login?next=%2Fjobs');
    await signIn('right-password-1');
    const code = await screen.findByLabelText(/Two-factor code/);
    expect(screen.queryByRole('alert')).toBeNull();
    expect(bodies[0]).not.toHaveProperty('totp');

    fireEvent.change(code, { target: { value: '000000' } });
    fireEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    expect(await screen.findByRole('alert')).toHaveProperty('textContent', 'The two-factor code is wrong.');

    fireEvent.change(code, { target: { value: ' 123456 ' } });
    fireEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    await screen.findByText('jobs page');
    expect(bodies.at(-1)).toMatchObject({ username: 'alice', password: 'right-password-1', totp: '123456', cookie: true });
    expect(session.accessToken).toBe('tok');
  });

  it('shows a wrong password plainly and asks for no code', async () => {
    vi.stubGlobal('fetch', fakeLogin({ code: '1' }).fetchFn);
    renderAt('/login');
    await signIn('wrong');
    expect((await screen.findByRole('alert')).textContent).toBe('Wrong username or password.');
    expect(screen.queryByLabelText(/Two-factor code/)).toBeNull();
  });

  it('goes to the password change first when the server demands one', async () => {
    const { fetchFn } = fakeLogin({ code: '42', mustChange: true });
    vi.stubGlobal('fetch', fetchFn);
    renderAt('/login');
    await signIn('right-password-1');
    fireEvent.change(await screen.findByLabelText(/Two-factor code/), { target: { value: '42' } });
    fireEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    await waitFor(() => expect(screen.getByText('password page')).toBeTruthy());
  });
});

describe('safeNext', () => {
  it('follows only same-site paths', () => {
    expect(safeNext('/runs/r1?x=1')).toBe('/runs/r1?x=1');
    expect(safeNext('//evil.example/')).toBe('/');
    expect(safeNext('https://evil.example/')).toBe('/');
    expect(safeNext(null)).toBe('/');
    expect(safeNext('/login?next=/x')).toBe('/');
  });
});
