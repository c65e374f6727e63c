// `hotswap dev` on its own, for any guest crate: a temporary copy of the counter guest, a page
// written as the README's example (served by `hotswap dev --serve`), a real cargo build,
// its signed registry and push, Chromium. Each save must reach the page with the counter's
// state kept; a compile error must show in the overlay while the old logic answers; the
// server must refuse other host names and stop cleanly on Ctrl-C.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { launch, watchedPage } from './support/browser.mjs';
import { copyGuest, devTarget, editSource, root } from './support/guest-copy.mjs';
import { followDevEvents } from './support/dev-events.mjs';

// The README's example page, with the loader package at /pkg (its `wasm-hotswap/watch` entry).
const PAGE = `
import init, { HotSwap } from "/pkg/watch.js";
await init();
const dev = await (await fetch("/dev/config.json")).json();
const counter = await HotSwap.watch(dev.manifest, { guest: "counter", keys: dev.keys, push: dev.push });
const { connect } = await import(dev.overlay);
connect({ slot: counter });
window.counter = counter;
`;
const DESCRIBE = 'format!("counter {VERSION}: {}';

let work, guest, hotswap, url, output = '', events, browser, page;
const problems = [];

/** `hotswap dev` on the copy; resolves with its URL once it serves. */
function startHotswapDev(args) {
  hotswap = spawn(join(root, 'target/release/hotswap'), ['dev', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  hotswap.stderr.on('data', (d) => { output += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hotswap dev did not serve: ${output}`)), 600000);
    hotswap.stdout.on('data', (d) => {
      output += d;
      const found = /serving (http:\/\/127\.0\.0\.1:\d+)\//.exec(output);
      if (found) { clearTimeout(timer); resolve(found[1]); }
    });
    hotswap.once('exit', (code) => reject(new Error(`hotswap dev exited (${code}): ${output}`)));
  });
}

const stop = () => new Promise((done) => {
  if (hotswap.exitCode !== null || hotswap.signalCode !== null) return done(hotswap.exitCode);
  hotswap.once('exit', (code) => done(code));
  hotswap.kill('SIGINT');
});

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'hotswap-dev-cli-'));
  guest = copyGuest('counter');
  const site = join(work, 'site');
  mkdirSync(site);
  cpSync(join(root, 'loader/pkg'), join(site, 'pkg'), { recursive: true });
  writeFileSync(join(site, 'index.html'), '<!doctype html><title>counter</title><link rel="icon" href="data:,"><script type="module" src="/main.js"></script>\n');
  writeFileSync(join(site, 'main.js'), PAGE);
  url = await startHotswapDev([guest, '--serve', site, '--port', '0', '--registry', join(work, 'registry'), '--target-dir', devTarget,
    '--allow-origin', 'http://localhost:5173']);
  events = followDevEvents(`${url}/dev/events`);
  await events.ready;
  browser = await launch();
  page = await watchedPage(browser, problems);
});

after(async () => {
  await events?.close();
  await browser?.close();
  if (hotswap) await stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(dirname(guest), { recursive: true, force: true });
});

const describe = () => page.evaluate(() => window.counter.callString('describe', ''));

test('a page following hotswap dev runs each saved change of any guest crate, its state kept', { timeout: 120000 }, async () => {
  await page.goto(`${url}/`);
  await page.waitForFunction(() => window.counter?.current.version.startsWith('1.0.0-dev.'), null, { timeout: 30000 });
  for (let i = 0; i < 3; i++) await page.evaluate(() => window.counter.exports.increment());
  assert.match(await describe(), /^counter 1\.0\.0: 3 /);

  const published = events.next((e) => e.type === 'published');
  editSource(guest, DESCRIBE, 'format!("counter {VERSION} (edited): {}');
  const { version } = await published;
  await page.waitForFunction((v) => window.counter.current.version === v, version, { timeout: 30000 });
  assert.match(await describe(), /^counter 1\.0\.0 \(edited\): 3 /, 'the new logic with the old state');
  await page.locator('#hotswap-dev-status', { hasText: `${version} live` }).waitFor({ timeout: 30000 });
  assert.match(output, /src\/lib\.rs changed → counter 1\.0\.0-dev\.\d+ live: build/);
});

test('a compile error shows in the overlay while the page keeps the last good logic; the fix, the same module again, clears it', { timeout: 120000 }, async () => {
  const failed = events.next((e) => e.type === 'build-failed', 60000);
  editSource(guest, 'pub fn describe(', 'pub fn describe(((');
  await failed.catch((e) => { throw new Error(`${e.message}\n${output}`); });
  await page.locator('#hotswap-dev-overlay', { hasText: 'Build failed' }).waitFor({ timeout: 30000 });
  assert.equal(await page.evaluate(() => window.counter.exports.increment()), 4n);

  // The fix restores the source of the running build: the same module, nothing to publish.
  const running = await page.evaluate(() => window.counter.current.version);
  const outcome = events.next((e) => e.type !== 'building');
  editSource(guest, 'pub fn describe(((', 'pub fn describe(');
  assert.deepEqual(await outcome.then(({ type, version }) => ({ type, version })), { type: 'unchanged', version: running });
  await page.locator('#hotswap-dev-overlay').waitFor({ state: 'hidden', timeout: 30000 });
  assert.match(await describe(), /^counter 1\.0\.0 \(edited\): 4 /);
  assert.match(output, /src\/lib\.rs changed → same module as 1\.0\.0-dev\.\d+ \(build \d+\.\d\d s\): nothing to publish/);
  assert.deepEqual(problems, []);
});

/** GET `path` with `headers`; the status and the CORS header. */
const get = (path, headers) => new Promise((resolve, reject) => {
  const { port } = new URL(url);
  request({ host: '127.0.0.1', port, path, headers: { host: `127.0.0.1:${port}`, ...headers } }, (res) => {
    res.resume();
    resolve([res.statusCode, res.headers['access-control-allow-origin'] ?? null]);
  }).on('error', reject).end();
});

test('hotswap dev refuses other host names, lets only the allowed origin read it, and stops cleanly on Ctrl-C', { timeout: 60000 }, async () => {
  const { port } = new URL(url);
  assert.deepEqual(await get('/registry/manifest.json', { host: `rebind.test:${port}` }), [421, null]);
  assert.deepEqual(await get('/registry/manifest.json', { origin: 'http://evil.test' }), [200, null]);
  assert.deepEqual(await get('/registry/manifest.json', { origin: 'http://localhost:5173' }), [200, 'http://localhost:5173']);
  assert.equal(await stop(), 0, 'hotswap dev did not exit cleanly on Ctrl-C');
  assert.match(output, /hotswap dev: stopping/);
});
