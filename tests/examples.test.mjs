// The npm package as a web developer outside this repo uses it: the packed tarball installed
// into examples/vite (its own package, outside the workspace), driven in Chromium under the
// Vite 6, 7 and 8 dev servers and from production builds; typechecked with tsc --strict, with
// the README's code blocks; used from plain Node; and a guest written in WebAssembly text
// (examples/wat-guest) loaded and swapped by it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch, watchedPage } from './support/browser.mjs';
import { EXAMPLES, ROOT, installTarball, npmInstall, packLoader, run, startVite } from './support/examples.mjs';

const APP = join(EXAMPLES, 'vite');
const WAT = join(EXAMPLES, 'wat-guest');
// What the tests write for tsc and Node to read as part of the app (so that `wasm-hotswap`
// resolves to the installed tarball): the README's code blocks, tsconfigs, scripts.
const CHECK = join(APP, '.checks');
const GUESTS = join(ROOT, 'target', 'guests');
const HOTSWAP = join(ROOT, 'target', 'release', 'hotswap');
const VITE = {
  6: join(APP, 'compat', 'vite6', 'node_modules', 'vite', 'bin', 'vite.js'),
  7: join(APP, 'compat', 'vite7', 'node_modules', 'vite', 'bin', 'vite.js'),
  8: join(APP, 'node_modules', 'vite', 'bin', 'vite.js'),
};
const TSC = join(APP, 'node_modules', 'typescript', 'bin', 'tsc');
const WRONG_SHA = '0'.repeat(64);

let browser, tarball, serverId;
/** `hotswap inspect --json` of every guest the example serves, by name. */
const inspected = {};

before(async () => {
  for (const dir of [WAT, APP, join(APP, 'compat', 'vite6'), join(APP, 'compat', 'vite7')]) await npmInstall(dir);
  await run(process.execPath, ['build.mjs'], { cwd: WAT });
  tarball = await packLoader();
  await installTarball(APP, tarball);
  const guests = [join(GUESTS, 'counter-v1.wasm'), join(GUESTS, 'counter-v2.wasm'),
    join(WAT, 'dist', 'greeter-1.0.0.wasm'), join(WAT, 'dist', 'greeter-2.0.0.wasm')];
  await run(process.execPath, ['scripts/guests.mjs', ...guests], { cwd: APP });
  for (const file of guests) {
    const name = file.split('/').pop().replace(/\.wasm$/, '');
    inspected[name] = JSON.parse(await run(HOTSWAP, ['inspect', '--json', file]));
  }
  // Served by every server the tests start (and copied into each build): the server that
  // answers must be the one just started.
  serverId = randomBytes(8).toString('hex');
  await writeFile(join(APP, 'public', 'guests', 'server-id.txt'), serverId);
  await mkdir(CHECK, { recursive: true });
  browser = await launch();
});
after(async () => { await browser?.close(); });

// ---------------------------------------------------------------------------------------
// The package itself

test('the tarball holds README.md, ABI.md, both licenses, both entries with their types and both .wasm', async () => {
  const files = (await run('tar', ['-tzf', tarball])).split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
  for (const file of ['package.json', 'README.md', 'ABI.md', 'LICENSE-MIT', 'LICENSE-APACHE', 'index.js', 'index.d.ts',
    'watch.js', 'watch.d.ts', 'core/wasm_hotswap_bg.wasm', 'watch/wasm_hotswap_bg.wasm']) {
    assert.ok(files.includes(file), `${file} is not in the tarball: ${files.join(', ')}`);
  }
  const abi = await readFile(join(APP, 'node_modules', 'wasm-hotswap', 'ABI.md'), 'utf8');
  assert.equal(abi, await readFile(join(ROOT, 'docs', 'ABI.md'), 'utf8'));
});

