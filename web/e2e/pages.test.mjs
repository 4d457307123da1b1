// Visits every main page as the admin, takes a screenshot of each
// (web/test-artifacts/page-<name>.png) and fails on console errors. Add a
// page to `pages` when it lands; `ready` is a locator that only exists
// once the page has loaded its data.
import { after, before, test } from 'node:test';
import { api, assertNoConsoleErrors, login, openBrowser, screenshot, startServer, strongPassword, waitFor } from './harness.mjs';

/** @type {{name: string, path: string, ready: (page: import('playwright-core').Page) => import('playwright-core').Locator}[]} */
const pages = [
  { name: 'dashboard', path: '/', ready: (p) => p.getByRole('main') },
  { name: 'runs', path: '/runs', ready: (p) => p.getByRole('main') },
  { name: 'agents', path: '/agents', ready: (p) => p.getByRole('main') },
  { name: 'jobs', path: '/jobs', ready: (p) => p.getByRole('main') },
  { name: 'job-designer-new', path: '/jobs/new', ready: (p) => p.getByRole('main') },
  { name: 'schedules', path: '/schedules', ready: (p) => p.getByRole('main') },
  { name: 'notifications', path: '/notifications', ready: (p) => p.getByRole('main') },
  { name: 'notifications-channels', path: '/notifications/channels', ready: (p) => p.getByRole('main') },
  { name: 'notifications-templates', path: '/notifications/templates', ready: (p) => p.getByRole('main') },
  { name: 'notifications-rules', path: '/notifications/rules', ready: (p) => p.getByRole('main') },
  { name: 'notifications-deliveries', path: '/notifications/deliveries', ready: (p) => p.getByRole('main') },
  { name: 'notifications-dead-letters', path: '/notifications/dead-letters', ready: (p) => p.getByRole('main') },
  { name: 'notifications-triggers', path: '/notifications/triggers', ready: (p) => p.getByRole('main') },
  { name: 'inventory', path: '/inventory', ready: (p) => p.getByRole('main') },
  { name: 'inventory-groups', path: '/inventory/groups', ready: (p) => p.getByRole('main') },
  { name: 'credentials', path: '/credentials', ready: (p) => p.getByRole('main') },
  { name: 'discovery', path: '/discovery', ready: (p) => p.getByRole('main') },
  { name: 'admin', path: '/admin', ready: (p) => p.getByRole('main') },
  { name: 'audit', path: '/audit', ready: (p) => p.getByRole('main') },
  { name: 'cluster', path: '/cluster', ready: (p) => p.getByRole('main') },
];

let server;
let browser;
let page;
/** What the page's live-update socket (/api/v1/events) received. */
const liveFrames = [];

before(async () => {
  server = await startServer();
  browser = await openBrowser();
  page = await browser.newPage('pages');
  page.on('websocket', (ws) => {
    if (ws.url().endsWith('/api/v1/events')) ws.on('framereceived', (f) => liveFrames.push(JSON.parse(String(f.payload))));
  });
  await login(page, server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

for (const p of pages) {
  test(`the ${p.name} page (${p.path}) renders without console errors`, async () => {
    await page.goto(server.url + p.path);
    await page.getByRole('navigation', { name: 'Sections' }).waitFor();
    await p.ready(page).waitFor();
    // Every query the page started has settled: no spinner is left and
    // no error box is shown.
    await page.locator('main .spinner').first().waitFor({ state: 'detached' });
    await page.waitForLoadState('networkidle');
    const errors = await page.locator('main .error-box').allInnerTexts();
    if (errors.length) throw new Error(`${p.path} shows an error: ${errors.join(' | ')}`);
    await screenshot(page, `page-${p.name}`);
    assertNoConsoleErrors(page);
  });
}

test('a change made elsewhere reaches an open page without a reload (live updates)', async () => {
  await page.goto(`${server.url}/admin`);
  await page.getByRole('navigation', { name: 'Sections' }).waitFor();
  await waitFor('the events socket to say hello', () => liveFrames.some((m) => m.type === 'hello'));
  const hello = liveFrames.find((m) => m.type === 'hello');
  if (!hello.topics.includes('users')) throw new Error(`the admin does not hear about users: ${hello.topics}`);
  await page.locator('main .spinner').first().waitFor({ state: 'detached' });
  const username = `live-${Date.now().toString(36)}`;
  await api(server, 'POST', '/api/v1/users', { username, password: strongPassword(), roles: ['viewer'] });
  await waitFor('a "changed" message naming users', () => liveFrames.some((m) => m.type === 'changed' && m.topics.includes('users')));
  // The users list refetched on its own: the new user is shown.
  await page.getByRole('main').getByText(username).first().waitFor();
  await screenshot(page, 'live-update-users');
  assertNoConsoleErrors(page);
});
