// Visits every main page as the admin, takes a screenshot of each
// (web/test-artifacts/page-<name>.png) and fails on console errors. Add a
// page to `pages` when it lands; `ready` is a locator that only exists
// once the page has loaded its data.
import { after, before, test } from 'node:test';
import { assertNoConsoleErrors, login, openBrowser, screenshot, startServer } from './harness.mjs';

/** @type {{name: string, path: string, ready: (page: import('playwright-core').Page) => import('playwright-core').Locator}[]} */
const pages = [
  { name: 'dashboard', path: '/', ready: (p) => p.getByRole('main') },
  { name: 'runs', path: '/runs', ready: (p) => p.getByRole('main') },
  { name: 'agents', path: '/agents', ready: (p) => p.getByRole('main') },
  { name: 'jobs', path: '/jobs', ready: (p) => p.getByRole('main') },
  { name: 'job-designer-new', path: '/jobs/new', ready: (p) => p.getByRole('main') },
  { name: 'schedules', path: '/schedules', ready: (p) => p.getByRole('main') },
  { name: 'notifications', path: '/notifications', ready: (p) => p.getByRole('main') },
  { name: 'inventory', path: '/inventory', ready: (p) => p.getByRole('main') },
  { name: 'credentials', path: '/credentials', ready: (p) => p.getByRole('main') },
  { name: 'discovery', path: '/discovery', ready: (p) => p.getByRole('main') },
  { name: 'admin', path: '/admin', ready: (p) => p.getByRole('main') },
  { name: 'audit', path: '/audit', ready: (p) => p.getByRole('main') },
  { name: 'cluster', path: '/cluster', ready: (p) => p.getByRole('main') },
];

let server;
let browser;
let page;

before(async () => {
  server = await startServer();
  browser = await openBrowser();
  page = await browser.newPage('pages');
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
