// Static + fault-injection HTTP server for the browser tests, the benchmark and `npm start`.
// Binds 127.0.0.1 on the given port (0 = a free one) and prints `LISTENING <url> <token>` so
// the caller can check that the server answering is the one it started.
//
//   /guests/<file>              target/guests (application/wasm)
//   /truncated/<file>           announces the full Content-Length, sends half, then resets
//   /endless                    a wasm header, then bytes forever (for byte caps)
//   /stall                      a wasm header, then nothing, the connection left open
//   /trickle                    like /endless, but 4 KiB every 20 ms: a slow link, compiled as it arrives
//   /silent                     no answer at all, the connection left open
//   /as-text/<file>             the guest served as text/plain (the loader must not care)
//   /flipped/<file>             the guest with one byte flipped (a wrong-software module)
//   /status/<code>              an empty response with that status
//   /nonce/<file>?n=<text>      the guest with a custom section `nonce` holding <text> appended:
//                               new bytes per nonce, so V8 cannot reuse code it compiled before
//   /registry/<channel>/…       in-memory registries for the watch tests (see registry())
//   /pkg/…                      loader/pkg (the npm package)
//   /bench/…                    tests/bench (the benchmark page)
//   /extism/…                   @extism/extism's browser build (the benchmark's peer)
//   /…                          www/
//   /__token                    the token, to identify this server
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { randomBytes, createHash } from 'node:crypto';
import { extname, join, normalize, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dirs = { guests: join(root, 'target', 'guests'), pkg: join(root, 'loader', 'pkg'), www: join(root, 'www'), bench: join(root, 'tests', 'bench'), extism: join(root, 'node_modules', '@extism', 'extism', 'dist', 'browser') };
const types = { '.wasm': 'application/wasm', '.js': 'text/javascript', '.html': 'text/html', '.json': 'application/json', '.css': 'text/css', '.png': 'image/png' };
const token = randomBytes(8).toString('hex');
// Cross-origin isolation gives pages 5 µs timers (100 µs without), which the benchmark
// needs; CORP + CORS keep every file loadable from other origins (the test runner's).
const isolation = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'cross-origin',
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'etag',
};

async function file(dir, rel) {
  const path = normalize(join(dir, rel));
  if (!path.startsWith(dir)) return null;
  try { return { body: await readFile(path), type: types[extname(path)] ?? 'application/octet-stream' }; } catch { return null; }
}

function send(res, status, body, type, extra = {}) {
  res.writeHead(status, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-store', ...isolation, ...extra });
  res.end(body);
}

// Registry channels: PUT …/manifest.json stores a manifest (served with an ETag, 304 on a
// matching If-None-Match) and pushes a message to …/events listeners; PUT …/fail/<n> makes
// the next n manifest requests answer 503; GET …/stats counts what was served; PUT …/<any
// other path> stores a file (a module) that GET serves back as stored.
const channels = new Map();
const channel = (name) => {
  if (!channels.has(name)) channels.set(name, { manifest: null, etag: null, failNext: 0, files: new Map(), listeners: new Set(), stats: { full: 0, notModified: 0, failed: 0 } });
  return channels.get(name);
};

async function readBody(req) {
  const parts = [];
  for await (const part of req) parts.push(part);
  return Buffer.concat(parts);
}

async function registry(req, res, name, rest) {
  const ch = channel(name);
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { ...isolation, 'access-control-allow-methods': 'GET, PUT', 'access-control-allow-headers': 'content-type, if-none-match', 'access-control-max-age': '600' });
    return res.end();
  }
  if (rest === 'manifest.json' && req.method === 'PUT') {
    ch.manifest = await readBody(req);
    ch.etag = `"${createHash('sha256').update(ch.manifest).digest('hex').slice(0, 16)}"`;
    for (const listener of ch.listeners) listener.write(`data: ${ch.etag}\n\n`);
    return send(res, 204, Buffer.alloc(0), 'text/plain');
  }
  if (rest.startsWith('fail/') && req.method === 'PUT') {
    ch.failNext = Number(rest.slice(5));
    return send(res, 204, Buffer.alloc(0), 'text/plain');
  }
  if (rest === 'manifest.json') {
    if (ch.failNext > 0) {
      ch.failNext--;
      ch.stats.failed++;
      return send(res, 503, Buffer.from('unavailable'), 'text/plain');
    }
    if (!ch.manifest) return send(res, 404, Buffer.from('no manifest'), 'text/plain');
    if (req.headers['if-none-match'] === ch.etag) {
      ch.stats.notModified++;
      res.writeHead(304, { etag: ch.etag, ...isolation });
      return res.end();
    }
    ch.stats.full++;
    return send(res, 200, ch.manifest, 'application/json', { etag: ch.etag });
  }
  if (rest === 'events') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', ...isolation });
    res.write(': connected\n\n');
    ch.listeners.add(res);
    return res.on('close', () => ch.listeners.delete(res));
  }
  if (rest === 'stats') return send(res, 200, Buffer.from(JSON.stringify({ ...ch.stats, listeners: ch.listeners.size })), 'application/json');
  // Any other file of the registry (modules/<sha>.wasm): stored by PUT, served as stored.
  if (req.method === 'PUT') {
    ch.files.set(rest, await readBody(req));
    return send(res, 204, Buffer.alloc(0), 'text/plain');
  }
  if (ch.files.has(rest)) return send(res, 200, ch.files.get(rest), 'application/wasm');
  return send(res, 404, Buffer.from('not found'), 'text/plain');
}

