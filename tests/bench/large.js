// The longest main-thread task while a swap downloads, hashes, inspects and compiles a large
// module, next to the bare path on the same kind of bytes (fetch + compileStreaming +
// instantiate, nothing checked). The module: the 2 MB guest plus a custom section of random
// bytes up to the size asked for, new bytes every time (V8 reuses code for bytes it has
// seen), served from a blob: URL so that it arrives at once, as over loopback.
import { HotSwap } from '/pkg/index.js';
import { index, source, hostImports } from './common.js';

const base = {};
let slot = null;
let next = null;
let turn = 0;

/** A custom section named `pad` holding `size` random bytes. */
function padding(size) {
  const leb = (n) => { const out = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n); return out; };
  const body = size - 16;
  const head = [0, ...leb(body + 4), 3, ...new TextEncoder().encode('pad')];
  const out = new Uint8Array(head.length + body);
  out.set(head);
  for (let o = head.length; o < out.length; o += 65536) crypto.getRandomValues(out.subarray(o, Math.min(out.length, o + 65536)));
  return out;
}

export const large = {
  /** A slot running the 2 MB guest, its hashing worker up (it starts once a version runs). */
  async open() {
    for (const name of ['bench-2m-v1', 'bench-2m-v2']) base[name] = new Uint8Array(await (await fetch(`/guests/${index[name].file}`)).arrayBuffer());
    let hashedOn = null;
    slot = await HotSwap.load(source('bench-2m-v1'), { limits: { cachedModules: 0 }, onEvent: (e) => { if (e.type === 'verify') hashedOn = e.hashedOn; } });
    for (let i = 0; i < 40 && hashedOn !== 'worker'; i++) {
      await new Promise((ok) => setTimeout(ok, 50));
      await slot.swap(source(i % 2 ? 'bench-2m-v1' : 'bench-2m-v2'));
      turn = i + 1;
    }
    return hashedOn;
  },
  /** New bytes of about `mb` MB for the next step, hashed before it starts. */
  async prepare(mb) {
    const name = turn++ % 2 ? 'bench-2m-v1' : 'bench-2m-v2';
    const pad = padding(Math.max(64, mb * 1e6 - base[name].length));
    const bytes = new Uint8Array(base[name].length + pad.length);
    bytes.set(base[name]);
    bytes.set(pad, base[name].length);
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    if (next) URL.revokeObjectURL(next.url);
    next = {
      url: URL.createObjectURL(new Blob([bytes], { type: 'application/wasm' })),
      sha256: [...digest].map((b) => b.toString(16).padStart(2, '0')).join(''),
    };
    return bytes.length;
  },
  async swap() { await slot.swap(next); },
  async bare() { await WebAssembly.instantiate(await WebAssembly.compileStreaming(fetch(next.url)), hostImports); },
  close() { slot.dispose(); slot = null; },
};
