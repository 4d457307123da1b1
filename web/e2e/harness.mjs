// The end-to-end harness: a real `opsconductor dev` controller on loopback
// ports the kernel picks, and a headless Chromium driven by playwright-core.
// Tests (web/e2e/*.test.mjs, run by `npm run e2e`) start one server per
// file in before() and stop it in after():
//
//   const server = await startServer();          // admin password changed
//   const { newPage } = await openBrowser();
//   const page = await newPage('jobs');
//   await login(page, server);
//   ...
//   assertNoConsoleErrors(page);
//
// The controller binary is ../bin/opsconductor (build it with `make build`
// after `make web`, so it embeds the UI) or OPSCONDUCTOR_BIN. Chromium is
// /usr/bin/chromium or CHROMIUM. Nothing here sleeps to synchronise: every
// wait polls with a deadline and says what it waited for when it fails.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const webDir = path.resolve(here, '..');
export const artifactsDir = path.join(webDir, 'test-artifacts');

const binary = process.env.OPSCONDUCTOR_BIN ?? path.resolve(webDir, '..', 'bin', 'opsconductor');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** How long a server may take to become ready (a cold start on a busy 2-core box). */
const startTimeoutMs = 60_000;

/**
 * Polls fn until it returns a truthy value or the deadline passes; the
 * error names what was awaited and the last failure seen.
 */
export async function waitFor(what, fn, { timeoutMs = 15_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message ?? last}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A password the controller's policy accepts (long, random, not common). */
export function strongPassword() {
  return `e2e-${randomBytes(12).toString('base64url')}-Pw`;
}

// Controllers still running when this process exits (a script that threw
// before stop()) are killed rather than left behind.
const running = new Map(); // process → data dir
process.on('exit', () => {
  for (const [p, dir] of running) {
    p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  // Playwright ends its browsers at exit; their profiles are ours.
  for (const b of openBrowsers) rmSync(b.profile, { recursive: true, force: true });
});

/**
 * Starts `opsconductor dev` in a fresh data dir on ports the kernel picks.
 * With changeAdminPassword (the default) it changes the bootstrap admin
 * password through the API, so tests log in with server.adminPassword and
 * are not sent to the forced password change; with false the admin still
 * has server.bootstrapPassword and must change it at first login.
 */
export async function startServer({ changeAdminPassword = true, extraArgs = [] } = {}) {
  if (!existsSync(binary)) {
    throw new Error(`controller binary ${binary} not found: run "make web build" in the repository root (or set OPSCONDUCTOR_BIN)`);
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), 'opsconductor-e2e-'));
  const args = ['dev', '--data-dir', dataDir, '--http-addr', '127.0.0.1:0', '--agent-addr', '127.0.0.1:0',
    '--raft-addr', '127.0.0.1:0', '--log-level', 'warn', ...extraArgs];
  const env = { ...process.env };
  delete env.OPSCONDUCTOR_BOOTSTRAP_ADMIN_PASSWORD;
  const proc = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.set(proc, dataDir);
  let output = '';
  let url = null;
  let exited = null;
  proc.stdout.on('data', (b) => {
    output += b;
    const m = output.match(/is up: (http:\/\/\S+)/);
    if (m && !url) url = m[1];
  });
  proc.stderr.on('data', (b) => {
    output += b;
  });
  proc.on('exit', (code, signal) => {
    exited = { code, signal };
    running.delete(proc);
  });
  const logs = () => output;
  const stop = async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      try {
        await waitFor('the controller to exit after SIGTERM', () => exited, { timeoutMs: 15_000 });
      } catch {
        proc.kill('SIGKILL');
        await waitFor('the controller to exit after SIGKILL', () => exited, { timeoutMs: 5_000 });
      }
    }
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    await waitFor('the controller to print its address', () => {
      if (exited) throw new Error(`the controller exited (${JSON.stringify(exited)}):\n${output}`);
      return url;
    }, { timeoutMs: startTimeoutMs });
    await waitFor(`${url}/health/ready`, async () => {
      if (exited) throw new Error(`the controller exited (${JSON.stringify(exited)}):\n${output}`);
      const res = await fetch(`${url}/health/ready`);
      return res.ok;
    }, { timeoutMs: startTimeoutMs });
    const bootstrapPassword = (await readFile(path.join(dataDir, 'bootstrap-admin-password'), 'utf8')).trim();
    const server = { url, dataDir, bootstrapPassword, adminPassword: bootstrapPassword, stop, logs, token: null };
    if (changeAdminPassword) await changeBootstrapPassword(server);
    return server;
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Changes the admin's bootstrap password through the API (what a test
 * that did not do it through the UI needs before it can call the API).
 * A no-op when it was already changed.
 */
