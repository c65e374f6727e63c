// Copy built guest modules into public/guests/ and write public/guests/guests.json: for each,
// the URL the page fetches and the SHA-256 the loader must find there. An app's build takes
// the hash when the guest is built, like this (or from `hotswap inspect --json guest.wasm`).
//
//   node scripts/guests.mjs <guest.wasm>…     (each named by its file name without .wasm)
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';

const out = new URL('../public/guests/', import.meta.url);
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node scripts/guests.mjs <guest.wasm>…');
  process.exit(2);
}
await mkdir(out, { recursive: true });
const guests = {};
for (const file of files) {
  const name = basename(file, '.wasm');
  await copyFile(file, new URL(`${name}.wasm`, out));
  const sha256 = createHash('sha256').update(await readFile(file)).digest('hex');
  // Relative to the app's base URL (import.meta.env.BASE_URL).
  guests[name] = { url: `guests/${name}.wasm`, sha256 };
}
await writeFile(new URL('guests.json', out), `${JSON.stringify(guests, null, 2)}\n`);
