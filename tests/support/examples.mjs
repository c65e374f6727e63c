// What tests/examples.test.mjs needs to treat examples/ as a user's app would: npm installs
// that are skipped when nothing changed, the packed tarball of loader/pkg, and Vite servers.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const EXAMPLES = join(ROOT, 'examples');

/** Runs a command; resolves with its stdout, rejects with everything it printed. */
export function run(command, args, { cwd = ROOT, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} (in ${cwd}) exited with ${code}\n${stdout}${stderr}`));
    });
  });
}

/**
 * `npm install` in `dir` unless its node_modules was installed after the lockfile last changed
 * (scripts/bootstrap.sh's rule), so a second run installs nothing. Not `npm ci`: the package
 * registry this runs against holds only this platform's builds of Vite's native optional
 * dependencies (rollup, rolldown), so the lockfiles cannot list the others and `npm ci` would
 * refuse them as out of sync; `npm install` installs from the same lockfile and leaves it as
 * it is.
 */
export async function npmInstall(dir) {
  const installed = join(dir, 'node_modules', '.package-lock.json');
  if (existsSync(installed) && statSync(installed).mtimeMs >= statSync(join(dir, 'package-lock.json')).mtimeMs) return false;
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir });
  return true;
}

/** `npm pack` of the built loader/pkg into target/npm; returns the tarball's path. */
export async function packLoader() {
  if (!existsSync(join(ROOT, 'loader', 'pkg', 'package.json'))) throw new Error('loader/pkg is not built: run bash scripts/build.sh');
  const out = join(ROOT, 'target', 'npm');
  await mkdir(out, { recursive: true }); // npm pack writes into it but does not create it
  const [{ filename }] = JSON.parse(await run('npm', ['pack', './loader/pkg', '--pack-destination', out, '--json', '--loglevel=error']));
  return join(out, filename);
}

/**
 * `npm install <tarball>` into `dir`, as a user installs a release (a copy, not a link to
 * loader/pkg); skipped when the same tarball is installed already (npm pack is reproducible).
 * `--no-save`: the tarball's path and hash are this machine's, not the example's.
 */
export async function installTarball(dir, tarball) {
  const digest = createHash('sha256').update(await readFile(tarball)).digest('hex');
  const marker = join(dir, 'node_modules', '.wasm-hotswap-tarball');
  if (existsSync(marker) && (await readFile(marker, 'utf8')) === digest) return false;
  await run('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: dir });
  await writeFile(marker, digest);
  return true;
}

/** A port that was free a moment ago (Vite 6 and 7 take `--port 0` as their default, 5173). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `vite <args…>` (a dev server or `preview`) with the given Vite CLI on 127.0.0.1, and
 * makes sure the server that answers is this one: `check` is a path it serves and
 * `expected` that file's content. Resolves with `{ url, output, stop }`.
 */
export async function startVite(viteBin, args, { cwd, check, expected }) {
  const port = await freePort();
  // --strictPort: if the port was taken meanwhile, fail instead of serving from another one.
  const child = spawn(process.execPath, [viteBin, ...args, '--host', '127.0.0.1', '--port', String(port), '--strictPort'], {
    cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' },
  });
  let output = '';
  const url = `http://127.0.0.1:${port}/`;
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    await new Promise((resolve, reject) => {
      const onData = (d) => {
        output += d;
        if (output.includes(url)) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      exited.then((code) => reject(new Error(`vite ${args.join(' ')} exited (${code}) before listening:\n${output}`)));
    });
    const answer = await (await fetch(new URL(check, url))).text();
    if (answer !== expected) throw new Error(`${url} is not the Vite server just started (${check}: ${answer.slice(0, 80)})`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, get output() { return output; }, stop };
}
