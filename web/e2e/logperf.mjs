// Measures the run view's log viewer while a real job prints fast: a shell
// step writes RATE lines/s (default 10,000) for SECONDS (default 10) on the
// dev server's built-in agent, the lines travel agent → controller → live
// stream websocket → the viewer, and the page records every animation
// frame with requestAnimationFrame. It prints frame-time percentiles,
// dropped frames, the line rate the viewer actually received, and how
// long a search over everything takes.
//
//   node e2e/logperf.mjs                 starts its own controller (harness.mjs; needs ../bin/opsconductor
//                                        built with the UI embedded: make build)
//   LOGPERF_URL=http://127.0.0.1:4304 LOGPERF_USER=admin LOGPERF_PASSWORD=… node e2e/logperf.mjs
//                                        measures against a running UI + API instead (e.g. vite preview
//                                        proxying a dev controller)
//
// RATE, SECONDS and LOGPERF_JSON=1 (print the figures as one JSON line) tune it.

import { chromium } from 'playwright-core';
import { loadavg, cpus } from 'node:os';

const rate = Number(process.env.RATE ?? 10_000);
const seconds = Number(process.env.SECONDS ?? 10);
const chunksPerSecond = 10;

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function target() {
  if (process.env.LOGPERF_URL) {
    const { LOGPERF_URL: url, LOGPERF_USER: username = 'admin', LOGPERF_PASSWORD: password } = process.env;
    if (!password) throw new Error('LOGPERF_PASSWORD is required with LOGPERF_URL');
    return { url, username, password, stop: async () => {} };
  }
  const h = await import('./harness.mjs');
  const server = await h.startServer();
  return { url: server.url, username: 'admin', password: server.adminPassword, stop: () => server.stop() };
}

