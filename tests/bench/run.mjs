// `npm run bench`: runs tests/bench/bench.js in headless Chromium and prints a table.
// A benchmark, not a test: it asserts nothing; targets are printed next to the figures.
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { start, verifyOwnServer } from '../support/server.mjs';
import { launch, watchedPage } from '../support/browser.mjs';
import { longestTaskDuring } from './tasks.mjs';
import { memoryRun } from './rss.mjs';

const SWAPS = Number(process.env.BENCH_SWAPS ?? 1000);
const RUNS = Number(process.env.BENCH_RUNS ?? 11);

const { server, url, token } = await start(0);
await verifyOwnServer(url, token);
const browser = await launch();
const problems = [];
try {
  const page = await watchedPage(browser, problems);
  await page.goto(`${url}/bench/`);
  await page.waitForFunction(() => window.__bench !== undefined, null, { timeout: 60_000 });
  const r = {};
  r.editor = await editorSwaps(page);
  r.large = await largeSwaps(page);
  Object.assign(r, await page.evaluate(() => window.__bench.rest()));
  r.peer = await page.evaluate((n) => window.__bench.peer.run(n), RUNS);
  // Loopback delivers the whole module at once, leaving the hash nothing to overlap: the
  // worst case. A real link streams it; the same comparison at 100 Mbit/s shows that.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 2, downloadThroughput: 100e6 / 8, uploadThroughput: 100e6 / 8 });
  r.peerThrottled = await page.evaluate((n) => window.__bench.peer.run(n), 5);
  r.memory = await memoryRuns(url);
  const gz = async (f) => gzipSync(await readFile(new URL(`../../loader/pkg/${f}`, import.meta.url)), { level: 9 }).length;
  const extism = await gz('../../node_modules/@extism/extism/dist/browser/mod.js');
  const size = {};
  for (const build of ['core', 'watch']) {
    size[build] = { wasm: await gz(`${build}/wasm_hotswap_bg.wasm`), js: await gz(`${build}/wasm_hotswap.js`) + await gz(`${build === 'core' ? 'index' : 'watch'}.js`) };
  }
  // What keeping the hash and the inspection in Rust costs by itself (scripts/bench.sh builds it).
  const floor = await Promise.all(['hotswap_size_floor_bg.wasm', 'hotswap_size_floor.js']
    .map((f) => gz(`../../target/size-floor/${f}`))).catch(() => null);
  const f = (n, d = 2) => n.toFixed(d);
  const rows = [
    ...r.editor.map((e) => [`longest block, editor ${e.history} changes, ${e.step}: pre-copy (ms; heartbeat / longest task; baseline: copy in the pause)`,
      `${f(e.precopy.longest, 1)} / ${f(e.precopy.longestTask, 1)}`, `${f(e.copy.longest, 1)} / ${f(e.copy.longestTask, 1)}`,
      f(e.precopy.longest / e.copy.longest), `<= 16 (floor ${f(e.floor, 1)}); text ${e.precopy.intact && e.copy.intact ? 'intact' : 'CHANGED'}`]),
    ...r.large.map((l) => [`longest main-thread task, swap to a ${l.mb} MB module arriving at once (ms, traced, median of ${l.runs}; baseline: fetch + compileStreaming + instantiate)`,
      f(l.swap, 1), f(l.bare, 1), f(l.swap / l.bare), `hashed on: ${l.hashedOn}`]),
    ...peerRows(r.peer, 'loopback'),
    ...peerRows(r.peerThrottled, '100 Mbit/s'),
    ...Object.entries(r.pause).map(([label, ms]) => [`commit pause, ${label} state, minus guest save/load (ms)`, f(ms, 3), '', '', label === '1 MiB' ? '<= 0.2 ms' : '']),
    ...memoryRows(r.memory),
    ['call via stable exports after 10 swaps (ns/call; baseline: direct export)', f(r.calls.stable), f(r.calls.direct), f(r.calls.stable / r.calls.direct), '<= 1.5'],
    ['loader SHA-256 (MB/s; baseline: WebCrypto)', f(r.hash.ours, 0), f(r.hash.webcrypto, 0), f(r.hash.ours / r.hash.webcrypto), ''],
    ...Object.entries(size).map(([build, s]) => [`loader size, gzip -9 (KB): '${build === 'core' ? 'wasm-hotswap' : 'wasm-hotswap/watch'}' (wasm + js; baseline: @extism/extism browser bundle)`,
      f((s.wasm + s.js) / 1024, 1), f(extism / 1024, 1), f((s.wasm + s.js) / extism), `${build === 'core' ? '<= 40' : '<= 60'} KB; wasm ${f(s.wasm / 1024, 1)} + js ${f(s.js / 1024, 1)}`]),
    ...(floor ? [['  floor: only SHA-256 + inspector in Rust, nothing else (tests/bench/size-floor; KB gzip -9)',
      f((floor[0] + floor[1]) / 1024, 1), f(extism / 1024, 1), f((floor[0] + floor[1]) / extism), `wasm ${f(floor[0] / 1024, 1)} + js ${f(floor[1] / 1024, 1)}`]] : []),
  ];
  const head = ['measure', 'value', 'baseline', 'ratio', 'target'];
  const widths = head.map((_, i) => Math.max(...[head, ...rows].map((row) => String(row[i]).length)));
  const line = (row) => row.map((c, i) => String(c).padEnd(widths[i])).join(' | ');
  console.log(`Chromium, cross-origin isolated timers: ${r.crossOriginIsolated}; medians over runs\n`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  rows.forEach((row) => console.log(line(row)));
  console.log('\nlongest block: heartbeat = largest gap between two turns of the event loop; longest task = the longest main-thread task in a Chromium trace of the same steps run again without the heartbeat (and the Long Tasks API under it);'
    + '\nfloor = the heartbeat on this machine with only a busy worker, for as long as the pre-copy step took (a shared 2-core box preempts the page)');
  await mkdir(new URL('../artifacts/', import.meta.url), { recursive: true });
  await writeFile(new URL('../artifacts/bench.json', import.meta.url), JSON.stringify({ ...r, size, floor }, null, 2));
  if (problems.length) console.log(`\npage problems: ${problems.join('; ')}`);
} finally {
  await browser.close();
  server.close();
}

/** The longest main-thread task of a swap to a large module, and of the bare path, traced. */
async function largeSwaps(page, runs = 5) {
  const hashedOn = await page.evaluate(() => window.__bench.large.open());
  const out = [];
  for (const mb of [2, 16]) {
    const times = { swap: [], bare: [] };
    for (let i = 0; i < runs; i++) {
      for (const way of ['swap', 'bare']) {
        await page.evaluate((m) => window.__bench.large.prepare(m), mb);
        const { longestTask } = await longestTaskDuring(browser, page, () => page.evaluate((w) => window.__bench.large[w](), way));
        times[way].push(longestTask);
      }
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    out.push({ mb, runs, hashedOn, swap: median(times.swap), bare: median(times.bare) });
  }
  await page.evaluate(() => window.__bench.large.close());
  return out;
}

/** Each editor step at each document size, with and without pre-copy, under the heartbeat and a trace. */
async function editorSwaps(page) {
  const out = [];
  const steps = await page.evaluate(() => window.__bench.editor.steps);
  for (const history of ['20k', '100k']) {
    const rows = steps.map((step) => ({ history, step }));
    for (const precopy of [true, false]) {
      const mode = precopy ? 'precopy' : 'copy';
      // Twice through the steps: under the heartbeat, then traced without it.
      await page.evaluate(([h, p]) => window.__bench.editor.open(h, p), [history, precopy]);
      for (const row of rows) row[mode] = await page.evaluate((s) => window.__bench.editor.step(s), row.step);
      await page.evaluate(() => window.__bench.editor.close());
      await page.evaluate(([h, p]) => window.__bench.editor.open(h, p), [history, precopy]);
      for (const row of rows) {
        const { result, longestTask } = await longestTaskDuring(browser, page,
          () => page.evaluate((s) => window.__bench.editor.step(s, { beat: false }), row.step));
        row[mode] = { ...row[mode], longestTask: Math.max(longestTask, row[mode].longestTask), intact: row[mode].intact && result.intact };
      }
      await page.evaluate(() => window.__bench.editor.close());
    }
    for (const row of rows) row.floor = (await page.evaluate((ms) => window.__bench.editor.floor(ms), row.precopy.total)).longest;
    out.push(...rows);
  }
  return out;
}

/**
 * Each way of swapping in a fresh renderer of its own browser (Chromium's spare renderer
 * off, so the page's process is the one that appears).
 */
async function memoryRuns(url) {
  const own = await launch(['--disable-features=SpareRendererForSitePerProcess']);
  try {
    const out = {};
    for (const way of ['loader', 'bare', 'bareCompiledOnce']) out[way] = await memoryRun(own, url, way, SWAPS);
    return out;
  } finally {
    await own.close();
  }
}

function memoryRows(m) {
  const f = (n, d = 1) => n.toFixed(d);
  const rss = (w) => `${f(m[w].after)} (${f(m[w].after / m[w].baseline, 2)}x of ${f(m[w].baseline)}; peak ${f(m[w].peak, 0)})`;
  return [
    [`renderer RSS after ${SWAPS} swaps of a 16 MiB guest, 10 s idle, forced GC (MiB; baseline: the page before the swaps)`,
      f(m.loader.after), f(m.loader.baseline), f(m.loader.after / m.loader.baseline, 2), `<= 1.3; peak ${f(m.loader.peak, 0)} MiB`],
    ['  the same with bare compile + instantiate per swap (MiB)', rss('bare'), '', '', ''],
    ['  the same with each module compiled once (MiB)', rss('bareCompiledOnce'), '', '', ''],
    [`loader's own linear memory before / after the swaps (MiB)`, `${m.loader.loaderMemoryMiB.map((x) => f(x, 2)).join(' / ')}`, '', '', 'flat'],
    ['swap back to a cached digest, 16 MiB state (ms; baseline: the guests\' own save + load)', f(m.loader.cachedSwapMs), f(m.loader.saveLoadMs),
      f(m.loader.cachedSwapMs / m.loader.saveLoadMs, 2), `pause ${f(m.loader.pauseMs)} ms; first swap (download + compile) ${f(m.loader.firstSwapMs)} ms`],
  ];
}

function peerRows(peer, link) {
  const f = (n, d = 1) => n.toFixed(d);
  return Object.entries(peer).flatMap(([label, p]) => [
    [`first load, ${label} (${f(p.size / 1e6, 2)} MB), ${link}: HotSwap.load (ms; baseline: Extism createPlugin with hash)`,
      f(p.load.hotswap), f(p.load.extism), f(p.load.hotswap / p.load.extism, 2), `<= 0.8; bare ${f(p.load.bare)} ms`],
    [`swap end to end, ${label}, ${link} (ms; baseline: fetch + compileStreaming + instantiate)`,
      f(p.swap.swap), f(p.swap.bare), f(p.swap.swap / p.swap.bare, 2), '<= 1.10'],
    [`swap end to end, ${label}, ${link} (ms; baseline: the same by hand + state_save, copy, state_load)`,
      f(p.swap.swap), f(p.swap.hand), f(p.swap.swap / p.swap.hand, 2), ''],
  ]);
}
