// The dev loop's edit-to-live time: from a save of the editor guest's source to its new
// logic answering in an open page, through `npm run dev`'s server (demo-app --dev, the
// hotswap CLI's dev loop): watch, cargo's incremental rebuild, publish (stamp, sign), push
// (SSE), and in the page: verify the manifest, fetch and compile the module, swap. Median
// over RUNS edits of a temporary copy of the editor, with cargo's rebuild time inside it
// and what is left once it is taken out. A benchmark, not a test: it asserts nothing.
//
//   node tests/bench/devloop.mjs        (after `npm run build`; BENCH_DEV_RUNS=10)
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from '../support/browser.mjs';
import { startDemo } from '../support/demo-server.mjs';
import { openEditor } from '../support/editor-page.mjs';
import { copyGuest, devTarget, editSource, root } from '../support/guest-copy.mjs';
import { followDevEvents } from '../support/dev-events.mjs';

const RUNS = Number(process.env.BENCH_DEV_RUNS ?? 10);
// What each edit changes: the string the editor 1.0.0's `view` returns as its version.
const shown = (text) => `    "${text}"\n};`;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** A clock both Node and the page read alike: milliseconds since the epoch, sub-millisecond. */
const now = () => performance.timeOrigin + performance.now();

/**
 * Edit, and time until the page's `view` returns the new string. In the page, a listener on
 * the slot's `commit` event asks the new version at once (after the loader's call returns).
 */
async function oneEdit(page, guest, events, previous, next) {
  await page.evaluate((marker) => {
    const slot = window.__demo.slot;
    const at = {}; // when each loader event of this swap arrived
    window.__liveAt = new Promise((resolve) => {
      const id = slot.on((event) => {
        at[event.type] ??= performance.timeOrigin + performance.now();
        if (event.type !== 'commit') return;
        queueMicrotask(() => {
          if (!slot.callString('view', '').includes(marker)) return;
          slot.off(id);
          resolve({ live: performance.timeOrigin + performance.now(), at });
        });
      });
    });
  }, next);
  const building = events.next((e) => e.type === 'building');
  const published = events.next((e) => e.type === 'published');
  const saved = now();
  editSource(guest, shown(previous), shown(next));
  const buildingAt = await building.then(now);
  const event = await published;
  const publishedAt = now();
  const { live, at } = await page.evaluate(() => window.__liveAt);
  // Where the time went, each step from the end of the one before (ms).
  const steps = {
    watch: buildingAt - saved, // file event, quiet time, cargo started, event to Node
    build: publishedAt - buildingAt - event.publishMs,
    publish: event.publishMs,
    push: (at.manifest ?? at.fetch) - publishedAt, // announced, manifest fetched and verified
    fetchCompile: at.instantiate - (at.manifest ?? at.fetch),
    swap: at.commit - at.instantiate, // instantiate, pre-copy, the pause
    answer: live - at.commit,
  };
  return { editToLiveMs: live - saved, rebuildMs: event.buildMs, publishMs: event.publishMs, steps };
}

/** Start the dev server on a copy of the editor, open a page, time `RUNS` edits. */
export async function devLoopBench({ runs = RUNS } = {}) {
  const guest = copyGuest('editor');
  const data = await mkdtemp(join(tmpdir(), 'hotswap-devbench-'));
  const rustflags = execFileSync('cargo', ['run', '--quiet', '-p', 'xtask', '--', 'rustflags', 'editor'], { cwd: root }).toString().trim();
  const server = await startDemo({ data, args: ['--dev', guest, '--dev-rustflags', rustflags, '--dev-target-dir', devTarget] });
  const events = followDevEvents(`${server.url}/dev/events`);
  const browser = await launch();
  try {
    await events.ready;
    const p = await openEditor(browser, 'Bench', server.url);
    await p.page.waitForFunction(() => window.__demo.slot?.current.version.includes('-dev.'), null, { timeout: 900000 });
    await p.page.click('#text');
    await p.page.keyboard.type('the document a developer is working on', { delay: 2 });
    let previous = '1.0.0';
    const samples = [];
    // One warm-up edit: the first rebuild after start also checks every dependency.
    for (let i = 0; i <= runs; i++) {
      const next = `1.0.0 (bench ${i})`;
      const sample = await oneEdit(p.page, guest, events, previous, next);
      previous = next;
      if (i > 0) samples.push(sample);
    }
    return {
      editToLiveMs: median(samples.map((s) => s.editToLiveMs)),
      rebuildMs: median(samples.map((s) => s.rebuildMs)),
      restMs: median(samples.map((s) => s.editToLiveMs - s.rebuildMs)),
      publishMs: median(samples.map((s) => s.publishMs)),
      runs: samples.length,
      samples,
    };
  } finally {
    await events.close();
    await browser.close();
    await server.stop();
    await rm(data, { recursive: true, force: true });
    await rm(dirname(guest), { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await devLoopBench();
  const f = (n) => n.toFixed(1);
  console.log(`dev loop, editor guest, median of ${r.runs} edits:`);
  console.log(`  edit-to-live ${f(r.editToLiveMs)} ms = cargo rebuild ${f(r.rebuildMs)} ms + the rest ${f(r.restMs)} ms (target: rest <= 50 ms)`);
  console.log(`  of the rest: publish (stamp, sign, write) ${f(r.publishMs)} ms`);
  for (const s of r.samples) {
    const steps = Object.entries(s.steps).map(([k, v]) => `${k} ${f(v)}`).join(', ');
    console.log(`    ${f(s.editToLiveMs)} ms  (rebuild ${f(s.rebuildMs)}; ${steps})`);
  }
}