export async function changeBootstrapPassword(server) {
  if (server.adminPassword !== server.bootstrapPassword) return;
  const first = await loginAPI(server.url, 'admin', server.bootstrapPassword);
  const next = strongPassword();
  const res = await call(server.url, first.access_token, 'POST', '/api/v1/me/password',
    { current_password: server.bootstrapPassword, new_password: next });
  if (!res.ok) throw new Error(`change the bootstrap admin password: HTTP ${res.status}: ${res.text}`);
  server.adminPassword = next;
  server.token = null;
}

async function loginAPI(url, username, password) {
  const res = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!res.ok) throw new Error(`login as ${username}: HTTP ${res.status}: ${await res.text()}`);
  return res.json();
}

async function call(url, token, method, p, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, ok: res.ok, body: json, text, headers: res.headers };
}

/** An admin bearer token for API setup calls (logged in once per server). */
export async function apiToken(server) {
  server.token ??= (await loginAPI(server.url, 'admin', server.adminPassword)).access_token;
  return server.token;
}

/**
 * Calls the API as the admin: returns {status, ok, body, text, headers} and
 * throws on a 4xx/5xx unless {allowError: true}.
 */
export async function api(server, method, p, body, { allowError = false, token } = {}) {
  const res = await call(server.url, token ?? (await apiToken(server)), method, p, body);
  if (!res.ok && !allowError) throw new Error(`${method} ${p}: HTTP ${res.status}: ${res.text}`);
  return res;
}

/**
 * Creates a user with the given roles and a password that need not be
 * changed; returns {id, username, password}.
 */
export async function createUser(server, { username, roles = ['viewer'], password = strongPassword() }) {
  const res = await api(server, 'POST', '/api/v1/users', {
    username,
    password,
    roles: roles.map((role) => ({ role })),
    must_change_password: false,
  });
  return { id: res.body.id, username, password };
}

/** The token of any user (for checking what the API lets them do). */
export async function userToken(server, username, password) {
  return (await loginAPI(server.url, username, password)).access_token;
}

const openBrowsers = new Set();

/**
 * Launches headless Chromium with a fresh profile. newPage(name) returns a
 * page that records console errors and page errors (see
 * assertNoConsoleErrors); close() ends the browser and removes the profile.
 */
export async function openBrowser() {
  if (!existsSync(chromiumPath)) throw new Error(`Chromium not found at ${chromiumPath} (apt-get install chromium, or set CHROMIUM)`);
  const profile = await mkdtemp(path.join(tmpdir(), 'opsconductor-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run'],
  });
  const handle = {
    browser: context,
    context,
    profile,
    async newPage(name = 'page') {
      const page = await context.newPage();
      page.e2eName = name;
      page.consoleErrors = [];
      page.on('console', (msg) => {
        if (msg.type() === 'error') page.consoleErrors.push(`console.error: ${msg.text()} (${msg.location().url ?? ''})`);
      });
      page.on('pageerror', (err) => page.consoleErrors.push(`page error: ${err.message}`));
      page.setDefaultTimeout(15_000);
      return page;
    },
    async close() {
      openBrowsers.delete(handle);
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
  openBrowsers.add(handle);
  return handle;
}

/**
 * Fails when the page logged console errors or threw. Expected errors
 * (a 403 a test provokes on purpose shows as "Failed to load resource")
 * can be let through with allow: [/regexp/].
 */
export function assertNoConsoleErrors(page, { allow = [] } = {}) {
  const seen = page.consoleErrors.filter((e) => !allow.some((re) => re.test(e)));
  page.consoleErrors.length = 0;
  if (seen.length) throw new Error(`${page.e2eName ?? 'page'}: ${seen.length} console error(s):\n  ${seen.join('\n  ')}`);
}

/**
 * Signs in through the login form and waits until the console (or, for a
 * user who must change their password, the change form) is shown.
 */
export async function login(page, server, { username = 'admin', password = server.adminPassword } = {}) {
  await page.goto(`${server.url}/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
  if (new URL(page.url()).pathname !== '/password') {
    await page.getByRole('navigation', { name: 'Sections' }).waitFor();
  }
}

/** Writes web/test-artifacts/<name>.png (the directory is gitignored). */
export async function screenshot(page, name) {
  await mkdir(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, `${name.replace(/[^a-zA-Z0-9_.-]+/g, '-')}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
