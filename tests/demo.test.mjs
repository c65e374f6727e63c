// The demo end to end: two browser windows type concurrently while the deployment goes
// 1.0.0 -> 1.1.0 -> 2.0.0 -> 2.1.0 (broken: rolled back automatically) -> 1.1.0 (downgrade).
// No keystroke may be lost, no page may reload, and a restarted server keeps the document.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch } from './support/browser.mjs';
import { startDemo, deploy, deployWithCli } from './support/demo-server.mjs';
import { openEditor as openPage, running, adopted, settled } from './support/editor-page.mjs';

const ARTIFACTS = 'tests/artifacts';
const debug = (...args) => { if (process.env.DEMO_DEBUG) console.error(...args); };
let browser, data, server;

before(async () => {
  data = await mkdtemp(join(tmpdir(), 'hotswap-demo-'));
  server = await startDemo({ data });
  browser = await launch();
  await mkdir(ARTIFACTS, { recursive: true });
});
after(async () => {
  await browser?.close();
  await server?.stop();
  await rm(data, { recursive: true, force: true });
});

const openEditor = (name, url = server.url) => openPage(browser, name, url);

/** Each page types only its own characters, so its keystrokes can be picked out of the text. */
function keystrokes(alphabet, count) {
  return Array.from({ length: count }, (_, i) => alphabet[(i * 7) % alphabet.length]).join('');
}
const A_KEYS = 'abcdefghijklmnopqrstuvwxyz';
const B_KEYS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';

test('two windows typing through five deployments converge with every keystroke, then survive a server restart', { timeout: 180000 }, async () => {
  const a = await openEditor('Ada');
  const b = await openEditor('Bob');
  const typedA = keystrokes(A_KEYS, 300);
  const typedB = keystrokes(B_KEYS, 300);
  // Typed in chunks of 30: one before the deployments, then two per deployment — one while
  // the new version arrives and takes over, one once both pages run it.
  const chunks = (s) => Array.from({ length: 10 }, (_, i) => s.slice(i * 30, (i + 1) * 30));
  const [ca, cb] = [chunks(typedA), chunks(typedB)];
  const typeBoth = (i) => Promise.all([a.page.keyboard.type(ca[i], { delay: 4 }), b.page.keyboard.type(cb[i], { delay: 4 })]);
  await a.page.click('#text');
  await b.page.click('#text');
  await b.page.keyboard.press('End');

  const steps = [
    { deploy: '1.1.0', expect: async (p) => p.page.locator('#counts').waitFor() },
    { deploy: '2.0.0', expect: async (p) => p.page.locator('#authors', { hasText: 'Ada' }).waitFor() },
    { deploy: '2.1.0', expect: async (p) => running(p, '2.0.0') }, // broken: rolled back on its first edit
    { deploy: '1.1.0', expect: async (p) => { await running(p, '1.1.0'); assert.equal(await p.page.locator('#authors').count(), 0); } },
  ];
  await typeBoth(0);
  await typeBoth(1);
  await a.page.screenshot({ path: `${ARTIFACTS}/demo-before-swap.png` });
  for (const [i, step] of steps.entries()) {
    debug(`deploy ${step.deploy}`);
    await deploy(server, step.deploy);
    await typeBoth(2 + 2 * i);
    debug('typed during the swap');
    await Promise.all([adopted(a, step.deploy), adopted(b, step.deploy)]);
    debug('adopted');
    await typeBoth(3 + 2 * i);
    debug('typed after');
    await Promise.all([step.expect(a), step.expect(b)]);
    debug('expectation met');
    if (i === 0) await a.page.screenshot({ path: `${ARTIFACTS}/demo-after-swap.png` });
  }
  await Promise.all([settled(a), settled(b)]);
  await a.page.waitForFunction(async (other) => document.querySelector('#text').value.length === other, typedA.length + typedB.length);
  await b.page.waitForFunction(async (other) => document.querySelector('#text').value.length === other, typedA.length + typedB.length);

  const [textA, textB] = [await a.page.inputValue('#text'), await b.page.inputValue('#text')];
  assert.equal(textA, textB, 'the two windows disagree');
  const only = (s, alphabet) => [...s].filter((c) => alphabet.includes(c)).join('');
  assert.equal(only(textA, A_KEYS), typedA, "Ada's keystrokes are not all there, in order");
  assert.equal(only(textA, B_KEYS), typedB, "Bob's keystrokes are not all there, in order");
  const timeline = await a.page.locator('#timeline li').allTextContents();
  assert.ok(timeline.some((t) => t.includes('2.1.0')), `no 2.1.0 swap in the timeline: ${timeline.join(' | ')}`);
  for (const p of [a, b]) {
    assert.equal(await p.page.evaluate(() => window.__loadMarker), p.marker, 'a page reloaded');
  }
  await a.page.screenshot({ path: `${ARTIFACTS}/demo-final.png` });
  assert.deepEqual([...a.problems, ...b.problems].slice(0, 5), []);
  await a.context.close();
  await b.context.close();

  // Restart the server on the same data: a window opened afterwards gets the whole document.
  const port = new URL(server.url).port;
  await server.stop();
  server = await startDemo({ data, port });
  const c = await openEditor('Cy');
  await c.page.waitForFunction((expected) => document.querySelector('#text').value === expected, textA);
  await running(c, '1.1.0');
  assert.deepEqual(c.problems, []);
});