test("the README's error codes are exactly the package's, each with the fields its declarations give it", async () => {
  const dts = await readFile(join(APP, 'node_modules', 'wasm-hotswap', 'watch', 'wasm_hotswap.d.ts'), 'utf8');
  const body = /export interface HotSwapErrorDetails \{([\s\S]*?)\n\}/.exec(dts)[1];
  const declared = Object.fromEntries([...body.matchAll(/^\s+([A-Z_0-9]+): \{([^}]*)\};/gm)]
    .map(([, code, fields]) => [code, [...fields.matchAll(/(\w+):/g)].map((f) => f[1]).sort()]));
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('**Error codes**'), readme.indexOf('## Writing a guest'));
  const listed = Object.fromEntries([...section.matchAll(/`([A-Z][A-Z_0-9]+)`(?:\s+\(([^)]*)\))?/g)]
    .map(([, code, fields]) => [code, (fields ?? '').split(/[,;:]/).map((f) => f.trim()).filter((f) => /^[a-z][A-Za-z]*$/.test(f))]));
  assert.deepEqual(Object.keys(listed).sort(), Object.keys(declared).sort(), 'codes in the README vs HotSwapErrorDetails');
  for (const [code, fields] of Object.entries(declared)) {
    for (const field of fields) assert.ok(listed[code].includes(field), `README: ${code} does not name its detail "${field}"`);
  }
});

