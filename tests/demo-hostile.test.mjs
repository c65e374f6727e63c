// The demo in a hostile world, end to end against the real server in Chromium: hostile
// relay clients, other origins and host names, Markdown payloads, a broken release on first
// load, a server that goes away while a page loads, and a phone-sized screen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch } from './support/browser.mjs';
import { startDemo, deploy } from './support/demo-server.mjs';
import { openEditor, running, settled, textOf } from './support/editor-page.mjs';
import { start as startFixtureServer } from './support/server.mjs';

const ARTIFACTS = 'tests/artifacts';
let browser;
const cleanups = [];

before(async () => {
  browser = await launch();
  await mkdir(ARTIFACTS, { recursive: true });
});
after(async () => {
  await browser?.close();
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A demo server with its own data directory (removed at the end). */
async function ownServer() {
  const data = await mkdtemp(join(tmpdir(), 'hotswap-demo-'));
  const server = await startDemo({ data });
  const handle = { server, data };
  cleanups.push(async () => {
    await handle.server.stop();
    await rm(data, { recursive: true, force: true });
  });
  return handle;
}

/** In `page` (same origin as the demo unless said otherwise): open a raw relay socket. */
const RAW_SOCKET = `
  window.rawSocket = (url) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/ws');
    ws.binaryType = 'arraybuffer';
    ws.answers = [];
    ws.onmessage = ({ data }) => {
      if (typeof data !== 'string') return;
      const message = JSON.parse(data);
      if (message.type === 'synced') resolve(ws);
      if (message.type === 'ack' || message.type === 'refused') ws.answers.push(message);
    };
    ws.onclose = (e) => { ws.closedWith = e.code; reject(new Error('closed ' + e.code)); };
  });
  window.answers = (ws, n) => new Promise((resolve) => {
    const poll = () => (ws.answers.length >= n || ws.closedWith ? resolve(ws.answers) : setTimeout(poll, 10));
    poll();
  });`;

const refusalLines = (log) => log.split('\n').filter((l) => l.includes('refused a message from peer'));

test('a hostile relay client can neither break, flood nor bloat the document; each refusal reaches the sender and is logged once, and everyone keeps typing', { timeout: 120000 }, async () => {
  const { server, data } = await ownServer();
  const a = await openEditor(browser, 'Ada', server.url);
  const b = await openEditor(browser, 'Bob', server.url);
  await a.page.click('#text');
  await a.page.keyboard.type('shared ', { delay: 5 });
  await settled(a);
  const logBytes = async () => (await stat(join(data, 'updates.log'))).size;
  const stored = await logBytes();

  // The attacker: a script on a page of the demo's origin, with the relay's URL.
  const attacker = await (await browser.newContext()).newPage();
  await attacker.goto(`${server.url}/style.css`);
  await attacker.evaluate(RAW_SOCKET); // (a <script> tag would be stopped by the page's CSP)
  const deleteText = (await readFile('tests/support/delete-text-change.hex', 'utf8')).trim();
  const answers = await attacker.evaluate(async ({ url, hex }) => {
    const ws = await window.rawSocket(url);
    ws.send(Uint8Array.from(hex.match(/../g).map((h) => parseInt(h, 16)))); // deletes the text object
    ws.send(new Uint8Array([1, 2, 3]));
    ws.send('not a change');
    ws.send(new Uint8Array(300 << 10));
    return window.answers(ws, 4);
  }, { url: server.url, hex: deleteText });
  assert.deepEqual(answers.map((r) => r.code), ['SCHEMA_VIOLATION', 'MALFORMED_CHANGE', 'NOT_BINARY', 'TOO_LARGE']);
  assert.match(answers[0].message, /root map is fixed/);

  // 3,000 messages at once: the burst is answered, then one RATE_LIMITED and the door shuts.
  const flood = await attacker.evaluate(async (url) => {
    const ws = await window.rawSocket(url);
    const closed = new Promise((resolve) => { ws.onclose = (e) => resolve(e.code); });
    for (let i = 0; i < 3000 && ws.readyState === WebSocket.OPEN; i++) ws.send(new Uint8Array([i & 255, 7, 7]));
    const code = await closed;
    const counts = {};
    for (const a of ws.answers) counts[a.code] = (counts[a.code] ?? 0) + 1;
    return { code, counts, retryMs: ws.answers.at(-1).retryMs };
  }, server.url);
  assert.equal(flood.code, 1013, 'closed with "try again later"');
  assert.equal(flood.counts.RATE_LIMITED, 1);
  assert.ok(flood.counts.MALFORMED_CHANGE <= 210, JSON.stringify(flood.counts));
  assert.ok(flood.retryMs > 0 && flood.retryMs <= 1000, `retry in ${flood.retryMs} ms`);

  // Ten messages of 4 MiB: the first ends the connection before it is even buffered.
  const huge = await attacker.evaluate(async (url) => {
    const ws = await window.rawSocket(url);
    const closed = new Promise((resolve) => { ws.onclose = (e) => resolve(e.code); });
    for (let i = 0; i < 10; i++) ws.send(new Uint8Array(4 << 20));
    return closed;
  }, server.url);
  assert.notEqual(huge, 1000, 'the connection was cut, not closed normally');
  assert.equal(await logBytes(), stored, 'the attacker stored nothing');
  const lines = refusalLines(server.log());
  for (const code of ['SCHEMA_VIOLATION', 'MALFORMED_CHANGE', 'NOT_BINARY', 'TOO_LARGE', 'RATE_LIMITED']) {
    assert.equal(lines.filter((l) => l.includes(code)).length, code === 'MALFORMED_CHANGE' ? 2 : 1, `${code} logged once per connection:\n${lines.join('\n')}`);
  }
  assert.match(server.log(), /refused in all: \d+ × MALFORMED_CHANGE/);

  // The pages never noticed, and keep typing together.
  await b.page.click('#text');
  await b.page.keyboard.press('End');
  await b.page.keyboard.type('and typed on', { delay: 5 });
  await a.page.waitForFunction(() => document.querySelector('#text').value === 'shared and typed on', null, { timeout: 10000 });

  // A page that sends something bad sees the refusal, once, however often it happens.
  await a.page.evaluate(() => { for (let i = 0; i < 40; i++) window.__demo.socket.send(new Uint8Array([9, 9, 9])); });
  await a.page.locator('#notice', { hasText: 'The server refused a change from this page (MALFORMED_CHANGE' }).waitFor();
  await a.page.locator('#toasts .toast', { hasText: '×40' }).waitFor();
  assert.ok((await a.page.locator('#toasts .toast').count()) <= 3, 'toasts are capped');
  // Its own next change goes through, and the notice goes with the cause.
  await a.page.keyboard.type('!', { delay: 5 });
  await a.page.waitForFunction(() => document.querySelector('#notice').hidden, null, { timeout: 10000 });

  // A restarted server loads its checked document; a new page gets all of it.
  const expected = await textOf(a);
  const port = new URL(server.url).port;
  await server.stop();
  const again = await startDemo({ data, port });
  cleanups.push(() => again.stop());
  const c = await openEditor(browser, 'Cy', again.url);
  await c.page.waitForFunction((t) => document.querySelector('#text').value === t, expected);
  // The restart cuts whatever the pages had in flight (refused or reset): not a problem.
  for (const p of [a, b, c]) assert.deepEqual(p.problems.filter((m) => !/WebSocket|ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET/.test(m)), []);
});

test('other origins cannot use the relay, another host name gets nothing (DNS rebinding), and only the deploy link can deploy', { timeout: 90000 }, async () => {
  const { server, data } = await ownServer();
  assert.match(server.printed, new RegExp(`deploy link .*${server.url}/#deploy=${server.token}`), 'the link is printed on the first start');

  // A page of another origin (another port) opens the relay: refused.
  const other = await startFixtureServer(0);
  cleanups.push(() => new Promise((done) => { other.server.closeAllConnections(); other.server.close(done); }));
  const foreign = await (await browser.newContext()).newPage();
  await foreign.goto(`${other.url}/__token`);
  const opened = await foreign.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/ws');
    ws.onopen = () => resolve('open');
    ws.onclose = (e) => resolve(`closed ${e.code}`);
  }), server.url);
  assert.equal(opened, 'closed 1006');
  assert.match(server.log(), new RegExp(`refused a WebSocket: origin ${other.url} is not allowed`));

  // DNS rebinding: a name the attacker controls now resolves to the demo's address.
  const rebinding = await launch(['--host-resolver-rules=MAP rebind.test 127.0.0.1']);
  cleanups.push(() => rebinding.close());
  const port = new URL(server.url).port;
  const rebound = await (await rebinding.newContext()).newPage();
  const response = await rebound.goto(`http://rebind.test:${port}/`);
  assert.equal(response.status(), 421);
  assert.match(await rebound.textContent('body'), /does not answer for host rebind\.test/);
  const config = await rebound.evaluate(async () => (await fetch('/api/config')).status);
  assert.equal(config, 421);

  // Without the deploy link the buttons are locked; with it they deploy.
  const plain = await openEditor(browser, 'Ada', server.url);
  await plain.page.locator('#versions button[data-version="1.1.0"]').waitFor();
  assert.equal(await plain.page.locator('#versions button:not([disabled])').count(), 0);
  assert.equal(await plain.page.isVisible('#deploy-lock'), true);
  const deployer = await openEditor(browser, 'Bob', server.url, { path: `/#deploy=${server.token}` });
  assert.equal(new URL(deployer.page.url()).hash, '', 'the credential leaves the address bar');
  await deployer.page.click('#versions button[data-version="1.1.0"]');
  for (const p of [plain, deployer]) await running(p, '1.1.0');
  assert.equal(await deployer.page.isVisible('#deploy-lock'), false);
  // A forged or stale credential is refused, and says what is needed.
  await plain.page.evaluate(() => localStorage.setItem('hotswap-deploy-token', 'f'.repeat(64)));
  await plain.page.reload();
  await plain.page.locator('#text:not([disabled])').waitFor();
  await plain.page.click('#versions button[data-version="2.0.0"]');
  await plain.page.locator('#toasts', { hasText: 'deploy credential' }).waitFor();
  await running(plain, '1.1.0');
  // A restart does not print the credential again.
  const portNow = new URL(server.url).port;
  await server.stop();
  const again = await startDemo({ data, port: portNow });
  cleanups.push(() => again.stop());
  assert.doesNotMatch(again.printed, /#deploy=/);
  for (const p of [plain, deployer]) assert.deepEqual(p.problems.filter((m) => !/401|WebSocket|ERR_CONNECTION_REFUSED/.test(m)), []);
});

