// Memory over many swaps: a counter guest holding 16 MiB swapped back and forth, next to
// the bare path a page would write without the loader (compile and instantiate each time),
// and the bare path with each module compiled once. run.mjs reads the renderer's RSS.
import init, { HotSwap } from '/pkg/index.js';
import { source, hostImports, median } from './common.js';

const loader = await init(); // already initialised: the same instance, for its memory size
const names = ['counter-v1', 'counter-v2'];
const STATE = 16 << 20;
const compile = (name) => WebAssembly.compileStreaming(fetch(source(name).url));

/** One way of running the guest and replacing it: `start`, then `replace(name)` per swap. */
const ways = {
  /** HotSwap: every swap after the first two takes its module from the cache. */
  loader: () => {
    let slot;
    const timing = { swap: [], saveLoad: [], pause: [] };
    return {
      async start() {
        slot = await HotSwap.load(source(names[0]), {
          onEvent: (e) => {
            if (e.type !== 'commit') return;
            timing.saveLoad.push(e.guestSaveMs + e.guestLoadMs);
            timing.pause.push(e.durationMs);
          },
        });
        slot.exports.fill(STATE);
      },
      async replace(name) {
        const t = performance.now();
        await slot.swap(source(name));
        timing.swap.push(performance.now() - t);
      },
      // Only the first swap downloads and compiles (v1 was compiled by the load): every later
      // one is a cache hit, shown next to the guests' own save + load inside its pause.
      figures: () => ({
        firstSwapMs: timing.swap[0],
        cachedSwapMs: median(timing.swap.slice(1)),
        pauseMs: median(timing.pause.slice(1)),
        saveLoadMs: median(timing.saveLoad.slice(1)),
      }),
    };
  },
  /** Fetch, compile and instantiate each time; the new instance gets the same 16 MiB. */
  bare: () => bareWay(compile),
  /** The same with both modules compiled once. */
  bareCompiledOnce: () => {
    const modules = new Map(names.map((n) => [n, compile(n)]));
    return bareWay((name) => modules.get(name));
  },
};

function bareWay(moduleOf) {
  let instance;
  const next = async (name) => {
    instance = await WebAssembly.instantiate(await moduleOf(name), hostImports);
    instance.exports.fill(STATE);
  };
  return { start: () => next(names[0]), replace: next, figures: () => ({}) };
}

let running = null;

export const memory = {
  ways: Object.keys(ways),

  /** The first version running with its 16 MiB: the baseline is read after this. */
  async start(way) {
    running = ways[way]();
    await running.start();
    return { loaderMemoryMiB: loader.memory.buffer.byteLength / 2 ** 20 };
  },

  /** `swaps` replacements back and forth. */
  async swap(swaps) {
    for (let i = 1; i <= swaps; i++) await running.replace(names[i % 2]);
    return { ...running.figures(), loaderMemoryMiB: loader.memory.buffer.byteLength / 2 ** 20 };
  },
};
