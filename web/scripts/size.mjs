// Prints the size of every chunk of the production build (web/dist) and
// fails when the initial JavaScript — the entry chunk and everything it
// imports statically, i.e. what the browser must fetch before the first
// page renders — is over the budget, gzip'd as the controller serves it.
//
//   node scripts/size.mjs [--budget-kb 300] [--json]
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const args = process.argv.slice(2);
// indexOf is -1 without the flag, and args[0] is then some other flag.
const budgetAt = args.indexOf('--budget-kb');
const budgetKB = Number((budgetAt >= 0 && args[budgetAt + 1]) || process.env.WEB_BUDGET_KB || 300);
if (!(budgetKB > 0)) {
  console.error(`size: --budget-kb (or WEB_BUDGET_KB) must be a positive number of kilobytes, not ${JSON.stringify(args[budgetAt + 1] ?? process.env.WEB_BUDGET_KB)}`);
  process.exit(2);
}
const asJSON = args.includes('--json');

let html;
try {
  html = readFileSync(path.join(dist, 'index.html'), 'utf8');
} catch {
  console.error('size: web/dist/index.html is missing: run "npm run build" (or "make web") first');
  process.exit(2);
}

const assets = readdirSync(path.join(dist, 'assets')).filter((f) => /\.(js|css)$/.test(f));
const sizes = new Map();
for (const f of assets) {
  const body = readFileSync(path.join(dist, 'assets', f));
  // Level 9: the controller precompresses each file once at start.
  sizes.set(f, { raw: body.length, gzip: gzipSync(body, { level: 9 }).length, body: body.toString('utf8') });
}

// The entry scripts and stylesheets index.html loads, plus modulepreloads.
const initial = new Set();
for (const m of html.matchAll(/<(?:script|link)[^>]+(?:src|href)="\/assets\/([^"]+\.(?:js|css))"/g)) initial.add(m[1]);

// Static imports (import … from "./x.js", import "./x.js", export … from
// "./x.js") pull chunks in before the entry runs; import("./x.js") does not.
const staticImport = /(?:^|[;\s}])(?:import|export)\s*(?:[\w$*{}\s,]*?\s*from\s*)?["']\.\/([\w.$-]+\.js)["']/g;
const queue = [...initial].filter((f) => f.endsWith('.js'));
while (queue.length) {
  const f = queue.pop();
  const s = sizes.get(f);
  if (!s) continue;
  for (const m of s.body.matchAll(staticImport)) {
    if (!initial.has(m[1])) {
      initial.add(m[1]);
      queue.push(m[1]);
    }
  }
}

const rows = [...sizes.entries()]
  .map(([file, s]) => ({ file, raw: s.raw, gzip: s.gzip, initial: initial.has(file) }))
  .sort((a, b) => Number(b.initial) - Number(a.initial) || b.gzip - a.gzip);
const initialJS = rows.filter((r) => r.initial && r.file.endsWith('.js')).reduce((n, r) => n + r.gzip, 0);
const initialCSS = rows.filter((r) => r.initial && r.file.endsWith('.css')).reduce((n, r) => n + r.gzip, 0);
const total = rows.reduce((n, r) => n + r.gzip, 0);
const kb = (n) => (n / 1024).toFixed(1);

if (asJSON) {
  console.log(JSON.stringify({ budgetKB, initialJSGzip: initialJS, initialCSSGzip: initialCSS, totalGzip: total, chunks: rows }, null, 2));
} else {
  console.log(`${'chunk'.padEnd(44)} ${'raw KB'.padStart(8)} ${'gzip KB'.padStart(8)}  loaded`);
  for (const r of rows) {
    console.log(`${r.file.padEnd(44)} ${kb(r.raw).padStart(8)} ${kb(r.gzip).padStart(8)}  ${r.initial ? 'initially' : 'on demand'}`);
  }
  console.log(`\ninitial JS ${kb(initialJS)} KB gzip (budget ${budgetKB} KB), initial CSS ${kb(initialCSS)} KB gzip, all chunks ${kb(total)} KB gzip`);
}
if (initialJS > budgetKB * 1024) {
  console.error(`size: the initial JavaScript is ${kb(initialJS)} KB gzip, over the ${budgetKB} KB budget: move code behind a lazy route or import()`);
  process.exit(1);
}
