// Signing in, the first-login password change, what a viewer may see, and
// signing out, against a real controller.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, assertNoConsoleErrors, changeBootstrapPassword, createUser, login, openBrowser, screenshot, startServer, strongPassword, userToken,
} from './harness.mjs';

let server;
let browser;

before(async () => {
  // The admin keeps the generated bootstrap password: the first test
  // changes it through the UI.
  server = await startServer({ changeAdminPassword: false });
  browser = await openBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the first login with the bootstrap password forces a password change, then opens the console', async () => {
  const page = await browser.newPage('first-login');
  await login(page, server, { username: 'admin', password: server.bootstrapPassword });
  assert.equal(new URL(page.url()).pathname, '/password', 'a user who must change their password is sent to /password');
  // The console is not reachable until the password is changed.
  await page.goto(`${server.url}/jobs`);
  await page.waitForURL((u) => u.pathname === '/password');

  const next = strongPassword();
  await page.getByLabel(/current password/i).fill(server.bootstrapPassword);
  await page.getByLabel(/^new password/i).fill(next);
  await page.getByLabel(/confirm/i).fill(next);
  await screenshot(page, 'auth-change-password');
  await page.getByRole('button', { name: /change password|save|continue/i }).click();
  await page.getByRole('navigation', { name: 'Sections' }).waitFor();
  assert.notEqual(new URL(page.url()).pathname, '/password');
  server.adminPassword = next;

  // The API agrees: the old password is gone, the new one works and no
  // change is pending.
  const old = await fetch(`${server.url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: server.bootstrapPassword }),
  });
  assert.equal(old.status, 401, 'the bootstrap password no longer signs in');
  const me = await api(server, 'GET', '/api/v1/me');
  assert.equal(me.body.user.must_change_password, false);
  assertNoConsoleErrors(page);
  await page.close();
});

test('a viewer sees no admin sections, is refused admin pages and the admin API, and can sign out', async () => {
  // Independent of the test above: if it failed before the change, the
  // API setup here still needs the admin's password changed.
  await changeBootstrapPassword(server);
  const viewer = await createUser(server, { username: 'vera', roles: ['viewer'] });
  const page = await browser.newPage('viewer');
  await login(page, server, viewer);

  const nav = page.getByRole('navigation', { name: 'Sections' });
  for (const allowed of ['Dashboard', 'Runs', 'Jobs', 'Inventory']) {
    await nav.getByRole('link', { name: allowed, exact: true }).waitFor();
  }
  for (const hidden of ['Users & access', 'Audit log', 'Cluster']) {
    assert.equal(await nav.getByRole('link', { name: hidden, exact: true }).count(), 0, `the sidebar hides ${hidden}`);
  }
  await screenshot(page, 'auth-viewer-sidebar');

  // A direct URL to an admin page shows that it is not permitted.
  await page.goto(`${server.url}/admin`);
  await page.getByText(/not permitted/i).first().waitFor();
  await screenshot(page, 'auth-viewer-admin-refused');

  // The API refuses as well.
  const token = await userToken(server, viewer.username, viewer.password);
  const users = await api(server, 'GET', '/api/v1/users', undefined, { token, allowError: true });
  assert.equal(users.status, 403, `GET /api/v1/users as a viewer: ${users.text}`);
  assert.equal(users.body?.error?.code, 'forbidden');

  // Sign out: back at /login, and the console needs a new sign-in.
  await page.goto(`${server.url}/`);
  await nav.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL((u) => u.pathname === '/login');
  await page.goto(`${server.url}/jobs`);
  await page.waitForURL((u) => u.pathname === '/login');
  await page.getByLabel('Username').waitFor();
  // A page that was denied on purpose logs the 403 of its data request.
  assertNoConsoleErrors(page, { allow: [/status of 403/] });
  await page.close();
});