/** A custom section named `nonce` holding `text` (the benchmark page builds the same bytes). */
function nonceSection(text) {
  const leb = (n) => { const out = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n); return Buffer.from(out); };
  const name = Buffer.from('nonce');
  const payload = Buffer.concat([leb(name.length), name, Buffer.from(text)]);
  return Buffer.concat([Buffer.from([0]), leb(payload.length), payload]);
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const path = decodeURIComponent(url.pathname);
  const [, head, ...rest] = path.split('/');
  const tail = rest.join('/');
  if (path === '/__token') return send(res, 200, Buffer.from(token), 'text/plain');
  if (head === 'registry') return registry(req, res, rest[0], rest.slice(1).join('/'));
  if (head === 'flipped') {
    const f = await file(dirs.guests, tail);
    if (!f) return send(res, 404, Buffer.from('not found'), 'text/plain');
    f.body[f.body.length >> 1] ^= 0x01;
    return send(res, 200, f.body, 'application/wasm');
  }
  if (head === 'nonce') {
    const f = await file(dirs.guests, tail);
    if (!f) return send(res, 404, Buffer.from('not found'), 'text/plain');
    return send(res, 200, Buffer.concat([f.body, nonceSection(url.searchParams.get('n') ?? '')]), 'application/wasm');
  }
  if (head === 'status') return send(res, Number(tail) || 500, Buffer.alloc(0), 'text/plain');
  if (head === 'endless') {
    res.writeHead(200, { 'content-type': 'application/wasm', ...isolation });
    // A wasm header and a custom section announcing 4 GiB, so only a byte cap stops it.
    res.write(Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0x78]));
    const chunk = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    const pump = () => { while (sent < 2 ** 32 && res.write(chunk)) sent += chunk.length; };
    res.on('drain', pump);
    res.on('close', () => res.removeAllListeners('drain'));
    return pump();
  }
  if (head === 'silent') return undefined;
  if (head === 'trickle') {
    res.writeHead(200, { 'content-type': 'application/wasm', ...isolation });
    res.write(Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0x78]));
    const timer = setInterval(() => res.write(Buffer.alloc(4096, 7)), 20);
    return res.on('close', () => clearInterval(timer));
  }
  if (head === 'stall') {
    res.writeHead(200, { 'content-type': 'application/wasm', ...isolation });
    return res.write(Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  }
  if (head === 'truncated') {
    const f = await file(dirs.guests, tail);
    if (!f) return send(res, 404, Buffer.from('not found'), 'text/plain');
    res.writeHead(200, { 'content-type': 'application/wasm', 'content-length': f.body.length, ...isolation });
    res.write(f.body.subarray(0, f.body.length >> 1));
    return setTimeout(() => res.socket?.destroy(), 50);
  }
  if (head === 'as-text') {
    const f = await file(dirs.guests, tail);
    return f ? send(res, 200, f.body, 'text/plain') : send(res, 404, Buffer.from('not found'), 'text/plain');
  }
  const [dir, rel] = head in dirs && head !== 'www' ? [dirs[head], tail || 'index.html'] : [dirs.www, path.endsWith('/') ? `${path}index.html` : path];
  const f = await file(dir, rel);
  return f ? send(res, 200, f.body, f.type) : send(res, 404, Buffer.from('not found'), 'text/plain');
});

export function start(port = 0) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${server.address().port}`, token }));
  });
}

/** Confirms the server at `url` is the one with `expected` token (not someone else's on that port). */
export async function verifyOwnServer(url, expected) {
  const answer = await (await fetch(`${url}/__token`)).text();
  if (answer !== expected) throw new Error(`${url} is not our server (token ${answer})`);
}

// CLI: `node server.mjs [port]` (PORT also works; default 0 = a free port).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
  const { server: running, url } = await start(port);
  await verifyOwnServer(url, token);
  console.log(`LISTENING ${url} ${token}`);
  console.log(`wasm-hotswap page: open ${url}/ (Ctrl-C stops)`);
  const stop = () => running.close(() => process.exit(0)) && running.closeAllConnections();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
