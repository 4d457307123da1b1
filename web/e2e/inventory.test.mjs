// Inventory: targets added by a CSV import with one bad row. The dry run
// must show that row's error (row number, column and the server's
// message) and nothing written; importing the valid rows must then list
// them, and the bad one must stay out.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
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

test('a CSV import with one bad row: the dry run names the row, then the valid rows are imported', async () => {
  // SSH targets are relayed by an agent: the dev server's own is named "local".
  const agents = await api(server, 'GET', '/api/v1/agents');
  const relay = agents.body.items[0]?.name;
  assert.ok(relay, 'the dev server has its local agent');
  const csv = [
    'name,addresses,via,tags,groups',
    `e2e-web-1,10.20.0.11,${relay},env=prod;role=web,`,
    `e2e-web-2,bad_address!,${relay},env=prod,`,
    `e2e-db-1,10.20.0.21,${relay},role=db,`,
  ].join('\n');

  const page = await browser.newPage('inventory-import');
  await login(page, server);
  await page.goto(`${server.url}/inventory`);
  await page.getByRole('button', { name: 'Import…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Import targets' });
  await dialog.getByLabel('Import data').fill(csv);
  await dialog.getByRole('button', { name: 'Check (dry run)' }).click();

  const summary = dialog.getByTestId('import-summary');
  await summary.waitFor();
  assert.match(await summary.innerText(), /Dry run: 2 of 3 rows valid, 1 with problems\. Nothing was written yet\./);
  const bad = dialog.getByTestId('import-row-2');
  const badText = await bad.innerText();
  assert.match(badText, /e2e-web-2/);
  assert.match(badText, /Row 2, column addresses: .*bad_address!.* is neither an IP address nor a valid host name/);
  for (const n of [1, 3]) assert.match(await dialog.getByTestId(`import-row-${n}`).innerText(), /\bok\b/);
  await screenshot(page, 'inventory-import-dry-run');

  // Nothing was written by the dry run.
  const before = await api(server, 'GET', '/api/v1/targets?q=e2e-');
  assert.equal(before.body.items.length, 0, 'a dry run writes nothing');

  await dialog.getByRole('button', { name: 'Import 2 valid rows' }).click();
  await waitFor('the import result', async () => /Imported: 2 created, 1 skipped with problems\./.test(await summary.innerText()));
  assert.match(await dialog.getByTestId('import-row-2').innerText(), /skipped/);
  await screenshot(page, 'inventory-import-done');
  await dialog.getByRole('button', { name: 'Close' }).last().click();

  // The list shows the two imported targets, not the bad one.
  const table = page.getByRole('table', { name: 'Targets' });
  await waitFor('the imported targets in the list', async () => {
    const text = await table.innerText();
    return text.includes('e2e-web-1') && text.includes('e2e-db-1');
  });
  assert.doesNotMatch(await table.innerText(), /e2e-web-2/);

  // Server-side search narrows the list.
  await page.getByLabel('Search targets').fill('e2e-db');
  await waitFor('the search to narrow the list to e2e-db-1', async () => {
    const text = await table.innerText();
    return text.includes('e2e-db-1') && !text.includes('e2e-web-1');
  });
  await screenshot(page, 'inventory-search');

  const after = await api(server, 'GET', '/api/v1/targets?q=e2e-');
  assert.deepEqual(after.body.items.map((t) => t.name).sort(), ['e2e-db-1', 'e2e-web-1']);
  assertNoConsoleErrors(page);
});

test('a target detail shows its relationships and draws the graph', async () => {
  const web = (await api(server, 'GET', '/api/v1/targets?q=e2e-web-1')).body.items[0];
  assert.ok(web, 'e2e-web-1 exists (imported by the previous test)');
  await api(server, 'POST', '/api/v1/relationships', { from: 'e2e-web-1', type: 'depends_on', to: 'e2e-db-1' });

  const page = await browser.newPage('inventory-detail');
  await login(page, server);
  await page.goto(`${server.url}/inventory/targets/${web.id}`);
  const rels = page.getByRole('table', { name: 'Relationships' });
  await rels.waitFor();
  assert.match(await rels.innerText(), /e2e-web-1\s+depends_on\s+e2e-db-1/);
  // The graph canvas lays out both targets.
  await page.getByTestId('graph-node-e2e-db-1').waitFor();
  await page.getByTestId('graph-node-e2e-web-1').waitFor();
  await screenshot(page, 'inventory-target-detail');
  assertNoConsoleErrors(page);
});