test('Markdown typed by another user runs no script and loads nothing from elsewhere, even when its links are clicked', { timeout: 90000 }, async () => {
  const { server } = await ownServer();
  await deploy(server, '1.1.0');
  const writer = await openEditor(browser, 'Mallory', server.url);
  const victim = await openEditor(browser, 'Vic', server.url);
  await running(victim, '1.1.0');
  const dialogs = [];
  const foreign = [];
  victim.page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  victim.page.on('request', (r) => { if (!r.url().startsWith(server.url) && !r.url().startsWith('data:')) foreign.push(r.url()); });
  await writer.page.click('#text');
  await writer.page.keyboard.insertText('hello');
  await victim.page.locator('#counts', { hasText: '1 word · 5 characters' }).waitFor();
  const payloads = [
    '[click me](javascript:alert(1))',
    '[upper](JaVaScRiPt:alert(2))',
    '[entity](&#106;avascript:alert(3))',
    '<javascript:alert(4)>',
    '[data](data:text/html,<script>alert(5)</script>)',
    '![pixel](http://evil.test/pixel.png)',
    '![relative-host](//evil.test/p.png)',
    '<img src=x onerror=alert(6)>',
    '<script>alert(7)</script>',
    '[title](#top "x\\" onmouseover=alert(8) \\"")',
    '<a href="javascript:alert(9)">raw link</a>',
    '<iframe src="javascript:alert(10)"></iframe>',
  ];
  await writer.page.keyboard.insertText(`\n\n${payloads.join('\n\n')}`);
  await victim.page.locator('#preview', { hasText: 'relative-host' }).waitFor();
  const hrefs = await victim.page.$$eval('#preview a', (as) => as.map((a) => a.getAttribute('href')));
  assert.deepEqual(hrefs, ['#top'], 'only the harmless link kept its target');
  assert.equal(await victim.page.locator('#preview img, #preview script, #preview iframe').count(), 0);
  for (const link of await victim.page.locator('#preview a, #preview').all()) {
    await link.hover();
    await link.click();
  }
  await victim.page.waitForTimeout(500);
  assert.deepEqual(dialogs, [], 'no script ran');
  assert.deepEqual(foreign, [], 'nothing was requested from elsewhere');
  assert.equal(new URL(victim.page.url()).pathname, '/');
  // The policy that would stop anything that got through.
  const headers = (await fetch(`${server.url}/`)).headers;
  assert.match(headers.get('content-security-policy'), /script-src 'self' 'wasm-unsafe-eval';.*img-src 'self' data:;.*frame-ancestors 'none'/);
  assert.equal(headers.get('x-content-type-options'), 'nosniff');
  assert.equal(headers.get('referrer-policy'), 'no-referrer');
  for (const p of [writer, victim]) assert.deepEqual(p.problems, []);
});