async function call(url, token, method, path, body, type = 'application/json') {
  const res = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': type, Accept: 'application/json' },
    body: body === undefined ? undefined : type === 'application/json' ? JSON.stringify(body) : body,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

// Each tenth of a second, awk prints the chunk's lines (with SGR colours,
// as real tools do); the loop paces itself by the clock, not by sleeps
// alone, so the rate holds even when awk takes a while.
function jobYAML() {
  const per = Math.max(1, Math.round(rate / chunksPerSecond));
  const chunks = seconds * chunksPerSecond;
  const script = [
    `start=$(date +%s%N); i=0`,
    `while [ $i -lt ${chunks} ]; do`,
    `  awk -v s=$((i*${per})) -v n=${per} 'BEGIN{for(j=s;j<s+n;j++) printf "\\033[32m%08d\\033[0m GET /api/v1/items/%d 200 \\033[1m%dms\\033[0m user=alice region=eu-west-1 trace=%08x\\n", j, j, j%97, (j*2654435761)%4294967296}'`,
    `  i=$((i+1))`,
    `  due=$((start + i*100000000)); now=$(date +%s%N)`,
    `  if [ $now -lt $due ]; then sleep $(awk -v d=$((due-now)) 'BEGIN{printf "%.3f", d/1e9}'); fi`,
    `done`,
  ].join('\n');
  return `name: logperf\ndescription: prints ${rate} lines/s for ${seconds} s (web/e2e/logperf.mjs)\ntargets: {names: [local]}\nsteps:\n  - id: flood\n    uses: shell\n    with:\n      command: |\n${script.split('\n').map((l) => `        ${l}`).join('\n')}\n`;
}

const t = await target();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const login = await fetch(`${t.url}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: t.username, password: t.password }) });
  if (!login.ok) throw new Error(`login: ${login.status} ${await login.text()}`);
  const { access_token: token } = await login.json();
  await call(t.url, token, 'PUT', '/api/v1/jobs/logperf', jobYAML(), 'application/yaml');

  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${t.url}/login`);
  await page.getByLabel('Username').fill(t.username);
  await page.getByLabel('Password').fill(t.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));

  const run = await call(t.url, token, 'POST', '/api/v1/jobs/logperf/runs', {});
  await page.goto(`${t.url}/runs/${run.id}`);
  await page.getByTestId('run-status').waitFor();
  // The renderer's main-thread time (scripts, layout, style) says how much
  // of each second the page itself spent, apart from a busy machine.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  const m0 = await metrics();
  const load0 = loadavg()[0];
  // Record every frame from before the first line until the run ends.
  await page.evaluate(() => {
    const w = window;
    w.__frames = [];
    w.__recording = true;
    const tick = (ts) => {
      w.__frames.push(ts);
      if (w.__recording) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const lineCount = () => page.evaluate(() => {
    const m = document.querySelector('[data-testid=log-count]')?.textContent?.match(/^([\d,]+) lines?/);
    return m ? Number(m[1].replace(/,/g, '')) : 0;
  });
  await page.getByTestId('log-line').first().waitFor({ timeout: 60_000 });
  const firstLineAt = Date.now();
  await page.waitForFunction(() => ['succeeded', 'failed', 'canceled'].includes(document.querySelector('[data-testid=run-status]')?.textContent ?? ''), null, { timeout: (seconds + 60) * 1000, polling: 250 });
  // The frames, metrics and gaps of the streaming itself.
  const streamEnd = Date.now();
  const streamed = await lineCount();
  const frames = await page.evaluate(() => {
    window.__recording = false;
    return window.__frames;
  });
  const m1 = await metrics();
  const wall = (m1.Timestamp - m0.Timestamp) || 1;
  const busy = (k) => Math.round(((m1[k] ?? 0) - (m0[k] ?? 0)) * 1000 / wall);
  const gaps = await page.getByTestId('log-gaps').textContent().catch(() => '');
  // The run's end can beat the last lines through the socket, and after
  // a gap the viewer reads the stored log again: wait (up to 2 min) until
  // every line is there, or report how many came.
  const expected = Math.max(1, Math.round(rate / chunksPerSecond)) * seconds * chunksPerSecond;
  const fillStart = Date.now();
  await page.waitForFunction((n) => {
    const m = document.querySelector('[data-testid=log-count]')?.textContent?.match(/^([\d,]+) lines?/);
    return m && Number(m[1].replace(/,/g, '')) >= n;
  }, expected, { timeout: 120_000, polling: 250 }).catch(() => {});
  const received = await lineCount();
  const fillMs = Date.now() - fillStart;
  const status = await page.getByTestId('run-status').textContent();
  const shownRows = await page.getByTestId('log-line').count();

  // The control: 120 frames of the same page doing nothing. On a busy
  // machine this is far from 16.7 ms too, and the figures above are to
  // be read against it.
  const idleFrames = await page.evaluate(() => new Promise((resolve) => {
    const ts = [];
    const step = (t) => {
      ts.push(t);
      if (ts.length <= 120) requestAnimationFrame(step);
      else resolve(ts);
    };
    requestAnimationFrame(step);
  }));
  const idleDeltas = idleFrames.slice(1).map((t, i) => t - idleFrames[i]).sort((a, b) => a - b);

  // Scrolling through everything: 2,000 px (about 110 lines) a frame for
  // 180 frames from the top, with the frame times of that alone.
  const scrollFrames = await page.evaluate(() => new Promise((resolve) => {
    const el = document.querySelector('.log-scroll');
    el.scrollTop = 0;
    const ts = [];
    const step = (t) => {
      ts.push(t);
      el.scrollTop += 2000;
      if (ts.length <= 180) requestAnimationFrame(step);
      else resolve(ts);
    };
    requestAnimationFrame(step);
  }));
  const scrollDeltas = scrollFrames.slice(1).map((t, i) => t - scrollFrames[i]).sort((a, b) => a - b);

  // Search over everything received.
  const t0 = Date.now();
  await page.getByLabel('Search the output').fill('00004242');
  await page.locator('.log-matches', { hasText: /of|no match/ }).waitFor();
  const searchMs = Date.now() - t0;
  const matches = await page.locator('.log-matches').textContent();

  const deltas = [];
  for (let i = 1; i < frames.length; i++) deltas.push(frames[i] - frames[i - 1]);
  const sorted = [...deltas].sort((a, b) => a - b);
  const budget = 1000 / 60;
  const dropped = deltas.reduce((n, d) => n + Math.max(0, Math.round(d / budget) - 1), 0);
  const figures = {
    run: run.id,
    status,
    target_rate: rate,
    seconds,
    lines_streamed_before_end: streamed,
    stream_rate_per_s: Math.round(streamed / Math.max(0.001, (streamEnd - firstLineAt) / 1000)),
    lines_in_viewer_at_last: received,
    lines_expected: expected,
    fill_from_stored_log_ms: fillMs,
    stream_gaps: gaps || 'none',
    frames: frames.length,
    frame_p50_ms: +percentile(sorted, 50).toFixed(1),
    frame_p95_ms: +percentile(sorted, 95).toFixed(1),
    frame_p99_ms: +percentile(sorted, 99).toFixed(1),
    frame_max_ms: +(sorted[sorted.length - 1] ?? NaN).toFixed(1),
    frames_over_50ms: deltas.filter((d) => d > 50).length,
    dropped_frames: dropped,
    dom_rows: shownRows,
    idle_frame_p50_ms: +percentile(idleDeltas, 50).toFixed(1),
    idle_frame_p95_ms: +percentile(idleDeltas, 95).toFixed(1),
    scroll_frame_p50_ms: +percentile(scrollDeltas, 50).toFixed(1),
    scroll_frame_p95_ms: +percentile(scrollDeltas, 95).toFixed(1),
    scroll_frame_max_ms: +(scrollDeltas[scrollDeltas.length - 1] ?? NaN).toFixed(1),
    main_thread_task_ms_per_s: busy('TaskDuration'),
    script_ms_per_s: busy('ScriptDuration'),
    layout_style_ms_per_s: busy('LayoutDuration') + busy('RecalcStyleDuration'),
    machine: `${cpus().length} CPUs, load average ${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)}`,
    search_ms: searchMs,
    search_result: matches,
    console_errors: errors,
  };
  if (process.env.LOGPERF_JSON) console.log(JSON.stringify(figures));
  else for (const [k, v] of Object.entries(figures)) console.log(`${k.padEnd(20)} ${Array.isArray(v) ? JSON.stringify(v) : v}`);
  if (errors.length) process.exitCode = 1;
} finally {
  await browser.close(); // playwright launches with a fresh temporary profile and removes it
  await t.stop();
}
