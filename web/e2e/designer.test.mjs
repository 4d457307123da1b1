// The visual designer end to end, against a real `opsconductor dev`: build
// a three-step job by dragging steps from the palette and connecting them
// (never by pasting YAML), save it, run it on the dev server's built-in
// `local` agent, watch its log lines arrive live and the run succeed; then
// break a step and see the server's validation error on its node.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { api, assertNoConsoleErrors, login, openBrowser, screenshot, startServer, waitFor } from './harness.mjs';

let server;
let browser;

// The validate endpoint answers 400 with the problems while the definition
// is incomplete: that is the designer working, and Chromium logs each one.
// The run dialog's server-side check answers 400 for a value the form let through.
const runRefusal = /status of 400 \(Bad Request\) \(\S+\/api\/v1\/jobs\/e2e-params\/runs\)/;
const validateRefusals = /status of 400 \(Bad Request\) \(\S+\/api\/v1\/jobs\/[^/\s]+\/validate\)/;

before(async () => {
  server = await startServer();
  browser = await openBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Drags a palette entry onto the canvas at (x, y) relative to the canvas. */
async function dropStep(page, kind, x, y) {
  const item = page.getByTestId(`step-palette-item-${kind}`);
  const pane = page.locator('.designer-canvas');
  await item.dragTo(pane, { targetPosition: { x, y } });
}

/** Drags from one node's source handle (bottom) to another's target handle (top) with the mouse. */
async function connectNodes(page, from, to) {
  const src = page.getByTestId(`designer-node-${from}`).locator('.react-flow__handle.source');
  const dst = page.getByTestId(`designer-node-${to}`).locator('.react-flow__handle.target');
  const a = await src.boundingBox();
  const b = await dst.boundingBox();
  assert.ok(a && b, `handles of ${from} and ${to} are on screen`);
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 5 });
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 5 });
  await page.mouse.up();
}

/** Clicks an empty spot of the canvas, which shows the job's settings. */
async function selectJob(page) {
  const box = await page.locator('.designer-canvas').boundingBox();
  await page.mouse.click(box.x + box.width - 30, box.y + 20);
  await page.getByRole('heading', { name: 'Job', exact: true }).waitFor();
}

async function yamlOf(page) {
  await page.getByRole('tab', { name: 'YAML' }).click();
  const text = await page.getByLabel('Job YAML').inputValue();
  await page.getByRole('tab', { name: 'Canvas' }).click();
  return text;
}

describe('visual designer', () => {
  it('builds a three-step job by dragging and connecting, saves it, runs it on local and watches it succeed', async () => {
    const page = await browser.newPage('designer-build');
    await login(page, server);
    await page.goto(`${server.url}/jobs/new`);
    await page.getByTestId('step-palette-item-shell').waitFor();
    await screenshot(page, 'designer-empty');

    await dropStep(page, 'shell', 300, 60);
    await page.getByTestId('designer-node-shell').waitFor();
    await dropStep(page, 'shell', 300, 200);
    await page.getByTestId('designer-node-shell-2').waitFor();
    await dropStep(page, 'shell', 300, 340);
    await page.getByTestId('designer-node-shell-3').waitFor();

    await connectNodes(page, 'shell', 'shell-2');
    await connectNodes(page, 'shell-2', 'shell-3');
    await waitFor('two edges on the canvas', async () => (await page.locator('.react-flow__edge').count()) === 2);

    for (const [id, n] of [['shell', 1], ['shell-2', 2], ['shell-3', 3]]) {
      await page.getByTestId(`designer-node-${id}`).click();
      const cmd = page.getByLabel('command', { exact: true });
      // The last step pauses long enough to see its first line while the run is still going.
      await cmd.fill(`echo step-${n}-first; sleep ${n === 3 ? 4 : 0.5}; echo step-${n}-second`);
    }
    await selectJob(page);
    await page.getByLabel('Job name').fill('e2e-three');
    await page.getByLabel('Target names').fill('local');

    // The connections are the job's needs.
    const yaml = await yamlOf(page);
    assert.match(yaml, /- id: shell-2\n\s+uses: shell\n\s+with:\n\s+command: .*\n\s+needs:\n\s+- shell\n/);
    assert.match(yaml, /- id: shell-3\n\s+uses: shell\n\s+with:\n\s+command: .*\n\s+needs:\n\s+- shell-2\n/);

    await page.locator('.badge[data-status="valid"]').waitFor();
    await screenshot(page, 'designer-three-steps');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByTestId('save-result').filter({ hasText: 'Saved version 1' }).waitFor();
    await page.waitForURL(/\/jobs\/e2e-three\/edit$/);
    const saved = (await api(server, 'GET', '/api/v1/jobs/e2e-three')).body;
    assert.deepEqual(saved.version.spec.steps.map((s) => [s.id, s.needs ?? []]), [['shell', []], ['shell-2', ['shell']], ['shell-3', ['shell-2']]]);

    await page.goto(`${server.url}/jobs/e2e-three`);
    await page.getByRole('button', { name: 'Run…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Start run' }).click();
    await page.waitForURL(/\/runs\/run_[0-9a-f]+$/);
    // Live: step 3's first line shows while the run is still running.
    await page.getByTestId('log-line').filter({ hasText: 'step-3-first' }).waitFor({ timeout: 30_000 });
    assert.notEqual((await page.getByTestId('run-status').first().textContent())?.trim(), 'succeeded', 'lines arrive before the run ends');
    assert.equal(await page.getByTestId('log-line').filter({ hasText: 'step-3-second' }).count(), 0);
    await waitFor('the run to succeed', async () => (await page.getByTestId('run-status').first().textContent())?.trim() === 'succeeded', { timeoutMs: 60_000 });
    await waitFor('all six log lines', async () => {
      const lines = await page.getByTestId('log-line').allTextContents();
      return ['step-1-first', 'step-1-second', 'step-2-first', 'step-2-second', 'step-3-first', 'step-3-second'].every((w) => lines.some((l) => l.includes(w)));
    }, { timeoutMs: 15_000 });
    await screenshot(page, 'designer-run-succeeded');
    assertNoConsoleErrors(page, { allow: [validateRefusals] });
  });

  it('shows a validation error on the node of a broken step while typing', async () => {
    await api(server, 'PUT', '/api/v1/jobs/e2e-broken', {
      name: 'e2e-broken',
      targets: { names: ['local'] },
      steps: [{ id: 'first', uses: 'shell', with: { command: 'true' } }, { id: 'second', uses: 'shell', with: { command: 'true' }, needs: ['first'] }],
    });
    const page = await browser.newPage('designer-broken');
    await login(page, server);
    await page.goto(`${server.url}/jobs/e2e-broken/edit`);
    await page.getByTestId('designer-node-second').click();
    await page.locator('.badge[data-status="valid"]').waitFor();
    await page.getByRole('textbox', { name: 'Needs', exact: true }).fill('first, ghost');
    const err = page.getByTestId('designer-node-second').getByTestId('node-error');
    await err.waitFor();
    assert.match(await err.textContent(), /unknown step "ghost"/);
    assert.equal(await page.getByTestId('designer-node-first').getByTestId('node-error').count(), 0);
    await screenshot(page, 'designer-node-error');

    // Undo takes the change back (and the error with it); redo restores both.
    await page.locator('.react-flow__pane').click({ position: { x: 10, y: 10 } });
    await page.keyboard.press('Control+z');
    await err.waitFor({ state: 'detached' });
    await page.keyboard.press('Control+Shift+z');
    await err.waitFor();

    // Leaving with unsaved changes asks first.
    await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Jobs', exact: true }).click();
    const ask = page.getByRole('alertdialog', { name: 'Unsaved changes' });
    await ask.getByRole('button', { name: 'Stay' }).click();
    assert.match(page.url(), /\/jobs\/e2e-broken\/edit$/);
    await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Jobs', exact: true }).click();
    await ask.getByRole('button', { name: 'Leave' }).click();
    await page.waitForURL(/\/jobs$/);
    assertNoConsoleErrors(page, { allow: [validateRefusals] });
  });
});

