// `npm run deploy -- editor 1.1.0`: make a listed release current in the demo's signed
// registry with the `hotswap` CLI (`hotswap promote`, signing with the demo key). The
// running demo server notices the new manifest and pushes it; every open page verifies it
// and switches. HOTSWAP_DATA (default .data) is the demo server's data directory.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [guest, version] = process.argv.slice(2);
if (guest !== 'editor' || !version) {
  console.error('usage: npm run deploy -- editor <version>   (e.g. 1.1.0)');
  process.exit(2);
}
const data = resolve(process.env.HOTSWAP_DATA ?? join(root, '.data'));
const cli = join(root, 'target/release/hotswap');
if (!existsSync(cli)) {
  console.error('deploy failed: target/release/hotswap is missing (run `npm run build`, or `npm start` once)');
  process.exit(1);
}
const args = ['promote', guest, version, '--registry', join(data, 'registry'), '--key', join(data, 'keys/demo.key')];
const run = spawnSync(cli, args, { encoding: 'utf8' });
if (run.status !== 0) {
  console.error(`deploy failed: ${run.stderr.trim() || run.error?.message}`);
  process.exit(1);
}
console.log(`${run.stdout.trim()}\nevery open page is verifying the new manifest and switching to ${guest} ${version}`);
