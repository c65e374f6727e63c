// `npm run deploy -- editor 1.1.0`: make a listed release current in the demo's signed
// registry, through the running demo server's deploy API with the deploy credential from
// its data directory (`<data>/deploy-token`, created on the server's first start; the
// server's address is in `<data>/server-url`, or set HOTSWAP_URL). The server signs the new
// manifest (`hotswap promote`, one deploy at a time) and pushes it; every open page verifies
// it and switches. HOTSWAP_DATA (default .data) is the demo server's data directory.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [guest, version] = process.argv.slice(2);
if (guest !== 'editor' || !version) {
  console.error('usage: npm run deploy -- editor <version>   (e.g. 1.1.0)');
  process.exit(2);
}
const data = resolve(process.env.HOTSWAP_DATA ?? join(root, '.data'));
const read = (file, what) => {
  try {
    return readFileSync(join(data, file), 'utf8').trim();
  } catch {
    console.error(`deploy failed: no ${what} in ${data} (start the demo once with \`npm start\`)`);
    process.exit(1);
  }
};
const token = read('deploy-token', 'deploy credential');
const url = process.env.HOTSWAP_URL ?? read('server-url', 'server address');
let response;
try {
  response = await fetch(`${url}/api/deploy`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ version }),
  });
} catch (error) {
  console.error(`deploy failed: the demo server at ${url} does not answer (${error.cause?.code ?? error.message}); is it running?`);
  process.exit(1);
}
const body = await response.text();
if (!response.ok) {
  console.error(`deploy failed: ${body}`);
  process.exit(1);
}
console.log(`${JSON.parse(body).report}\nevery open page is verifying the new manifest and switching to ${guest} ${version}`);
