// The runs pages end to end, against a real `opsconductor dev`: start the
// example job `hello` from its page and follow it to success in the run
// view; watch a slower job's lines arrive over the live stream while it
// runs; cancel a long run from the run view; download a run's log; and
// find runs in the list with its filters.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { api, apiToken, assertNoConsoleErrors, login, openBrowser, screenshot, startServer, waitFor } from './harness.mjs';

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

async function putJob(name, yaml) {
  const res = await fetch(`${server.url}/api/v1/jobs/${name}`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${await apiToken(server)}`, 'Content-Type': 'application/yaml' },
    body: yaml,
  });
  assert.ok(res.ok, `PUT job ${name}: HTTP ${res.status}: ${await res.text()}`);
}

async function startRun(job, body = {}) {
  return (await api(server, 'POST', `/api/v1/jobs/${job}/runs`, body)).body;
}

const statusOf = (page) => page.getByTestId('run-status').textContent();

/** Waits until the run view shows one of the given states. */
async function waitForStatus(page, states, timeoutMs = 30_000) {
  return waitFor(`the run to be ${states.join(' or ')}`, async () => {
    const s = await statusOf(page);
    return states.includes(s) ? s : false;
  }, { timeoutMs });
}

describe('runs', () => {
  it('starts the example job from its page and follows it to success in the run view', async () => {
    const page = await browser.newPage('runs-hello');
    await login(page, server);
    await page.goto(`${server.url}/jobs/hello`);
    await page.getByRole('button', { name: 'Run…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Start run' }).click();
    await page.waitForURL((u) => /^\/runs\/run_[0-9a-f]+$/.test(u.pathname));
    const runID = new URL(page.url()).pathname.split('/').pop();

    assert.equal(await waitForStatus(page, ['succeeded', 'failed', 'canceled']), 'succeeded');
    // The example greets, prints facts and says goodbye: three steps' lines.
    await waitFor('the greeting in the log', async () => (await page.getByTestId('log-line').allTextContents()).some((t) => t.includes('hello world from')));
    const lines = await page.getByTestId('log-line').allTextContents();
    assert.ok(lines.some((t) => t.includes(`see the run with: opsconductor run show ${runID}`)), `the last step's line is shown; got:\n${lines.join('\n')}`);
    // The graph and the matrix agree with the API.
    for (const step of ['greet', 'facts', 'done']) {
      await page.getByTestId(`run-node-${step}`).waitFor();
      assert.match(await page.getByTestId(`cell-local-${step}`).textContent(), /succeeded.*exit 0/);
    }
    const run = (await api(server, 'GET', `/api/v1/runs/${runID}`)).body;
    assert.equal(run.status, 'succeeded');
    await screenshot(page, 'runs-view-succeeded');
    assertNoConsoleErrors(page);
    await page.close();
  });

  it('shows lines as the step writes them, with ANSI colours, while the run is running', async () => {
    await putJob('ticker', `name: ticker
targets: {names: [local]}
steps:
  - id: tick
    uses: shell
    with:
      command: |
        for i in $(seq 1 40); do printf '\\033[1;32mtick\\033[0m %d\\n' $i; sleep 0.5; done
`);
    const page = await browser.newPage('runs-live');
    await login(page, server);
    const run = await startRun('ticker');
    await page.goto(`${server.url}/runs/${run.id}`);
    // Seen at least twice while the run is still running: the lines arrive
    // over the stream, not at the end.
    const first = await waitFor('a first tick while running', async () => {
      const n = await page.getByTestId('log-line').count();
      return n > 0 && (await statusOf(page)) === 'running' ? n : false;
    });
    const later = await waitFor('more ticks while still running', async () => {
      const n = await page.getByTestId('log-line').count();
      return n > first && (await statusOf(page)) === 'running' ? n : false;
    });
    assert.ok(later > first);
    assert.ok(later < 40, 'the run view did not wait for the whole output');
    await screenshot(page, 'runs-view-live');
    // The colour codes are rendered, not printed.
    const tick = page.getByTestId('log-line').first();
    assert.doesNotMatch(await tick.textContent(), /\[1;32m|\x1b/);
    const colour = await tick.locator('span', { hasText: /^tick$/ }).evaluate((el) => getComputedStyle(el).color);
    assert.notEqual(colour, await tick.evaluate((el) => getComputedStyle(el).color), 'the coloured word has its own colour');

    assert.equal(await waitForStatus(page, ['succeeded', 'failed', 'canceled'], 90_000), 'succeeded');
    await waitFor('all 40 ticks', async () => (await page.getByTestId('log-count').textContent()) === '40 lines');
    // Search finds and counts a line.
    await page.getByTestId('log-line').first().click();
    await page.keyboard.press('Control+f');
    await page.keyboard.type('tick 1');
    await waitFor('search matches', async () => (await page.locator('.log-matches').textContent()) === '1 of 11'); // 1, 10-19
    assertNoConsoleErrors(page);
    await page.close();
  });

  it('cancels a long run from the run view', async () => {
    await putJob('sleeper', `name: sleeper
targets: {names: [local]}
steps:
  - id: nap
    uses: shell
    with: {command: "echo going to sleep; sleep 60; echo woke up"}
  - id: after
    uses: shell
    needs: [nap]
    with: {command: "echo never"}
`);
    const page = await browser.newPage('runs-cancel');
    await login(page, server);
    const run = await startRun('sleeper');
    await page.goto(`${server.url}/runs/${run.id}`);
    await waitFor('the nap to start', async () => (await page.getByTestId('log-line').allTextContents()).some((t) => t.includes('going to sleep')));
    assert.equal(await statusOf(page), 'running');
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel run' }).click();
    const started = Date.now();
    assert.equal(await waitForStatus(page, ['succeeded', 'failed', 'canceled']), 'canceled');
    assert.ok(Date.now() - started < 30_000, 'the cancel took effect long before the step would have ended');
    await page.getByTestId('run-reason').getByText(/canceled/).waitFor();
    assert.match(await page.getByTestId('cell-local-after').textContent(), /canceled/);
    const body = (await api(server, 'GET', `/api/v1/runs/${run.id}`)).body;
    assert.equal(body.status, 'canceled');
    // A finished run can be rerun.
    await page.getByRole('button', { name: 'Rerun all' }).waitFor();
    await screenshot(page, 'runs-view-canceled');
    assertNoConsoleErrors(page);
    await page.close();
  });

  it('says why a run waits, approves it, shows the failure with its exit code and resumes it', async () => {
    await putJob('deploy', `name: deploy
params:
  - {name: version, type: string, default: "1.2.3"}
  - {name: api_key, type: string, secret: true}
targets: {names: [local]}
steps:
  - id: build
    uses: shell
    with: {command: "echo building \${{ params.version }}"}
  - id: approve
    uses: approval
    needs: [build]
    with: {message: "Ship it?", timeout: 1h}
  - id: ship
    uses: shell
    needs: [approve]
    with: {command: "echo shipping; exit 3"}
`);
    const page = await browser.newPage('runs-approval');
    await login(page, server);
    const run = await startRun('deploy', { params: { api_key: 'hunter2-secret' } });
    await page.goto(`${server.url}/runs/${run.id}`);
    assert.equal(await waitForStatus(page, ['waiting']), 'waiting');
    await page.getByTestId('run-reason').getByText(/waiting for approval of step approve/).waitFor();
    const approval = page.getByTestId('approval-approve');
    await approval.getByText('Ship it?').waitFor();
    // The secret parameter is masked; the plain one is shown.
    assert.ok(!(await page.content()).includes('hunter2-secret'), 'the secret parameter never reaches the page');
    await page.locator('table.params').getByText('1.2.3').waitFor();
    await screenshot(page, 'runs-view-waiting-approval');

    await approval.getByLabel('Comment on approve').fill('go ahead');
    await approval.getByRole('button', { name: 'Approve' }).click();
    assert.equal(await waitForStatus(page, ['succeeded', 'failed', 'canceled']), 'failed');
    await waitFor('the exit code in the matrix', async () => /failed.*exit 3/.test(await page.getByTestId('cell-local-ship').textContent()));
    await page.getByText(/go ahead/).waitFor();
    const api1 = (await api(server, 'GET', `/api/v1/runs/${run.id}`)).body;
    assert.equal(api1.approvals[0].status, 'approved');
    assert.equal(api1.approvals[0].comment, 'go ahead');

    // Clicking the failed cell jumps the log to that step.
    await page.getByTestId('cell-local-ship').click();
    await waitFor('the ship line selected', async () => (await page.locator('.log-selected').allTextContents()).some((t) => t.includes('shipping')));

    // Resume keeps build and the approval and runs ship again.
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.waitForURL((u) => u.pathname.startsWith('/runs/') && !u.pathname.endsWith(run.id));
    assert.equal(await waitForStatus(page, ['succeeded', 'failed', 'canceled']), 'failed');
    // The state arrives on the run's stream; the matrix cells follow
    // when the attempts' topic refreshes the run, a moment later.
    await waitFor('the resumed run\'s matrix', async () => /succeeded/.test(await page.getByTestId('cell-local-build').textContent())
      && /exit 3/.test(await page.getByTestId('cell-local-ship').textContent()));
    assertNoConsoleErrors(page);
    await page.close();
  });

  it('downloads the text log of a finished run', async () => {
    const run = await startRun('hello', { params: { who: 'download' } });
    await waitFor('the hello run to finish', async () => (await api(server, 'GET', `/api/v1/runs/${run.id}`)).body.status === 'succeeded', { timeoutMs: 30_000 });
    const page = await browser.newPage('runs-download');
    await login(page, server);
    await page.goto(`${server.url}/runs/${run.id}`);
    await page.getByTestId('log-line').first().waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()]);
    assert.equal(download.suggestedFilename(), `${run.id}.log`);
    const text = await readFile(await download.path(), 'utf8');
    assert.match(text, /^local greet \| hello download from /m);
    assert.match(text, /^local done \| greeted download;/m);
    assertNoConsoleErrors(page);
    await page.close();
  });

  it('lists runs and filters them by state and job', async () => {
    const page = await browser.newPage('runs-list');
    await login(page, server);
    await page.goto(`${server.url}/runs`);
    await page.getByRole('table').waitFor();
    const all = await page.locator('tbody tr').count();
    assert.ok(all >= 4, `the runs of the tests above are listed (${all})`);
    await page.getByLabel('State').selectOption('canceled');
    await waitFor('only canceled runs', async () => {
      const states = await page.locator('tbody tr td:nth-child(3) [data-status]').evaluateAll((els) => els.map((e) => e.getAttribute('data-status')));
      return states.length > 0 && states.every((s) => s === 'canceled');
    });
    assert.match(page.url(), /status=canceled/, 'the filter is in the URL');
    await page.getByLabel('State').selectOption('');
    await page.getByLabel('Job').selectOption('hello');
    await waitFor('only hello runs', async () => {
      const jobs = await page.locator('tbody tr td:nth-child(2) a').allTextContents();
      return jobs.length >= 2 && jobs.every((j) => j === 'hello');
    });
    await screenshot(page, 'runs-list');
    await page.locator('tbody tr td:first-child a').first().click();
    await page.getByTestId('run-status').waitFor();
    assertNoConsoleErrors(page);
    await page.close();
  });
});
