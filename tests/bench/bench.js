// The benchmark, run in the page: every figure is a median over runs, and every ratio is
// against a baseline measured in this same run (shared machines are noisy).
import init, { HotSwap, sha256 } from '/pkg/index.js';
import { editor } from './editor.js';
import { large } from './large.js';
import { memory } from './memory.js';
import { peer } from './peer.js';
import { index, source, hostImports, median } from './common.js';


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
  editor,
  large,
  memory,
  peer,
  rest: async () => {
    const results = { crossOriginIsolated, pause: {}, calls: await callOverhead(7, 2_000_000), hash: await hashSpeed(5) };
    for (const [label, bytes] of [['1 KiB', 1024], ['1 MiB', 1 << 20], ['16 MiB', 16 << 20]]) {
      results.pause[label] = await commitPause(bytes, 25);
    }
    document.getElementById('out').textContent = JSON.stringify(results, null, 2);
    return results;
  },
};