test('cursor, selection and undo history survive a swap deployed with npm run deploy', { timeout: 60000 }, async () => {
  const ownData = await mkdtemp(join(tmpdir(), 'hotswap-demo-'));
  const own = await startDemo({ data: ownData });
  try {
    const p = await openEditor('Ada', own.url);
    await p.page.click('#text');
    await p.page.keyboard.type('hello brave world', { delay: 5 });
    await p.page.evaluate(() => document.querySelector('#text').setSelectionRange(6, 11, 'backward'));
    assert.match(await deployWithCli(ownData, '1.1.0'), /editor: current 1\.0\.0 -> 1\.1\.0/);
    await running(p, '1.1.0');
    const selection = await p.page.evaluate(() => {
      const t = document.querySelector('#text');
      return [t.selectionStart, t.selectionEnd, t.selectionDirection, document.activeElement === t];
    });
    assert.deepEqual(selection, [6, 11, 'backward', true]);
    // The page's CSP lets the loader start its worker: the state was converted off the main
    // thread (pre-copy), not inside the pause.
    assert.equal(await p.page.evaluate(() => window.__demo.lastCommit?.transfer), 'precopy');
    // Undo and redo reach back to keystrokes made under 1.0.0.
    await p.page.keyboard.press('Control+z');
    await p.page.keyboard.press('Control+z');
    assert.equal(await p.page.inputValue('#text'), 'hello brave wor');
    await p.page.keyboard.press('Control+Shift+z');
    assert.equal(await p.page.inputValue('#text'), 'hello brave worl');
    await p.page.waitForFunction(() => window.__demo.unacked.length === 0);
    assert.deepEqual(p.problems, []);
    await p.context.close();
    await assert.rejects(deployWithCli(ownData, '9.9.9'), /editor 9\.9\.9 is not listed in the signed manifest/);
  } finally {
    assert.equal(await own.stop('SIGTERM'), 0, 'demo-app did not shut down cleanly on SIGTERM');
    await rm(ownData, { recursive: true, force: true });
  }
});

