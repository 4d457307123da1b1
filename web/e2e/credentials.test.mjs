// Credentials: a secret typed into the console goes to the server once and
// never comes back — not in the page's HTML, not in any input's value, not
// in any API response the page receives, after save and on the detail
// page (also after a reload, and after the replace form is opened).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { api, assertNoConsoleErrors, login, openBrowser, screenshot, startServer, waitFor } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await openBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Every API response body the page receives, as text. */
function recordResponses(page) {
  const bodies = [];
  page.on('response', async (res) => {
    if (!new URL(res.url()).pathname.startsWith('/api/')) return;
    try {
      bodies.push({ url: res.url(), text: await res.text() });
    } catch {
      // A websocket upgrade or a redirect has no body to read.
    }
  });
  return bodies;
}

/** Fails if secret is anywhere the page shows or holds. */
async function assertSecretAbsent(page, secret, where) {
  const html = await page.content();
  assert.ok(!html.includes(secret), `${where}: the secret is in the page's HTML`);
  const text = await page.evaluate(() => document.body.innerText);
  assert.ok(!text.includes(secret), `${where}: the secret is in the page's text`);
  const values = await page.evaluate(() => [...document.querySelectorAll('input, textarea')].map((e) => e.value));
  assert.ok(!values.some((v) => v.includes(secret)), `${where}: an input still holds the secret`);
}

test('a credential secret is never shown after it is saved', async () => {
  const secret = `s3cret-${randomBytes(12).toString('hex')}`;
  const page = await browser.newPage('credentials');
  const responses = recordResponses(page);
  await login(page, server);
  await page.goto(`${server.url}/credentials`);
  await page.getByRole('button', { name: 'New credential' }).first().click();
  const form = page.getByRole('form', { name: 'New credential' });
  await form.getByLabel('Name', { exact: true }).fill('e2e-db-password');
  await form.getByLabel(/^Username/).fill('dbadmin');
  const input = form.getByLabel('Password', { exact: true });
  assert.equal(await input.getAttribute('type'), 'password', 'the secret input is masked');
  assert.equal(await input.getAttribute('autocomplete'), 'off', 'the browser is told not to remember it');
  await input.fill(secret);
  await page.getByRole('button', { name: 'Create credential' }).click();

  // Saving leads to the detail page, which shows metadata only.
  await page.waitForURL((u) => u.pathname === '/credentials/e2e-db-password');
  await page.getByRole('region', { name: 'Metadata' }).waitFor();
  assert.match(await page.getByRole('region', { name: 'Metadata' }).innerText(), /stored encrypted · write-only/);
  assert.equal(await page.getByRole('dialog').count(), 0, 'the form closed');
  await assertSecretAbsent(page, secret, 'after save');
  await screenshot(page, 'credentials-detail-after-save');

  // The replace form opens empty: the stored value is never filled in.
  await page.getByRole('button', { name: 'Edit or replace secret' }).click();
  const replace = page.getByRole('form', { name: 'Replace credential' });
  assert.equal(await replace.getByLabel(/^Password/).inputValue(), '');
  await assertSecretAbsent(page, secret, 'with the replace form open');
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();

  // A fresh load of the detail page and of the list.
  await page.reload();
  await page.getByRole('region', { name: 'Metadata' }).waitFor();
  await assertSecretAbsent(page, secret, 'the detail page after a reload');
  await page.goto(`${server.url}/credentials`);
  await page.getByRole('table', { name: 'Credentials' }).getByText('e2e-db-password').waitFor();
  await assertSecretAbsent(page, secret, 'the list');

  await waitFor('the API responses to be recorded', () => responses.some((r) => r.url.includes('/api/v1/credentials/e2e-db-password')));
  const leaks = responses.filter((r) => r.text.includes(secret)).map((r) => r.url);
  assert.deepEqual(leaks, [], 'no API response carries the secret');
  // The credential exists, with the username but no secret field.
  const got = await api(server, 'GET', '/api/v1/credentials/e2e-db-password');
  assert.equal(got.body.username, 'dbadmin');
  assert.ok(!got.text.includes(secret));
  assertNoConsoleErrors(page);
});

test('a credential is attached to a target with a role and detached again', async () => {
  const page = await browser.newPage('credentials-attach');
  await login(page, server);
  await page.goto(`${server.url}/credentials/e2e-db-password`);
  const form = page.getByRole('form', { name: 'Attach credential' });
  await form.getByLabel('Attach to name').fill('local');
  await form.getByLabel('Attachment role').fill('ssh');
  await form.getByRole('button', { name: 'Attach' }).click();
  const table = page.getByRole('table', { name: 'Attachments' });
  await waitFor('the attachment to be listed', async () => /target\s+local\s+ssh/.test(await table.innerText().catch(() => '')));
  await screenshot(page, 'credentials-attached');

  await table.getByRole('button', { name: 'Detach' }).click();
  await page.getByRole('dialog', { name: 'Detach this credential?' }).getByRole('button', { name: 'Detach' }).click();
  await page.getByText('Not attached anywhere.').waitFor();
  const got = await api(server, 'GET', '/api/v1/credentials/e2e-db-password');
  assert.equal((got.body.attachments ?? []).length, 0, 'the attachment is gone');
  assertNoConsoleErrors(page);
});
