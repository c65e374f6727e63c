// The counter page (`www/counter/`) opened in Chromium: it loads a guest, swaps it on a click without a
// reload, keeps the count, and logs no console error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { start, verifyOwnServer } from './support/server.mjs';
import { launch, watchedPage } from './support/browser.mjs';

let server, url, browser;
before(async () => {
  let token;
  ({ server, url, token } = await start(0));
  await verifyOwnServer(url, token);
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

/** The counter page, once its first version runs; `page` may come prepared (routes). */
async function counterPage(page) {
  await page.goto(`${url}/counter/`);
  await page.locator('#version').filter({ hasText: 'counter 1.0.0' }).waitFor();
  return page;
}

test('the counter page swaps its logic on a click without reloading and keeps the count', async () => {
  const problems = [];
  const page = await counterPage(await watchedPage(browser, problems));
  const marker = await page.evaluate(() => window.__loadMarker);
  for (let i = 0; i < 3; i++) await page.click('#increment');
  await page.locator('#state').filter({ hasText: 'counter 1.0.0: 3 (step 1' }).waitFor();
  await mkdir('tests/artifacts', { recursive: true });
  await page.screenshot({ path: 'tests/artifacts/page-before-swap.png' });

  await page.click('#swap');
  await page.locator('#version').filter({ hasText: 'counter 2.0.0' }).waitFor();
  assert.match(await page.textContent('#state'), /counter 2\.0\.0: 3 \(step 2/);
  await page.click('#increment');
  await page.locator('#state').filter({ hasText: 'counter 2.0.0: 5 (step 2' }).waitFor();
  await page.screenshot({ path: 'tests/artifacts/page-after-swap.png' });

  await page.click('#rollback');
  await page.locator('#state').filter({ hasText: 'counter 1.0.0: 5 (step 1' }).waitFor();
  const events = await page.locator('#events li').allTextContents();
  for (const phase of ['fetch', 'compile', 'verify', 'validate', 'instantiate', 'commit', 'rollback']) {
    assert.ok(events.some((e) => e.startsWith(phase)), `no ${phase} event in ${events.join(' | ')}`);
  }
  assert.equal(await page.evaluate(() => window.__loadMarker), marker, 'the page reloaded');
  assert.equal(await page.isHidden('#error'), true);
  assert.deepEqual(problems, []);
});

test('free() and Symbol.dispose release a HotSwap like dispose(): later calls throw DISPOSED', async () => {
  const page = await counterPage(await watchedPage(browser, []));
  const codes = await page.evaluate(async () => {
    const { default: init, HotSwap } = await import('/pkg/index.js');
    await init();
    const index = await (await fetch('/guests/index.json')).json();
    const source = (name) => ({ url: `/guests/${index[name].file}`, sha256: index[name].sha256 });
    const out = [];
    for (const release of [(hs) => hs.free(), (hs) => hs[Symbol.dispose]()]) {
      const hs = await HotSwap.load(source('counter-v1'));
      const api = hs.exports;
      release(hs);
      for (const attempt of [() => hs.current, () => api.increment(), () => hs.callString('describe', '')]) {
        try { attempt(); out.push('no error'); } catch (e) { out.push(e.code ?? String(e)); }
      }
      out.push(await hs.swap(source('counter-v2')).then(() => 'swapped', (e) => e.code ?? String(e)));
    }
    return out;
  });
  assert.deepEqual(codes, Array(8).fill('DISPOSED'));
});

test('a download stopped at the byte cap rejects with MODULE_TOO_LARGE and leaves no unhandled rejection behind', async () => {
  const page = await counterPage(await watchedPage(browser, []));
  const result = await page.evaluate(async () => {
    const unhandled = [];
    addEventListener('unhandledrejection', (e) => unhandled.push(String(e.reason)));
    const { default: init, HotSwap } = await import('/pkg/index.js');
    await init();
    const index = await (await fetch('/guests/index.json')).json();
    const v1 = index['counter-v1'];
    const code = await HotSwap.load({ url: `/guests/${v1.file}`, sha256: v1.sha256 }, { limits: { maxModuleBytes: 1000 } })
      .then(() => 'loaded', (e) => e.code);
    await new Promise((ok) => setTimeout(ok, 500));
    return { code, unhandled };
  });
  assert.deepEqual(result, { code: 'MODULE_TOO_LARGE', unhandled: [] });
});

test('an app stream that rewrites its chunks after handing them over cannot make the loader run bytes other than those it hashed', async () => {
  const page = await counterPage(await watchedPage(browser, []));
  const result = await page.evaluate(async () => {
    const { HotSwap } = await import('/pkg/index.js');
    const index = await (await fetch('/guests/index.json')).json();
    const source = (name) => ({ url: `/guests/${index[name].file}`, sha256: index[name].sha256 });
    const slot = await HotSwap.load(source('counter-v1'));
    slot.exports.increment();
    // Counter v2 streams in slowly (compiled as it arrives); then the producer zeroes the
    // chunks it handed over, as a pooled buffer would be reused, and closes. The app pinned
    // the digest of those zeroes: a loader hashing the chunks only at the end would match it
    // and run v2.
    const v2 = new Uint8Array(await (await fetch(source('counter-v2').url)).arrayBuffer());
    const zeroes = new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array(v2.length)));
    const handed = [];
    const stream = new ReadableStream({
      async start(controller) {
        for (let at = 0; at < v2.length; at += 4096) {
          const chunk = v2.slice(at, at + 4096);
          handed.push(chunk);
          controller.enqueue(chunk);
          await new Promise((ok) => setTimeout(ok, 15));
        }
        for (const chunk of handed) chunk.fill(0);
        controller.close();
      },
    });
    const sha256 = [...zeroes].map((b) => b.toString(16).padStart(2, '0')).join('');
    const code = await slot.swap({ response: new Response(stream), sha256 }).then(() => 'swapped', (e) => e.code);
    return { code, running: slot.current.version, count: String(slot.exports.count()) };
  });
  assert.deepEqual(result, { code: 'HASH_MISMATCH', running: '1.0.0', count: '1' });
});

test('a slow download cut at the byte cap or by the signal while it compiles rejects and leaves no unhandled rejection behind', async () => {
  const page = await counterPage(await watchedPage(browser, []));
  const result = await page.evaluate(async () => {
    const unhandled = [];
    addEventListener('unhandledrejection', (e) => unhandled.push(String(e.reason)));
    const { HotSwap } = await import('/pkg/index.js');
    const index = await (await fetch('/guests/index.json')).json();
    const v1 = index['counter-v1'];
    const slot = await HotSwap.load({ url: `/guests/${v1.file}`, sha256: v1.sha256 }, { limits: { maxModuleBytes: 64 << 10 } });
    // /trickle is slow enough to be compiled as it arrives, then the cap stops it (~320 ms).
    const capped = await slot.swap({ url: '/trickle', sha256: v1.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0')) })
      .then(() => 'swapped', (e) => e.code);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const aborted = await slot.swap({ url: '/trickle', sha256: '0'.repeat(64) }, { signal: controller.signal })
      .then(() => 'swapped', (e) => e.code);
    await new Promise((ok) => setTimeout(ok, 500));
    return { capped, aborted, running: slot.current.version, unhandled };
  });
  assert.deepEqual(result, { capped: 'MODULE_TOO_LARGE', aborted: 'ABORTED', running: '1.0.0', unhandled: [] });
});

test('HotSwap.load works before init() is called: it loads the loader itself', async () => {
  const page = await watchedPage(browser, []);
  // A page that has not loaded the loader: its token, a same-origin document with no script.
  await page.goto(`${url}/__token`);
  const result = await page.evaluate(async () => {
    const { HotSwap } = await import('/pkg/index.js');
    const index = await (await fetch('/guests/index.json')).json();
    const slot = await HotSwap.load({ url: `/guests/${index['counter-v1'].file}`, sha256: index['counter-v1'].sha256 });
    return `${slot.current.version} ${slot.exports.increment()}`;
  });
  assert.equal(result, '1.0.0 1');
});

test('under a CSP that forbids workers, loads and swaps still work: the page hashes, the state travels by copy, nothing is lost', async () => {
  const problems = [];
  const page = await watchedPage(browser, problems);
  // The counter page as a strict app would serve it: no workers at all (README: pre-copy and
  // the hashing worker need `worker-src blob:`, and fall back without it).
  await page.route(`${url}/counter/`, async (route) => {
    const response = await route.fetch();
    await route.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': "worker-src 'none'" } });
  });
  await counterPage(page);
  const result = await page.evaluate(async () => {
    const blocked = [];
    addEventListener('securitypolicyviolation', (e) => blocked.push(e.effectiveDirective));
    const { default: init, HotSwap } = await import('/pkg/index.js');
    await init();
    const index = await (await fetch('/guests/index.json')).json();
    const source = (name) => ({ url: `/guests/${index[name].file}`, sha256: index[name].sha256 });
    const events = [];
    const slot = await HotSwap.load(source('counter-precopy-v1'), { onEvent: (e) => events.push(e) });
    for (let i = 0; i < 5; i++) slot.exports.increment();
    const versions = [];
    for (const name of ['counter-precopy-v2', 'counter-precopy-v1', 'counter-precopy-v2']) {
      await slot.swap(source(name));
      versions.push(`${slot.current.version}:${slot.exports.count()}`);
      slot.exports.increment();
    }
    const refused = await slot.swap({ ...source('counter-precopy-v1'), sha256: '0'.repeat(64) }).then(() => 'swapped', (e) => e.code);
    return {
      versions,
      count: String(slot.exports.count()),
      refused,
      running: slot.current.version,
      hashedOn: [...new Set(events.filter((e) => e.type === 'verify').map((e) => e.hashedOn))],
      transfers: events.filter((e) => e.type === 'commit').map((e) => e.transfer),
      blocked,
    };
  });
  // One refusal, for this slot's pre-copy worker (the page's hashing worker was refused
  // before the listener was added): a refused worker is not started again, not even once
  // more to find out (a `report-uri` would hear of each attempt).
  assert.deepEqual(result.blocked, ['worker-src'], 'the CSP did not stop a worker, or one was retried');
  assert.deepEqual(result.hashedOn, ['page']);
  assert.deepEqual(result.transfers, ['copy', 'copy', 'copy']);
  // Version 2 counts in steps of 2.
  assert.deepEqual(result.versions, ['2.0.0:5', '1.0.0:7', '2.0.0:8']);
  assert.equal(result.refused, 'HASH_MISMATCH');
  assert.equal(result.running, '2.0.0');
  assert.equal(result.count, '10');
  // Chromium reports each blocked worker on the console; nothing else may appear there.
  assert.deepEqual(problems.filter((p) => !/Content Security Policy/.test(p)), []);
});
