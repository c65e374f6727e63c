// Assemble each version of the greeter from WebAssembly text with the npm `wabt` package
// (no Rust, no SDK), and write dist/guests.json with each module's SHA-256: the hash an app
// gives the loader, taken when the guest is built.
//
// A version is src/runtime.wat (memory, allocator, helpers) and src/greeter-<version>.wat
// (metadata, state, exports) inside one (module …). On the command line the same is
// `wat2wasm --enable-annotations greeter.wat`: annotations are what let the text carry the
// `hotswap.meta` custom section as (@custom "hotswap.meta" "…").
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import createWabt from 'wabt';

const VERSIONS = ['1.0.0', '2.0.0'];
const here = new URL('./', import.meta.url);
const out = new URL('dist/', here);

const wabt = await createWabt();
const runtime = await readFile(new URL('src/runtime.wat', here), 'utf8');
const index = {};
await mkdir(out, { recursive: true });
for (const version of VERSIONS) {
  const name = `greeter-${version}`;
  const body = await readFile(new URL(`src/${name}.wat`, here), 'utf8');
  const module = wabt.parseWat(`${name}.wat`, `(module\n${runtime}\n${body})\n`, { annotations: true });
  try {
    module.validate();
    const { buffer } = module.toBinary({});
    await writeFile(new URL(`${name}.wasm`, out), buffer);
    index[name] = { file: `${name}.wasm`, sha256: createHash('sha256').update(buffer).digest('hex'), size: buffer.length };
  } finally {
    module.destroy();
  }
}
await writeFile(new URL('guests.json', out), `${JSON.stringify(index, null, 2)}\n`);
console.log(Object.entries(index).map(([n, g]) => `${n}.wasm ${g.sha256}`).join('\n'));
