// First load and swap next to what a page would use instead: the bare browser path (fetch +
// compileStreaming + instantiate, no hash) and @extism/extism 1.0.3's createPlugin with a
// hash. Every timed load gets bytes never seen before (the guest plus a custom section with
// a fresh nonce, hashed before the clock starts): V8 reuses code it compiled for bytes it has
// seen, even under a new URL, which would flatter whoever runs second.
import createPlugin from '/extism/mod.js';
import { HotSwap } from '/pkg/index.js';
import { index, hostImports, median } from './common.js';

const base = new Map();
let counter = 0;

/** The custom section the server appends for `/nonce/<file>?n=<text>`. */
function nonceSection(text) {
  const leb = (n) => { const out = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n); return out; };
  const name = new TextEncoder().encode('nonce');
  const payload = [...leb(name.length), ...name, ...new TextEncoder().encode(text)];
  return new Uint8Array([0, ...leb(payload.length), ...payload]);
}

/** A URL serving `name` as bytes never served before, and their SHA-256. */
async function unique(name) {
  const file = index[name].file;
  if (!base.has(file)) base.set(file, new Uint8Array(await (await fetch(`/guests/${file}`)).arrayBuffer()));
  const nonce = `${++counter}-${crypto.randomUUID()}`;
  const section = nonceSection(nonce);
  const bytes = new Uint8Array(base.get(file).length + section.length);
  bytes.set(base.get(file));
  bytes.set(section, base.get(file).length);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return { url: new URL(`/nonce/${file}?n=${nonce}`, location.href).href, sha256: [...digest].map((b) => b.toString(16).padStart(2, '0')).join('') };
}

const loaders = {
  bare: async ({ url }) => { await WebAssembly.instantiate(await WebAssembly.compileStreaming(fetch(url)), hostImports); },
  extism: async ({ url, sha256 }) => {
    const plugin = await createPlugin({ wasm: [{ url, hash: sha256 }] }, { useWasi: false, runInWorker: false, functions: hostImports });
    return () => plugin.close();
  },
  hotswap: async (unique) => {
    const slot = await HotSwap.load(unique);
    return () => slot.dispose();
  },
};

/** Median first-load time of `name` for each way, over `runs` rounds in rotating order. */
async function firstLoads(name, runs) {
  const times = Object.fromEntries(Object.keys(loaders).map((k) => [k, []]));
  const order = Object.keys(loaders);
  for (let r = 0; r < runs; r++) {
    for (const way of order.slice(r % order.length).concat(order.slice(0, r % order.length))) {
      const source = await unique(name);
      await new Promise((ok) => setTimeout(ok, 20));
      const t = performance.now();
      const done = await loaders[way](source);
      times[way].push(performance.now() - t);
      await done?.();
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

/** A guest's schemas (its `hotswap.meta` section): own, migrates-from, migrates-to. */
function schemas(module) {
  const meta = new TextDecoder().decode(WebAssembly.Module.customSections(module, 'hotswap.meta')[0]);
  const list = (key) => (new RegExp(`${key}=([0-9,]*)`).exec(meta)?.[1] ?? '').split(',').filter(Boolean).map(Number);
  return { own: list('state-schema')[0], from: list('migrates-from'), to: list('migrates-to') };
}

/** The schema the state travels in (docs/ABI.md): the old one if the new guest reads it. */
function transferSchema(from, to) {
  const [a, b] = [schemas(from), schemas(to)];
  return a.own === b.own || b.from.includes(a.own) ? a.own : b.own;
}

/**
 * What an app would write by hand to swap with its state, per docs/ABI.md and without any
 * check: the bare path, then save from the old instance, copy, load into the new one. The
 * new guest's load runs for the first time here, cold, as it must in any swap that keeps state.
 */
async function handWrittenSwap(old, { url }) {
  const module = await WebAssembly.compileStreaming(fetch(url));
  const next = (await WebAssembly.instantiate(module, hostImports)).exports;
  const schema = transferSchema(old.module, module);
  const packed = BigInt.asUintN(64, old.exports.hotswap_state_save(schema));
  const [ptr, len] = [Number(packed >> 32n), Number(BigInt.asUintN(32, packed))];
  const state = new Uint8Array(old.exports.memory.buffer, ptr, len).slice();
  const to = next.hotswap_alloc(len);
  new Uint8Array(next.memory.buffer, to, len).set(state);
  if (next.hotswap_state_load(to, len, schema) !== 0) throw new Error('state_load refused the state');
  next.hotswap_free(to, len);
  return { module, exports: next };
}

/**
 * Median swap end to end (new bytes each time) vs the bare path on new bytes, and vs a
 * hand-written swap that carries the state.
 */
async function swaps([first, second], runs) {
  const slot = await HotSwap.load(await unique(first));
  const firstModule = await WebAssembly.compileStreaming(fetch((await unique(first)).url));
  let byHand = { module: firstModule, exports: (await WebAssembly.instantiate(firstModule, hostImports)).exports };
  const swap = [], bare = [], hand = [];
  for (let i = 0; i < runs; i++) {
    const name = i % 2 ? first : second;
    const [a, b, c] = [await unique(name), await unique(name), await unique(name)];
    await new Promise((ok) => setTimeout(ok, 20));
    let t = performance.now();
    await loaders.bare(a);
    bare.push(performance.now() - t);
    await new Promise((ok) => setTimeout(ok, 20));
    t = performance.now();
    byHand = await handWrittenSwap(byHand, c);
    hand.push(performance.now() - t);
    await new Promise((ok) => setTimeout(ok, 20));
    t = performance.now();
    await slot.swap(b);
    swap.push(performance.now() - t);
  }
  slot.dispose();
  return { swap: median(swap), bare: median(bare), hand: median(hand) };
}

export const peer = {
  /** First loads and swaps of the 2 MB guest and the editor. */
  async run(runs) {
    const out = {};
    for (const [label, pair] of [['2 MB guest', ['bench-2m-v1', 'bench-2m-v2']], ['editor', ['editor-1.1.0', 'editor-2.0.0']]]) {
      out[label] = { size: index[pair[0]].size, load: await firstLoads(pair[0], runs), swap: await swaps(pair, runs) };
    }
    return out;
  },
};