test('a module tampered with on the server is never served: open pages refuse it, keep editing and say why, take it once repaired (reloads too); a forged manifest sends new pages to the bundled editor', { timeout: 120000 }, async () => {
  const ownData = await mkdtemp(join(tmpdir(), 'hotswap-demo-'));
  const own = await startDemo({ data: ownData });
  const manifestPath = join(ownData, 'registry/manifest.json');
  const readManifest = async () => {
    const envelope = JSON.parse(await readFile(manifestPath, 'utf8'));
    return { envelope, payload: JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) };
  };
  try {
    const a = await openEditor('Ada', own.url);
    const b = await openEditor('Bob', own.url);
    await a.page.click('#text');
    await a.page.keyboard.type('before ', { delay: 5 });
    await settled(a);

    // Someone with write access to the server's files replaces 1.1.0's module; then 1.1.0
    // is deployed (the manifest itself is genuine and lists the original digest). The
    // server does not serve bytes that do not match their address, so no browser caches them.
    const { payload } = await readManifest();
    const file = join(ownData, 'registry', payload.guests.editor.versions['1.1.0'].url);
    const good = await readFile(file);
    const bad = Buffer.from(good);
    bad[bad.length >> 1] ^= 0x01;
    await writeFile(file, bad);
    await deploy(own, '1.1.0');
    for (const p of [a, b]) {
      await p.page.locator('#notice', { hasText: 'Refused editor 1.1.0' }).waitFor({ timeout: 20000 });
      assert.match(await p.page.textContent('#notice'), /Refused editor 1\.1\.0: HTTP_STATUS: .*HTTP 500\. Still running editor 1\.0\.0.*Will try again/);
      assert.equal(await p.page.textContent('#running'), 'editor 1.0.0');
    }
    assert.equal(own.log().split('does not match its digest').length - 1, 1, `logged once:\n${own.log()}`);
    await b.page.click('#text');
    await b.page.keyboard.press('End');
    await b.page.keyboard.type('after', { delay: 5 });
    await a.page.waitForFunction(() => document.querySelector('#text').value === 'before after', null, { timeout: 10000 });

    // Repaired: the server announces it, the open pages take 1.1.0 and their notice goes;
    // a reload runs 1.1.0 too (nothing wrong was cached).
    await writeFile(file, good);
    for (const p of [a, b]) {
      await running(p, '1.1.0');
      await p.page.waitForFunction(() => document.querySelector('#notice').hidden, null, { timeout: 20000 });
    }
    await b.page.reload();
    await b.page.locator('#text:not([disabled])').waitFor();
    await running(b, '1.1.0');

    // The manifest edited on the server without the key (current pointed at 2.0.0): open
    // pages refuse it and stay; a page opened now cannot trust the registry at all, so it
    // runs the editor bundled with the app (pinned by digest) and says so.
    const { envelope, payload: edited } = await readManifest();
    edited.version += 1;
    edited.guests.editor.current = '2.0.0';
    envelope.payload = Buffer.from(JSON.stringify(edited)).toString('base64');
    await writeFile(manifestPath, JSON.stringify(envelope));
    for (const p of [a, b]) await p.page.locator('#notice', { hasText: 'MANIFEST_SIGNATURE' }).waitFor({ timeout: 20000 });
    const c = await openEditor('Cy', own.url);
    await c.page.locator('#notice', { hasText: 'bundled' }).waitFor();
    assert.match(await c.page.textContent('#notice'), /MANIFEST_SIGNATURE/);
    await running(c, '1.0.0');
    await c.page.waitForFunction(() => document.querySelector('#text').value === 'before after');
    for (const [p, version] of [[a, '1.1.0'], [b, '1.1.0'], [c, '1.0.0']]) {
      assert.equal(await p.page.textContent('#running'), `editor ${version}`);
      assert.deepEqual(p.problems.filter((m) => !/status of 500/.test(m)), []);
    }
    await c.page.screenshot({ path: `${ARTIFACTS}/demo-refused.png` });
  } finally {
    await own.stop();
    await rm(ownData, { recursive: true, force: true });
  }
});

test('a replayed older manifest is refused by open pages and, after a reload, by the page that had seen the newer one', { timeout: 60000 }, async () => {
  const ownData = await mkdtemp(join(tmpdir(), 'hotswap-demo-'));
  const own = await startDemo({ data: ownData });
  const manifestPath = join(ownData, 'registry/manifest.json');
  try {
    const older = await readFile(manifestPath); // genuine, signed: it names 1.0.0
    const a = await openEditor('Ada', own.url);
    await deploy(own, '1.1.0');
    await adopted(a, '1.1.0');
    await running(a, '1.1.0');
    // The server (or a mirror) serves the older, validly signed manifest again.
    await writeFile(manifestPath, older);
    await a.page.locator('#notice', { hasText: 'MANIFEST_ROLLBACK' }).waitFor({ timeout: 20000 });
    assert.equal(await a.page.textContent('#running'), 'editor 1.1.0');
    await a.page.reload();
    await a.page.locator('#text:not([disabled])').waitFor();
    // The last manifest version seen survived the reload (localStorage): the replay is
    // still refused, and the page runs its bundled editor rather than the older release.
    assert.match(await a.page.textContent('#notice'), /bundled.*MANIFEST_ROLLBACK/);
    await running(a, '1.0.0');
    assert.deepEqual(a.problems, []);
  } finally {
    await own.stop();
    await rm(ownData, { recursive: true, force: true });
  }
});
