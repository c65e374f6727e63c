// Starts the real demo server (target/release/demo-app) on a free loopback port with its
// own data directory, and stops it with SIGINT (its clean shutdown path). The deploy
// credential is the one the server created in that directory.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function startDemo({ data, port = 0, args = [] }) {
  const child = spawn(join(root, 'target/release/demo-app'), ['--port', String(port), '--data', data, '--root', root, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let out = '';
  child.stderr.on('data', (d) => { log += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo-app did not start: ${log}`)), 15000);
    child.stdout.on('data', (d) => {
      out += d;
      const found = /open (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (!found) return;
      clearTimeout(timer);
      child.stdout.removeAllListeners('data');
      child.stdout.on('data', (d) => { out += d; });
      resolve({
        url: found[1],
        token: readFileSync(join(data, 'deploy-token'), 'utf8').trim(),
        printed: out,
        output: () => out,
        log: () => log,
        stop: (signal = 'SIGINT') => new Promise((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode);
          child.once('exit', (code) => done(code));
          child.kill(signal);
        }),
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

/** POST /api/deploy with the server's deploy credential, as the page's deploy buttons do. */
export async function deploy(server, version) {
  const response = await fetch(`${server.url}/api/deploy`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${server.token}` },
    body: JSON.stringify({ version }),
  });
  if (!response.ok) throw new Error(`deploy ${version}: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()).report;
}