test('a page opened while the current release is broken runs the bundled editor, later the last good one, and loses no keystroke; deploying the broken one again is not silent', { timeout: 120000 }, async () => {
  const { server } = await ownServer();
  await deploy(server, '2.1.0');
  const p = await openEditor(browser, 'Ada', server.url);
  await running(p, '2.1.0'); // on probation, the bundled 1.0.0 behind it
  await p.page.click('#text');
  await p.page.keyboard.type('abc', { delay: 20 });
  await running(p, '1.0.0');
  await p.page.locator('#notice', { hasText: 'editor 2.1.0 failed on this page' }).waitFor();
  assert.match(await p.page.textContent('#notice'), /running editor 1\.0\.0, the editor bundled with this page instead\. No text was lost/);
  await settled(p);
  assert.equal(await textOf(p), 'abc');
  const timeline = (await p.page.locator('#timeline li').allTextContents()).join(' | ');
  assert.match(timeline, /rollback 2\.1\.0 → editor 1\.0\.0 \(it trapped\)/);
  assert.match(timeline, /1\.0\.0 → editor 2\.1\.0.*total \d+\.\d ms/);
  const button = p.page.locator('#versions button[data-version="2.1.0"]');
  assert.match(await button.getAttribute('class'), /deployed.*failed|failed.*deployed/);

  // 2.0.0 runs fine here, past its probation.
  await deploy(server, '2.0.0');
  await running(p, '2.0.0');
  await p.page.waitForFunction(() => document.querySelector('#notice').hidden, null, { timeout: 10000 });
  await p.page.keyboard.type('defghijklmnopqrstu', { delay: 10 });
  await p.page.waitForFunction(() => !window.__demo.slot.onProbation);

  // 2.1.0 deployed again: the page tries it again, falls back, and says so.
  await deploy(server, '2.1.0');
  await running(p, '2.1.0');
  await p.page.keyboard.type('v', { delay: 20 });
  await running(p, '2.0.0');
  await p.page.locator('#notice', { hasText: 'editor 2.1.0 failed on this page' }).waitFor();

  // A reload starts on 2.0.0, the last release that ran fine here, and falls back to it.
  await settled(p);
  await p.page.reload();
  await p.page.locator('#text:not([disabled])').waitFor();
  assert.equal(await p.page.textContent('#running'), 'editor 2.1.0');
  await p.page.click('#text');
  await p.page.keyboard.press('End');
  await p.page.keyboard.type('w', { delay: 20 });
  await running(p, '2.0.0');
  assert.match(await p.page.textContent('#notice'), /editor 2\.1\.0 failed on this page.*running editor 2\.0\.0 instead/);
  await settled(p);
  assert.equal(await textOf(p), 'abcdefghijklmnopqrstuvw');
  assert.deepEqual(p.problems, []);
});

