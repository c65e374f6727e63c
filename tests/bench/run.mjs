// `npm run bench`: runs tests/bench/bench.js in headless Chromium and prints a table.
// A benchmark, not a test: it asserts nothing; targets are printed next to the figures.
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { start, verifyOwnServer } from '../support/server.mjs';
import { launch, watchedPage } from '../support/browser.mjs';

const { server, url, token } = await start(0);
await verifyOwnServer(url, token);
const browser = await launch();
const problems = [];
try {
  const page = await watchedPage(browser, problems);
  await page.goto(`${url}/bench/`);
  await page.waitForFunction(() => window.__bench !== undefined, null, { timeout: 60_000 });
  const r = await page.evaluate(() => window.__bench.rest());
  r.swap = await page.evaluate(() => window.__bench.swaps());
  // Loopback delivers the whole module at once, leaving the hash nothing to overlap: the
  // worst case. A real link streams it; the same comparison at 100 Mbit/s shows that.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 2, downloadThroughput: 100e6 / 8, uploadThroughput: 100e6 / 8 });
  r.swapThrottled = await page.evaluate(() => window.__bench.swaps());
  const gz = async (f) => gzipSync(await readFile(new URL(`../../loader/pkg/${f}`, import.meta.url))).length;
  const size = { wasm: await gz('wasm_hotswap_bg.wasm'), js: await gz('wasm_hotswap.js') };
  const f = (n, d = 2) => n.toFixed(d);
  const rows = [
    ...r.swap.map((s) => [`swap end to end, ${f(s.size / 1e3, 0)} KB guest, loopback (ms; baseline: fetch+compileStreaming+instantiate)`,
      f(s.swap), f(s.bare), f(s.swap / s.bare), '<= 1.10']),
    ...r.swapThrottled.map((s) => [`swap end to end, ${f(s.size / 1e3, 0)} KB guest, 100 Mbit/s (same baseline)`,
      f(s.swap), f(s.bare), f(s.swap / s.bare), '<= 1.10']),
    ...Object.entries(r.pause).map(([label, ms]) => [`commit pause, ${label} state, minus guest save/load (ms)`, f(ms, 3), '', '', label === '1 MiB' ? '<= 0.2 ms' : '']),
    ['call via stable exports after 10 swaps (ns/call; baseline: direct export)', f(r.calls.stable), f(r.calls.direct), f(r.calls.stable / r.calls.direct), '<= 1.5'],
    ['loader SHA-256 (MB/s; baseline: WebCrypto)', f(r.hash.ours, 0), f(r.hash.webcrypto, 0), f(r.hash.ours / r.hash.webcrypto), ''],
    ['loader size, gzip (KB): wasm + js', f((size.wasm + size.js) / 1024, 1), '', '', `wasm ${f(size.wasm / 1024, 1)} + js ${f(size.js / 1024, 1)}`],
  ];
  const head = ['measure', 'value', 'baseline', 'ratio', 'target'];
  const widths = head.map((_, i) => Math.max(...[head, ...rows].map((row) => String(row[i]).length)));
  const line = (row) => row.map((c, i) => String(c).padEnd(widths[i])).join(' | ');
  console.log(`Chromium, cross-origin isolated timers: ${r.crossOriginIsolated}; medians over runs\n`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  rows.forEach((row) => console.log(line(row)));
  await mkdir(new URL('../artifacts/', import.meta.url), { recursive: true });
  await writeFile(new URL('../artifacts/bench.json', import.meta.url), JSON.stringify({ ...r, size }, null, 2));
  if (problems.length) console.log(`\npage problems: ${problems.join('; ')}`);
} finally {
  await browser.close();
  server.close();
}
