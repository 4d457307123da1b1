// Measures how long the console takes to become usable on loopback: from
// navigation start to the dashboard's content being visible (the session
// restored from its cookie, the dashboard chunk loaded, its data shown, no
// spinner left), read from Chromium's performance timeline. Runs cold
// (browser cache cleared) and warm (hashed assets cached), prints the
// median of each, then the bundle sizes.
//
//   make web build && cd web && node scripts/loadtime.mjs [--runs 7]
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { login, openBrowser, startServer } from '../e2e/harness.mjs';

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] || 7);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

const server = await startServer();
const browser = await openBrowser();
try {
  const page = await browser.newPage('loadtime');
  await login(page, server); // leaves the session cookie in the profile
  const cdp = await browser.context.newCDPSession(page);
  await cdp.send('Network.enable');

  const measure = async () => {
    await page.goto(`${server.url}/`, { waitUntil: 'commit' });
    // Polled on every animation frame in the page; the mark is taken at
    // the first frame where the dashboard shows its content.
    await page.waitForFunction(() => {
      const main = document.querySelector('main');
      if (!main || main.querySelector('.spinner') || !main.innerText.trim()) return false;
      if (!performance.getEntriesByName('dashboard-visible').length) performance.mark('dashboard-visible');
      return true;
    }, undefined, { polling: 'raf', timeout: 30_000 });
    return page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const res = performance.getEntriesByType('resource');
      return {
        visible: performance.getEntriesByName('dashboard-visible')[0].startTime,
        domContentLoaded: nav.domContentLoadedEventEnd,
        requests: res.length + 1,
        transferred: res.reduce((n, r) => n + (r.transferSize || 0), nav.transferSize || 0),
      };
    });
  };

  const results = { cold: [], warm: [] };
  for (let i = 0; i < runs; i++) {
    await cdp.send('Network.clearBrowserCache');
    results.cold.push(await measure());
    results.warm.push(await measure());
  }
  for (const [name, rs] of Object.entries(results)) {
    const v = rs.map((r) => r.visible);
    console.log(
      `${name.padEnd(5)} load → dashboard visible: median ${median(v).toFixed(0)} ms (min ${Math.min(...v).toFixed(0)}, max ${Math.max(...v).toFixed(0)}, ${runs} runs); ` +
        `DOMContentLoaded ${median(rs.map((r) => r.domContentLoaded)).toFixed(0)} ms; ` +
        `${median(rs.map((r) => r.requests))} requests, ${(median(rs.map((r) => r.transferred)) / 1024).toFixed(1)} KB transferred`,
    );
  }
} finally {
  await browser.close();
  await server.stop();
}

console.log('');
execFileSync(process.execPath, [path.join(path.dirname(fileURLToPath(import.meta.url)), 'size.mjs')], { stdio: 'inherit' });