test('a page that was loading when the server went down says so, retries with backoff and starts once it is back; notices go with their cause', { timeout: 120000 }, async () => {
  const { data, server } = await ownServer();
  const port = new URL(server.url).port;
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  // The page and its scripts arrive; the server goes down before the page asks for its config.
  await page.route('**/api/config', async (route) => {
    await server.stop();
    await route.continue().catch(() => {});
  }, { times: 1 });
  await page.goto(`${server.url}/`);
  await page.locator('#notice', { hasText: 'Cannot load the editor logic' }).waitFor();
  assert.match(await page.textContent('#notice'), /Retrying in \d+ s \(attempt \d+\)/);
  assert.equal(await page.isDisabled('#text'), true);
  await page.waitForTimeout(2500);
  const back = await startDemo({ data, port });
  const handle = { server: back };
  cleanups.push(() => handle.server.stop());
  await page.locator('#text:not([disabled])').waitFor({ timeout: 40000 });
  assert.equal(await page.isHidden('#notice'), true, 'the notice went with the outage');
  assert.equal(await page.textContent('#link'), 'online');

  // Down again while the page runs: it says so (the relay, then the registry check)…
  await page.click('#text');
  await page.keyboard.type('typed while online', { delay: 5 });
  await page.waitForFunction(() => window.__demo.unacked.length === 0);
  await back.stop();
  await page.locator('#notice', { hasText: 'Connection to the server lost' }).waitFor();
  await page.locator('#notice', { hasText: 'FETCH_FAILED' }).waitFor({ timeout: 40000 });
  // …and once it is back, every notice of the outage is gone.
  handle.server = await startDemo({ data, port });
  await page.waitForFunction(() => document.querySelector('#notice').hidden, null, { timeout: 40000 });
  assert.equal(await page.inputValue('#text'), 'typed while online');
  assert.deepEqual(problems, []);
});

