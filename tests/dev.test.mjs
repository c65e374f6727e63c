// The dev loop end to end: `npm run dev`'s server (demo-app --dev, running the hotswap CLI's
// dev loop) on a temporary copy of the editor guest — a real cargo build, the real signed dev
// registry, a real Chromium page. Each save must reach the open page without a reload and
// with its text, cursor and selection kept; a compile error must show in the page and the
// terminal while the old logic answers; a build that traps must be rolled back and the next
// save tried. The release guests (guest-modules/editor) are never touched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { launch } from './support/browser.mjs';
import { startDemo } from './support/demo-server.mjs';
import { openEditor, running, settled, textOf } from './support/editor-page.mjs';
import { copyGuest, devTarget, editSource, root } from './support/guest-copy.mjs';
import { followDevEvents } from './support/dev-events.mjs';

const ARTIFACTS = 'tests/artifacts';
// The string the editor 1.0.0's `view` returns as its version, and the edit export's head.
const SHOWN = '    "1.0.0"\n};';
const shown = (text) => `    "${text}"\n};`;
const EDIT_FN = 'pub fn edit(editor: &mut Editor, request: &str) -> Result<Vec<u8>, String> {';
const TRAP = `${EDIT_FN}\n    if !request.is_empty() {\n        panic!("this dev build traps on every edit");\n    }`;
// A cold first build of the editor's dependencies takes minutes on a 2-core machine.
const FIRST_BUILD_MS = 600000;

let browser, data, guest, server, events, ada, label = '1.0.0';

before(async () => {
  guest = copyGuest('editor');
  data = await mkdtemp(join(tmpdir(), 'hotswap-dev-data-'));
  const rustflags = execFileSync('cargo', ['run', '--quiet', '-p', 'xtask', '--', 'rustflags', 'editor'], { cwd: root }).toString().trim();
  server = await startDemo({ data, args: ['--dev', guest, '--dev-rustflags', rustflags, '--dev-target-dir', devTarget] });
  events = followDevEvents(`${server.url}/dev/events`);
  await events.ready;
  browser = await launch();
});

after(async () => {
  await events?.close();
  await browser?.close();
  await server?.stop();
  await rm(data, { recursive: true, force: true });
  await rm(dirname(guest), { recursive: true, force: true });
});

/** Save `to` in place of `from` in the copy's lib.rs, and wait for the loop's verdict. */
async function save(from, to, verdict = (e) => e.type === 'published') {
  const outcome = events.next((e) => ['published', 'build-failed', 'publish-failed', 'unchanged'].includes(e.type));
  editSource(guest, from, to);
  const event = await outcome;
  assert.ok(verdict(event), `unexpected dev loop outcome: ${JSON.stringify(event).slice(0, 2000)}`);
  return event;
}

const view = (p, text) => p.page.locator('#view', { hasText: text }).waitFor({ timeout: 30000 });
const selection = (p) => p.page.evaluate(() => {
  const t = document.querySelector('#text');
  return [t.selectionStart, t.selectionEnd, t.selectionDirection];
});

test('a saved change to the guest goes live in the open page without a reload, text, cursor and selection kept', { timeout: FIRST_BUILD_MS + 120000 }, async () => {
  ada = await openEditor(browser, 'Ada', server.url);
  // The page starts on the seeded release and swaps to the first dev build when it is ready.
  await ada.page.waitForFunction(() => window.__demo.slot?.current.version.includes('-dev.'), null, { timeout: FIRST_BUILD_MS });
  await ada.page.click('#text');
  await ada.page.keyboard.type('hello dev loop', { delay: 5 });
  await ada.page.evaluate(() => document.querySelector('#text').setSelectionRange(6, 9, 'backward'));
  await settled(ada);

  label = '1.0.0 (edited live)';
  const published = await save(SHOWN, shown(label));
  assert.deepEqual(published.changed, ['src/lib.rs']);
  assert.match(published.version, /^1\.0\.0-dev\.\d+$/);
  await running(ada, published.version);
  await view(ada, label);
  assert.equal(await textOf(ada), 'hello dev loop');
  assert.deepEqual(await selection(ada), [6, 9, 'backward']);
  assert.equal(await ada.page.evaluate(() => window.__loadMarker), ada.marker, 'the page reloaded');
  assert.match(server.output(), /hotswap dev: src\/lib\.rs changed → editor 1\.0\.0-dev\.\d+ live: build \d+\.\d\d s, publish\+push \d+ ms/);
  await ada.page.screenshot({ path: `${ARTIFACTS}/dev-live.png` });
});

