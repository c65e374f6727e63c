// The benchmark, run in the page: every figure is a median over runs, and every ratio is
// against a baseline measured in this same run (shared machines are noisy).
import init, { HotSwap, sha256 } from '/pkg/wasm_hotswap.js';

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
const index = await (await fetch('/guests/index.json')).json();
const source = (name) => ({ url: `/guests/${index[name].file}`, sha256: index[name].sha256 });
const hostImports = { hotswap: { log() {}, random_fill() {}, now_ms: () => Date.now() } };

async function bareLoad(name) {
  const t = performance.now();
  const module = await WebAssembly.compileStreaming(fetch(`/guests/${index[name].file}`));
  await WebAssembly.instantiate(module, hostImports);
  return performance.now() - t;
}

/** Swap end to end (hash on, default options) vs a bare fetch + compileStreaming + instantiate. */
async function swapVsBare(prefix, runs) {
  const slot = await HotSwap.load(source(`${prefix}-v1`));
  const swaps = [], bares = [];
  for (let i = 0; i < runs; i++) {
    const name = `${prefix}-${i % 2 ? 'v1' : 'v2'}`;
    bares.push(await bareLoad(name));
    const t = performance.now();
    await slot.swap(source(name));
    swaps.push(performance.now() - t);
  }
  slot.dispose();
  return { size: index[`${prefix}-v2`].size, swap: median(swaps), bare: median(bares) };
}

/** The commit pause minus the guests' own save and load, for a state of `bytes`. */
async function commitPause(bytes, runs) {
  const pauses = [];
  const slot = await HotSwap.load(source('counter-v1'), {
    onEvent: (e) => { if (e.type === 'commit') { pauses.push(e.durationMs - e.guestSaveMs - e.guestLoadMs); if (window.__debug) console.log(JSON.stringify(e)); } },
  });
  slot.exports.fill(bytes);
  for (let i = 0; i < runs; i++) await slot.swap(source(i % 2 ? 'counter-v1' : 'counter-v2'));
  slot.dispose();
  return median(pauses);
}

function nsPerCall(f, calls) {
  let acc = 0;
  const t = performance.now();
  for (let i = 0; i < calls; i++) acc = f(i, acc) | 0;
  const ns = ((performance.now() - t) * 1e6) / calls;
  if (acc === 0.5) console.log(acc); // keeps the loop from being optimised away
  return ns;
}

/** A call through the stable exports object after 10 swaps vs a direct export call. */
async function callOverhead(rounds, calls) {
  const slot = await HotSwap.load(source('counter-v1'), { autoRollbackCalls: 1 });
  for (let i = 0; i < 10; i++) await slot.swap(source(i % 2 ? 'counter-v1' : 'counter-v2'));
  slot.exports.mix(0, 0); // ends the last probation
  const stable = slot.exports.mix;
  const instance = await WebAssembly.instantiate(
    await WebAssembly.compileStreaming(fetch(`/guests/${index['counter-v1'].file}`)), hostImports);
  const direct = instance.exports.mix;
  const viaStable = [], viaDirect = [];
  for (let r = 0; r < rounds; r++) {
    viaDirect.push(nsPerCall(direct, calls));
    viaStable.push(nsPerCall(stable, calls));
  }
  slot.dispose();
  return { stable: median(viaStable), direct: median(viaDirect) };
}

/** The loader's SHA-256 vs WebCrypto's, over the same 32 MiB. */
async function hashSpeed(runs) {
  const data = new Uint8Array(32 << 20);
  for (let o = 0; o < data.length; o += 65536) crypto.getRandomValues(data.subarray(o, o + 65536));
  const mb = data.length / 1e6;
  const ours = [], webcrypto = [];
  for (let i = 0; i < runs; i++) {
    let t = performance.now(); sha256(data); ours.push(mb / ((performance.now() - t) / 1e3));
    t = performance.now(); await crypto.subtle.digest('SHA-256', data); webcrypto.push(mb / ((performance.now() - t) / 1e3));
  }
  return { ours: median(ours), webcrypto: median(webcrypto) };
}

// Driven by run.mjs, which throttles the network between parts.
await init();
window.__bench = {
  swaps: async () => [await swapVsBare('bench-200k', 25), await swapVsBare('bench-2m', 25)],
  rest: async () => {
    const results = { crossOriginIsolated, pause: {}, calls: await callOverhead(7, 2_000_000), hash: await hashSpeed(5) };
    for (const [label, bytes] of [['1 KiB', 1024], ['1 MiB', 1 << 20], ['16 MiB', 16 << 20]]) {
      results.pause[label] = await commitPause(bytes, 25);
    }
    document.getElementById('out').textContent = JSON.stringify(results, null, 2);
    return results;
  },
};