test('on a phone (390×844) the page is one column: nothing scrolls sideways, the header is whole, the panel is below the text, and typing works', { timeout: 60000 }, async () => {
  const { server } = await ownServer();
  await deploy(server, '2.0.0');
  const phone = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 3 };
  const p = await openEditor(browser, 'Ada', server.url, { context: phone });
  await running(p, '2.0.0');
  await p.page.getByLabel('Shared document').tap();
  await p.page.keyboard.type('typed on a phone', { delay: 5 });
  await p.page.locator('#authors', { hasText: 'Ada' }).waitFor();
  const layout = await p.page.evaluate(() => {
    const box = (e) => e.getBoundingClientRect();
    const shown = [...document.querySelectorAll('header.bar > *')].filter((e) => getComputedStyle(e).display !== 'none');
    return {
      scrollWidth: document.documentElement.scrollWidth,
      header: shown.map((e) => ({ left: box(e).left, right: box(e).right })),
      text: box(document.querySelector('#text')),
      aside: box(document.querySelector('aside')),
    };
  });
  assert.ok(layout.scrollWidth <= 390, `the page is ${layout.scrollWidth} px wide`);
  for (const h of layout.header) assert.ok(h.left >= 0 && h.right <= 390, `header item at ${h.left}–${h.right}`);
  assert.ok(layout.aside.top >= layout.text.bottom, 'the panel is below the text, not over it');
  assert.ok(layout.text.width >= 340, `text area ${layout.text.width} px wide`);
  assert.equal(await p.page.inputValue('#text'), 'typed on a phone');
  await p.page.screenshot({ path: `${ARTIFACTS}/demo-phone.png`, fullPage: true });
  assert.deepEqual(p.problems, []);
});