test('a compile error shows in an overlay and the terminal while the old logic answers; fixing it goes live', { timeout: 180000 }, async () => {
  const before = await ada.page.evaluate(() => window.__demo.slot.current.version);
  const failed = await save('pub fn text(', 'pub fn text(((', (e) => e.type === 'build-failed');
  assert.match(failed.message, /error/);
  const overlay = ada.page.locator('#hotswap-dev-overlay');
  await overlay.waitFor({ state: 'visible', timeout: 30000 });
  assert.match(await overlay.textContent(), /Build failed[\s\S]*error[\s\S]*src\/lib\.rs/);
  assert.match(server.output(), /src\/lib\.rs changed → build failed after \d+\.\d\d s; the last good version stays live/);
  await ada.page.screenshot({ path: `${ARTIFACTS}/dev-compile-error.png` });

  // Underneath, the page still edits with the last good version.
  await ada.page.keyboard.press('End');
  await ada.page.keyboard.type(' still', { delay: 5 });
  await settled(ada);
  assert.equal(await textOf(ada), 'hello dev loop still');
  assert.equal(await ada.page.evaluate(() => window.__demo.slot.current.version), before);
  assert.equal(await ada.page.evaluate(() => window.__demo.slot.callString('text', '')), 'hello dev loop still');
  await view(ada, label);

  // The fix and a new string, saved together.
  const next = events.next((e) => e.type === 'published');
  editSource(guest, 'pub fn text(((', 'pub fn text(');
  label = '1.0.0 (fixed)';
  editSource(guest, shown('1.0.0 (edited live)'), shown(label));
  const published = await next;
  await overlay.waitFor({ state: 'hidden', timeout: 30000 });
  await running(ada, published.version);
  await view(ada, label);
  assert.equal(await textOf(ada), 'hello dev loop still');
  assert.equal(await ada.page.evaluate(() => window.__loadMarker), ada.marker, 'the page reloaded');
});

test('a build that traps on edit is rolled back automatically, shown in the page, and the next save goes live', { timeout: 180000 }, async () => {
  const good = await ada.page.evaluate(() => window.__demo.slot.current.version);
  const broken = await save(EDIT_FN, TRAP);
  await running(ada, broken.version);
  await ada.page.keyboard.type('!', { delay: 5 });
  // Its first edit traps: the loader rolls back to the last good build, the edit is made
  // again there, and the page and the dev status say what happened.
  await running(ada, good);
  await ada.page.locator('#hotswap-dev-status', { hasText: `${broken.version} trapped` }).waitFor({ timeout: 30000 });
  await ada.page.locator('#notice', { hasText: `editor ${broken.version} failed on this page (it trapped)` }).waitFor({ timeout: 30000 });
  await settled(ada);
  assert.equal(await textOf(ada), 'hello dev loop still!');
  await ada.page.screenshot({ path: `${ARTIFACTS}/dev-trap-rolled-back.png` });

  label = '1.0.0 (after the trap)';
  const next = events.next((e) => e.type === 'published');
  editSource(guest, TRAP, EDIT_FN);
  editSource(guest, shown('1.0.0 (fixed)'), shown(label));
  const fixed = await next;
  await running(ada, fixed.version);
  await view(ada, label);
  await ada.page.keyboard.type('?', { delay: 5 });
  await settled(ada);
  assert.equal(await textOf(ada), 'hello dev loop still!?');
  assert.equal(await ada.page.evaluate(() => window.__loadMarker), ada.marker, 'the page reloaded');
});

test('files saved together build once, and a save during a build supersedes it', { timeout: 180000 }, async () => {
  // Two files at once: a new module and the line that uses it.
  const from = events.seen.length;
  const together = events.next((e) => e.type === 'published');
  await writeFile(join(guest, 'src', 'dev_note.rs'), 'pub const NOTE: &str = "1.0.0 (two files)";\n');
  editSource(guest, shown(label), '    dev_note::NOTE\n};\nmod dev_note;');
  const published = await together;
  assert.deepEqual(published.changed, ['src/dev_note.rs', 'src/lib.rs']);
  assert.deepEqual(events.seen.slice(from).filter((e) => e.type !== 'building').map((e) => e.type), ['published']);
  await view(ada, '1.0.0 (two files)');

  // A save while cargo builds the previous one: that build is stopped, the newer one wins.
  const start = events.seen.length;
  const building = events.next((e) => e.type === 'building');
  const outcome = events.next((e) => e.type === 'published');
  await writeFile(join(guest, 'src', 'dev_note.rs'), 'pub const NOTE: &str = "1.0.0 (superseded)";\n');
  await building;
  await writeFile(join(guest, 'src', 'dev_note.rs'), 'pub const NOTE: &str = "1.0.0 (superseding)";\n');
  const last = await outcome;
  await running(ada, last.version);
  await view(ada, '1.0.0 (superseding)');
  const outcomes = events.seen.slice(start).filter((e) => e.type !== 'building');
  assert.deepEqual(outcomes.map((e) => e.type), ['published'], 'the superseded build was published');
  assert.match(server.output(), /a newer change supersedes the build under way/);
  assert.deepEqual(ada.problems, []);
});

test('Ctrl-C during a build stops the server, cargo and its compilers cleanly', { timeout: 120000 }, async () => {
  await ada.context.close();
  const building = events.next((e) => e.type === 'building');
  editSource(guest, 'pub fn text(', 'pub fn  text(');
  await building;
  assert.equal(await server.stop('SIGINT'), 0, 'demo-app did not exit cleanly on Ctrl-C');
  const left = execFileSync('ps', ['-eo', 'args']).toString().split('\n').filter((line) => line.includes(guest));
  assert.deepEqual(left, [], 'a build process outlived the server');
});
