// Starts the real demo server (target/release/demo-app) on a free loopback port with its
// own data directory, and stops it with SIGINT (its clean shutdown path).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function startDemo({ data, port = 0 }) {
  const child = spawn(join(root, 'target/release/demo-app'), ['--port', String(port), '--data', data, '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo-app did not start: ${log}`)), 15000);
    child.stdout.on('data', (d) => {
      const found = /open (http:\/\/127\.0\.0\.1:\d+)\//.exec(String(d));
      if (!found) return;
      clearTimeout(timer);
      resolve({
        url: found[1],
        log: () => log,
        stop: (signal = 'SIGINT') => new Promise((done) => { child.once('exit', (code) => done(code)); child.kill(signal); }),
      });
    });
    child.once('exit', (code) => reject(new Error(`demo-app exited (${code}): ${log}`)));
  });
}

/** `npm run deploy -- editor <version>` (the `hotswap` CLI) on the demo's data directory. */
export function deployWithCli(data, version) {
  return new Promise((resolve, reject) => {
    const cli = spawn(process.execPath, [join(root, 'scripts/deploy.mjs'), 'editor', version], { env: { ...process.env, HOTSWAP_DATA: data } });
    let out = '';
    cli.stdout.on('data', (d) => { out += d; });
    cli.stderr.on('data', (d) => { out += d; });
    cli.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`deploy exited ${code}: ${out}`))));
  });
}

/** POST /api/deploy, as the page's deploy buttons do. */
export async function deploy(url, version) {
  const response = await fetch(`${url}/api/deploy`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version }) });
  if (!response.ok) throw new Error(`deploy ${version}: HTTP ${response.status} ${await response.text()}`);
}
