// The demo editor holding a large document, swapped both ways and rolled back (by hand and
// after a trap), with pre-copy (ABI 1.1) and without it (the baseline: the state saved and
// loaded inside the pause). run.mjs drives one step at a time so that it can trace each.
import { HotSwap } from '/pkg/index.js';
import { source } from './common.js';

const edit = (ins) => new TextEncoder().encode(JSON.stringify({ pos: 0, del: 0, ins }));

/**
 * A message posted on every turn of the event loop, and the largest gap between two of them
 * while `work` runs: the longest the page could not react. Long Tasks (over 50 ms) too.
 */
async function heartbeat(work) {
  const longTasks = [];
  const observer = new PerformanceObserver((list) => longTasks.push(...list.getEntries().map((e) => e.duration)));
  observer.observe({ type: 'longtask', buffered: false });
  const channel = new MessageChannel();
  let last = performance.now();
  let longest = 0;
  let running = true;
  channel.port1.onmessage = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) channel.port2.postMessage(0);
  };
  channel.port2.postMessage(0);
  const start = performance.now();
  await work();
  const total = performance.now() - start;
  running = false;
  await new Promise((r) => setTimeout(r, 0)); // the last beat lands; long tasks are reported
  observer.disconnect();
  channel.port1.close();
  return { longest, longTasks: longTasks.length, longestTask: Math.max(0, ...longTasks), total };
}

/** `work` without the heartbeat (whose own load on the thread a trace would count). */
async function timed(work) {
  const start = performance.now();
  await work();
  return { total: performance.now() - start };
}

const fingerprint = async (slot) => {
  const text = slot.callString('text', '');
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return `${text.length}:${hash.slice(0, 8).join('.')}`;
};

const steps = {
  'swap 1.1.0 -> 2.0.0': (slot) => slot.swap(source('editor-2.0.0')),
  'swap 2.0.0 -> 1.1.0': (slot) => slot.swap(source('editor-1.1.0')),
  'rollback() to 2.0.0': (slot) => slot.rollback(),
  'trap in 2.1.0, automatic rollback': async (slot) => {
    await slot.swap(source('editor-2.1.0'));
    try {
      slot.call('edit', edit('x'));
    } catch (e) {
      if (!e.details?.rolledBack) throw e;
    }
  },
};

let open = null;

export const editor = {
  steps: Object.keys(steps),

  /** Start 1.1.0 holding the document of `history` changes (one long task, not measured). */
  async open(history, precopy) {
    const bytes = new Uint8Array(await (await fetch(`/guests/editor-history-${history}.bin`)).arrayBuffer());
    const slot = await HotSwap.load(source('editor-1.1.0'), { precopy });
    slot.call('merge', bytes);
    open = { slot, text: await fingerprint(slot) };
    return { text: open.text, stateKiB: slot.saveState().bytes.length / 1024 };
  },

  /** One step under the heartbeat; whether the text is intact after it, and what runs. */
  async step(label, { beat = true } = {}) {
    const felt = beat ? await heartbeat(() => steps[label](open.slot)) : await timed(() => steps[label](open.slot));
    // A trace counts the tasks up to this mark (tasks.mjs). The check below reads the whole
    // document out of the guest (10-15 ms at 100,000 changes): the bench's own call, in a
    // task of its own, not part of the swap.
    performance.mark('bench-end');
    await new Promise((r) => setTimeout(r, 0));
    return { ...felt, intact: (await fingerprint(open.slot)) === open.text, running: open.slot.current.version };
  },

  /**
   * The machine's own floor: the heartbeat for `ms` with nothing but a worker busy (as the
   * pre-copy worker is), so that a gap can be told from noise on a shared 2-core box.
   */
  async floor(ms) {
    const worker = new Worker(URL.createObjectURL(new Blob([`const t = performance.now(); while (performance.now() - t < ${ms}); postMessage(0);`])));
    const done = new Promise((r) => { worker.onmessage = r; });
    const felt = await heartbeat(() => done);
    worker.terminate();
    return felt;
  },

  close() {
    open?.slot.dispose();
    open = null;
  },
};
