// Assemble the npm package in loader/pkg from the two wasm-pack builds: `core` (load, swap,
// roll back) and `watch` (the same plus HotSwap.watch, the signed-registry watcher), each
// behind its own entry so that apps which never follow a registry never download it.
import { cp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const pkg = join(root, 'loader', 'pkg');
const builds = ['core', 'watch'];

/** The path, inside a build, of the HotSwapError class wasm-bindgen copied there. */
async function errorClass(build) {
  const snippets = join(pkg, build, 'snippets');
  for (const dir of await readdir(snippets)) {
    const files = await readdir(join(snippets, dir, 'js')).catch(() => []);
    if (files.includes('error.js')) return `./${build}/snippets/${dir}/js/error.js`;
  }
  throw new Error(`no js/error.js snippet in ${snippets}`);
}

const entry = (build, errorPath) => `// wasm-hotswap${build === 'watch' ? '/watch: the loader with HotSwap.watch (a signed registry)' : ': load, swap and roll back WebAssembly guests (HotSwap.watch is in wasm-hotswap/watch)'}.
import wasmInit, { HotSwap } from './${build}/wasm_hotswap.js';

export * from './${build}/wasm_hotswap.js';
export { HotSwapError } from '${errorPath}';

// free() and [Symbol.dispose]() do what dispose() does: later calls throw DISPOSED (not
// wasm-bindgen's "null pointer passed to rust"); the Rust object goes with the JS one.
HotSwap.prototype.free = function free() { this.dispose(); };
if (Symbol.dispose) HotSwap.prototype[Symbol.dispose] = HotSwap.prototype.free;

// HotSwap.load (and watch) before init(): they load the loader's .wasm themselves rather than
// fail with wasm-bindgen's TypeError ("reading 'hotswap_load'"). init() is a no-op once done.
for (const name of ['load', 'watch']) {
  const call = HotSwap[name];
  if (call) HotSwap[name] = async function (...args) { await init(); return call.apply(this, args); };
}

/**
 * Load the loader's own WebAssembly (once, before anything else). Without an argument it is
 * fetched from next to this file; a bundler that moves this file without the .wasm (Vite's
 * dev pre-bundling) makes that URL answer with the app's HTML: then this says what to do.
 */
export default function init(input) {
  return wasmInit(input).catch((error) => {
    if (error instanceof WebAssembly.CompileError && /found 3c/.test(error.message)) {
      throw new Error('wasm-hotswap: the URL of its .wasm answered with HTML, not WebAssembly. '
        + 'Under the Vite dev server add optimizeDeps: { exclude: [\\'wasm-hotswap\\'] } to vite.config, '
        + 'or pass the URL yourself: init({ module_or_path: wasmUrl }) with '
        + 'import wasmUrl from \\'wasm-hotswap/${build}/wasm_hotswap_bg.wasm?url\\'.', { cause: error });
    }
    throw error;
  });
}
`;

const types = (build) => `export * from './${build}/wasm_hotswap.js';
export { default } from './${build}/wasm_hotswap.js';
`;

async function main() {
  const cargo = await readFile(join(root, 'Cargo.toml'), 'utf8');
  const version = cargo.match(/\[workspace\.package\][^[]*?version\s*=\s*"([^"]+)"/)[1];
  for (const build of builds) {
    for (const extra of ['package.json', '.gitignore', 'README.md', 'LICENSE-MIT', 'LICENSE-APACHE']) {
      await rm(join(pkg, build, extra), { force: true });
    }
    const name = build === 'core' ? 'index' : build;
    await writeFile(join(pkg, `${name}.js`), entry(build, await errorClass(build)));
    await writeFile(join(pkg, `${name}.d.ts`), types(build));
  }
  await cp(join(root, 'README.md'), join(pkg, 'README.md'));
  await cp(join(root, 'docs', 'ABI.md'), join(pkg, 'ABI.md'));
  await cp(join(root, 'LICENSE-MIT'), join(pkg, 'LICENSE-MIT'));
  await cp(join(root, 'LICENSE-APACHE'), join(pkg, 'LICENSE-APACHE'));
  await writeFile(join(pkg, 'package.json'), `${JSON.stringify(manifest(version), null, 2)}\n`);
}

function manifest(version) {
  const wasm = Object.fromEntries(builds.map((b) => [`./${b}/wasm_hotswap_bg.wasm`, `./${b}/wasm_hotswap_bg.wasm`]));
  return {
    name: 'wasm-hotswap',
    version,
    description: 'Replace the WebAssembly logic of a running web page live: verified streaming load, lossless atomic hot swap, rollback.',
    license: 'MIT OR Apache-2.0',
    repository: { type: 'git', url: 'https://github.com/wasm-hotswap/wasm-hotswap' },
    keywords: ['wasm', 'webassembly', 'hot-swap', 'hot-reload', 'loader'],
    type: 'module',
    main: './index.js',
    types: './index.d.ts',
    exports: {
      '.': { types: './index.d.ts', default: './index.js' },
      './watch': { types: './watch.d.ts', default: './watch.js' },
      ...wasm,
      './ABI.md': './ABI.md',
      './package.json': './package.json',
    },
    // TypeScript with moduleResolution "node" (which ignores `exports`) still finds /watch.
    typesVersions: { '*': { watch: ['./watch.d.ts'] } },
    files: ['index.js', 'index.d.ts', 'watch.js', 'watch.d.ts', ...builds.map((b) => `${b}/`), 'README.md', 'ABI.md', 'LICENSE-MIT', 'LICENSE-APACHE'],
    sideEffects: false,
  };
}

await main();