test('from an app, the exports map resolves wasm-hotswap, wasm-hotswap/watch and each .wasm, and hides the rest', async () => {
  const specifiers = {
    'wasm-hotswap': 'index.js',
    'wasm-hotswap/watch': 'watch.js',
    'wasm-hotswap/core/wasm_hotswap_bg.wasm': 'core/wasm_hotswap_bg.wasm',
    'wasm-hotswap/watch/wasm_hotswap_bg.wasm': 'watch/wasm_hotswap_bg.wasm',
  };
  const installed = join(APP, 'node_modules', 'wasm-hotswap');
  // ESM resolution as a module of the app sees it (import.meta.resolve), then CommonJS's.
  const esm = await run(process.execPath, ['--input-type=module', '-e',
    `for (const s of ${JSON.stringify(Object.keys(specifiers))}) console.log(import.meta.resolve(s));`], { cwd: APP });
  assert.deepEqual(esm.trim().split('\n'), Object.values(specifiers).map((f) => pathToFileURL(join(installed, f)).href));
  const require = createRequire(join(APP, 'package.json'));
  for (const [specifier, file] of Object.entries(specifiers)) assert.equal(require.resolve(specifier), join(installed, file));
  // Only what the map lists: the glue behind the entries is not part of the API.
  assert.throws(() => require.resolve('wasm-hotswap/core/wasm_hotswap.js'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
});

test('an error thrown by the wasm-hotswap/watch build is instanceof the HotSwapError of the wasm-hotswap entry (two copies of the class)', async () => {
  const require = createRequire(join(APP, 'package.json'));
  const core = await import(pathToFileURL(require.resolve('wasm-hotswap')));
  const watch = await import(pathToFileURL(require.resolve('wasm-hotswap/watch')));
  assert.notEqual(core.HotSwapError, watch.HotSwapError, 'one copy of the class: this test would prove nothing');
  watch.initSync({ module: await readFile(require.resolve('wasm-hotswap/watch/wasm_hotswap_bg.wasm')) });
  const bytes = new Uint8Array(await readFile(join(GUESTS, 'counter-v1.wasm')));
  const error = await watch.HotSwap.load({ bytes, sha256: WRONG_SHA }).then(() => assert.fail('a wrong hash was accepted'), (e) => e);
  assert.equal(Object.getPrototypeOf(error), watch.HotSwapError.prototype);
  assert.ok(error instanceof core.HotSwapError);
  assert.ok(error instanceof watch.HotSwapError);
  assert.equal(error.code, 'HASH_MISMATCH');
  // Not anything called HotSwapError: it must be an Error with a code.
  assert.equal(Object.assign(new Error('x'), { name: 'HotSwapError' }) instanceof core.HotSwapError, false);
  assert.equal({ name: 'HotSwapError', code: 'HASH_MISMATCH' } instanceof core.HotSwapError, false);
});

// ---------------------------------------------------------------------------------------
// Node

/** The README's fenced ```ts and ```js blocks, in order. */
async function readmeBlocks() {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/^```(?:ts|js)\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

// Runs after the README's Node snippet, in the same module: it has `counter`, `HotSwap`,
// `readFileSync` and `createHash`.
const NODE_CONTINUATION = `
const { HotSwapError } = await import('wasm-hotswap');
const report = { loaded: counter.current.version };
const api = counter.exports;
api.increment(); api.increment(); api.increment();
const v2 = new Uint8Array(readFileSync('guests/counter-v2.wasm'));
await counter.swap({ bytes: v2, sha256: createHash('sha256').update(v2).digest('hex') });
report.swapped = { version: counter.current.version, count: api.count() };
try {
  await counter.swap({ bytes: v2, sha256: '${WRONG_SHA}' });
} catch (e) {
  report.error = { isHotSwapError: e instanceof HotSwapError, name: e.name, code: e.code, details: e.details };
}
report.afterError = counter.current.version;
await counter.rollback();
report.rolledBack = { version: counter.current.version, count: api.count() };
const watch = await import('wasm-hotswap/watch');
report.watch = typeof watch.HotSwap.watch;
counter.dispose();
await new Promise((resolve) => setImmediate(resolve));
// What would keep Node running now that everything is done (stdout, a pipe, aside).
report.handlesLeft = process.getActiveResourcesInfo().filter((r) => !['PipeWrap', 'TTYWrap'].includes(r));
console.log(JSON.stringify(report, (_, v) => (typeof v === 'bigint' ? Number(v) : v)));
// Exit even if a handle is left: the test after the Node one reports it without hanging.
process.exit(0);
`;

/** Runs the README's Node snippet and NODE_CONTINUATION in plain Node, once; its report. */
let nodeRun;
function nodeReport() {
  nodeRun ??= (async () => {
    const snippet = (await readmeBlocks()).find((b) => b.includes('initSync('));
    assert.ok(snippet, 'the README has no Node snippet calling initSync');
    // The block is TypeScript in name: strip whatever types it may gain.
    const ts = createRequire(join(APP, 'package.json'))('typescript');
    const js = ts.transpileModule(snippet, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText;
    // Next to the app's node_modules, so that `wasm-hotswap` resolves to the installed tarball.
    const script = join(CHECK, 'node-path.mjs');
    await writeFile(script, js + NODE_CONTINUATION);
    // The snippet reads guests/counter-v1.wasm from the working directory.
    const cwd = await mkdtemp(join(tmpdir(), 'hotswap-node-'));
    try {
      await mkdir(join(cwd, 'guests'));
      for (const g of ['counter-v1.wasm', 'counter-v2.wasm']) await copyFile(join(GUESTS, g), join(cwd, 'guests', g));
      return JSON.parse(await run(process.execPath, [script], { cwd }));
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  })();
  return nodeRun;
}

test("in plain Node, the README's snippet initialises with initSync and loads a guest from bytes; it swaps, rolls back, a wrong hash is a typed HotSwapError, and wasm-hotswap/watch imports", async () => {
  const { handlesLeft, ...report } = await nodeReport();
  assert.deepEqual(report, {
    loaded: '1.0.0',
    swapped: { version: '2.0.0', count: 3 },
    error: {
      isHotSwapError: true, name: 'HotSwapError', code: 'HASH_MISMATCH',
      details: { expected: WRONG_SHA, actual: inspected['counter-v2'].sha256 },
    },
    afterError: '2.0.0',
    rolledBack: { version: '1.0.0', count: 3 },
    watch: 'function',
  });
});

// The loader's next-task ticks use a MessageChannel; in Node a listening port keeps the
// process alive, so the loader listens only while a tick is awaited.
test('in plain Node, a script that swapped and disposed its guest leaves nothing that keeps Node running', async () => {
  assert.deepEqual((await nodeReport()).handlesLeft, []);
});

// ---------------------------------------------------------------------------------------
// TypeScript

const tsc = (args) => run(process.execPath, [TSC, ...args], { cwd: APP });

test('tsc --strict accepts the example against the installed package (moduleResolution Bundler and Node10)', async () => {
  await tsc(['-p', '.']);
  // Node10 reads no exports map (the package's typesVersions stand in). vite.config.ts is left
  // out: Vite 8's own types do not resolve under Node10.
  await writeFile(join(CHECK, 'tsconfig.example-node10.json'), JSON.stringify({
    extends: '../tsconfig.json',
    compilerOptions: { module: 'ES2022', moduleResolution: 'Node10' },
    include: ['../src'],
  }));
  await tsc(['-p', join(CHECK, 'tsconfig.example-node10.json')]);
});

test("tsc --strict accepts every ```ts and ```js block of the README against the installed package (Bundler, Node10, NodeNext)", async () => {
  const blocks = await readmeBlocks();
  assert.ok(blocks.length >= 3, `only ${blocks.length} code blocks found in the README`);
  for (const [i, block] of blocks.entries()) await writeFile(join(CHECK, `readme-block-${i + 1}.ts`), block);
  // Each block is a module of its own (top-level await needs ES2022 modules).
  await writeFile(join(CHECK, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: 'ES2022', lib: ['ES2022', 'DOM'], module: 'ES2022', moduleResolution: 'Bundler',
      moduleDetection: 'force', types: ['node'],
    },
    files: blocks.map((_, i) => `readme-block-${i + 1}.ts`),
  }));
  for (const options of [[], ['--moduleResolution', 'Node10'], ['--module', 'NodeNext', '--moduleResolution', 'NodeNext']]) {
    await tsc(['-p', join(CHECK, 'tsconfig.json'), ...options]);
  }
});

// ---------------------------------------------------------------------------------------
// The guest written in WebAssembly text

test('the WAT greeter assembles with wabt, and hotswap inspect --json accepts both versions with the SHA-256 its build wrote', async () => {
  const built = JSON.parse(await readFile(join(WAT, 'dist', 'guests.json'), 'utf8'));
  for (const version of ['1.0.0', '2.0.0']) {
    const info = inspected[`greeter-${version}`];
    assert.equal(info.sha256, built[`greeter-${version}`].sha256);
    assert.equal(info.name, 'greeter');
    assert.equal(info.version, version);
  }
  assert.deepEqual(Object.keys(inspected['greeter-1.0.0'].exports).sort(), ['count', 'greet']);
  assert.deepEqual(Object.keys(inspected['greeter-2.0.0'].exports).sort(), ['count', 'greet', 'last']);
  assert.deepEqual(inspected['greeter-2.0.0'].migratesFrom, [1]);
  assert.deepEqual(inspected['greeter-2.0.0'].migratesTo, [1]);
});

// ---------------------------------------------------------------------------------------
// The example in Chromium

/** Waits until `selector`'s text is `expected` (a string: exactly); says what it saw if never. */
async function see(page, selector, expected) {
  const matcher = typeof expected === 'string' ? new RegExp(`^${expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : expected;
  try {
    await page.locator(selector, { hasText: matcher }).waitFor({ timeout: 15000 });
  } catch {
    const error = await page.locator('#error').textContent().catch(() => '');
    assert.fail(`${selector} shows ${JSON.stringify(await page.locator(selector).textContent())}, not ${matcher} (page error: ${error})`);
  }
}

/**
 * Opens `url` and waits until the app says the loader started or failed; resolves with the
 * page, that status, and the console errors the page logs (kept up to date).
 */
async function open(url) {
  const problems = [];
  const page = await watchedPage(browser, problems);
  await page.goto(url);
  try {
    await page.locator('#status', { hasText: /^(ready|failed)$/ }).waitFor({ timeout: 30000 });
  } catch (error) {
    throw new Error(`${url}: the app never started or failed (console: ${problems.join(' | ') || 'nothing'})`, { cause: error });
  }
  return { page, problems, status: await page.textContent('#status') };
}

/**
 * The example's whole story: both guests load, swap keeping their state, roll back, and a
 * wrong hash and a missing export show up as typed HotSwapErrors, with nothing reloaded and
 * no console error. The hashes the page shows are the ones `hotswap inspect --json` gives.
 */
async function driveExample(url) {
  const { page, problems, status } = await open(url);
  try {
    if (status !== 'ready') assert.fail(`the app failed to start: ${await page.textContent('#error')}`);
    await see(page, '#counter-version', '1.0.0');
    await see(page, '#counter-sha256', inspected['counter-v1'].sha256);
    for (let i = 0; i < 3; i++) await page.click('#counter-increment');
    await see(page, '#counter-count', '3');
    await page.click('#counter-swap');
    await see(page, '#counter-version', '2.0.0');
    await see(page, '#counter-state', /^counter 2\.0\.0: 3 \(step 2/);
    await page.click('#counter-increment');
    await see(page, '#counter-count', '5');

    await page.click('#counter-bad-hash');
    await see(page, '#error', /^HotSwapError HASH_MISMATCH: /);
    const shown = await page.textContent('#error');
    assert.ok(shown.includes(`expected ${WRONG_SHA}\nactual ${inspected['counter-v2'].sha256}`), shown);
    assert.equal(await page.getAttribute('#error', 'data-code'), 'HASH_MISMATCH');
    await see(page, '#counter-version', '2.0.0');
    await see(page, '#counter-count', '5');

    await page.click('#counter-rollback');
    await see(page, '#counter-version', '1.0.0');
    await see(page, '#counter-state', /^counter 1\.0\.0: 5 \(step 1/);
    assert.equal(await page.isHidden('#error'), true);

    await see(page, '#greeter-sha256', inspected['greeter-1.0.0'].sha256);
    await page.fill('#greeter-name', 'Ada');
    await page.click('#greeter-greet');
    await see(page, '#greeter-output', 'Hello, Ada!');
    await see(page, '#greeter-count', '1');
    await page.click('#greeter-swap');
    await see(page, '#greeter-version', '2.0.0');
    await see(page, '#greeter-sha256', inspected['greeter-2.0.0'].sha256);
    await see(page, '#greeter-count', '1');
    await page.fill('#greeter-name', 'Grace');
    await page.click('#greeter-greet');
    await see(page, '#greeter-output', 'Welcome, Grace!');
    await page.click('#greeter-last');
    await see(page, '#greeter-output', 'Grace');
    await see(page, '#greeter-count', '2');
    await page.click('#greeter-rollback');
    await see(page, '#greeter-version', '1.0.0');
    await see(page, '#greeter-count', '2');
    await page.click('#greeter-last');
    await see(page, '#error', /^HotSwapError NOT_IN_VERSION: /);
    assert.match(await page.textContent('#error'), /\{"exportName":"last","version":"1\.0\.0"\}$/);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
}

/** Runs `body(server)` against a Vite server started with `args`, then stops it. */
async function withVite(version, args, body) {
  // --force: each Vite version and config pre-bundles afresh, never from another one's cache.
  const server = await startVite(VITE[version], args, { cwd: APP, check: 'guests/server-id.txt', expected: serverId });
  try {
    await body(server);
  } catch (error) {
    error.message += `\n-- vite ${args.join(' ')} printed:\n${server.output}`;
    throw error;
  } finally {
    await server.stop();
  }
}

/** A config with no optimizeDeps: Vite's defaults. */
async function bareConfig() {
  const file = join(CHECK, 'vite.bare.config.mjs');
  await writeFile(file, 'export default {};\n');
  return file;
}

for (const version of [6, 7, 8]) {
  test(`Vite ${version} dev server with optimizeDeps.exclude (vite.config.ts): the example loads, swaps keeping state, rolls back and shows typed HotSwapErrors`, async () => {
    await withVite(version, ['--force'], ({ url }) => driveExample(url));
  });

  test(`Vite ${version} dev server with no optimizeDeps: init({ module_or_path }) with the ?url import of the .wasm runs the example`, async () => {
    await withVite(version, ['--force', '--config', await bareConfig()], ({ url }) => driveExample(`${url}url-init.html`));
  });
}

for (const version of [6, 7]) {
  test(`Vite ${version} dev server with neither setup: init() rejects saying to add optimizeDeps.exclude or pass the URL, not with a bare CompileError`, async () => {
    await withVite(version, ['--force', '--config', await bareConfig()], async ({ url }) => {
      const { page, problems, status } = await open(url);
      try {
        assert.equal(status, 'failed');
        const shown = await page.textContent('#error');
        assert.match(shown, /^Error: wasm-hotswap: the URL of its \.wasm answered with HTML, not WebAssembly\./);
        assert.ok(shown.includes("optimizeDeps: { exclude: ['wasm-hotswap'] }"), shown);
        assert.ok(shown.includes("init({ module_or_path: wasmUrl }) with import wasmUrl from 'wasm-hotswap/core/wasm_hotswap_bg.wasm?url'"), shown);
        assert.deepEqual(problems, []);
      } finally {
        await page.close();
      }
    });
  });
}

test('Vite 8 dev server with neither setup: init() works as it is', async () => {
  await withVite(8, ['--force', '--config', await bareConfig()], ({ url }) => driveExample(url));
});

for (const version of [6, 7, 8]) {
  test(`Vite ${version} production build (vite build, served by vite preview) runs the example`, async () => {
    const outDir = join('dist', `vite${version}`);
    await run(process.execPath, [VITE[version], 'build', '--outDir', outDir, '--emptyOutDir'], { cwd: APP, env: { NO_COLOR: '1' } });
    await withVite(version, ['preview', '--outDir', outDir], ({ url }) => driveExample(url));
  });
}