describe('job detail and schedules', () => {
  it('diffs two versions, checks run parameters, and schedules the job with its next fire times', async () => {
    const v1 = { name: 'e2e-params', targets: { names: ['local'] }, params: [{ name: 'who', required: true }, { name: 'count', type: 'integer', default: 2, min: 1 }],
      steps: [{ id: 'hello', uses: 'shell', with: { command: 'echo hello ${{ params.who }}' } }] };
    await api(server, 'PUT', '/api/v1/jobs/e2e-params', v1);
    await api(server, 'PUT', '/api/v1/jobs/e2e-params', { ...v1, description: 'second', steps: [{ ...v1.steps[0], timeout: '1m' }] });
    const page = await browser.newPage('job-detail');
    await login(page, server);
    await page.goto(`${server.url}/jobs/e2e-params`);
    await page.getByTestId('diff-stats').waitFor();
    assert.match(await page.getByTestId('diff-stats').textContent(), /^\+\d+ −\d+ lines$/);
    assert.ok((await page.locator('.diff-add').count()) > 0, 'added lines are shown');
    await page.getByRole('combobox', { name: 'From', exact: true }).selectOption('2');
    await page.getByText('The two versions read the same.').waitFor();
    await screenshot(page, 'job-detail');

    // The form checks what it can; the server checks the rest, per field.
    await page.getByRole('button', { name: 'Run…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('button', { name: 'Start run' }).click();
    await dialog.getByText('required').waitFor();
    await dialog.getByLabel('who').fill('e2e');
    await dialog.getByLabel('count').fill('0');
    await dialog.getByRole('button', { name: 'Start run' }).click();
    await dialog.getByText('must be at least 1').waitFor();
    await dialog.getByLabel('count').fill('3');
    await dialog.getByRole('button', { name: 'Start run' }).click();
    await page.waitForURL(/\/runs\/run_[0-9a-f]+$/);

    await page.goto(`${server.url}/schedules`);
    await page.getByRole('button', { name: 'New schedule' }).first().click();
    await page.getByLabel('Schedule name').fill('e2e-nightly');
    await page.getByLabel('Job', { exact: true }).selectOption('e2e-params');
    await page.getByLabel('Parameter who').fill('cron');
    await page.getByLabel('Cron').fill('0 2 * * *');
    await page.getByLabel('Time zone').fill('Europe/Paris');
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    const row = page.getByRole('row').filter({ hasText: 'e2e-nightly' });
    await row.locator('ol.fires li').nth(4).waitFor();
    assert.match(await row.locator('ol.fires li').first().textContent(), / 02:00 \+0[12]:00/);
    const stored = (await api(server, 'GET', '/api/v1/schedules/e2e-nightly')).body;
    assert.deepEqual([stored.job, stored.params, stored.timezone], ['e2e-params', { who: 'cron' }, 'Europe/Paris']);
    await screenshot(page, 'schedules');
    await page.getByRole('button', { name: 'Disable e2e-nightly' }).click();
    await row.getByText('paused').waitFor();
    await page.getByRole('button', { name: 'Delete e2e-nightly' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached' });
    assertNoConsoleErrors(page, { allow: [validateRefusals, runRefusal] });
  });
});
