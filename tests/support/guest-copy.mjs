// A temporary copy of a guest crate of this workspace (the dev loop's tests and benchmark
// edit the copy, never the release fixtures): its sources, a Cargo.toml standing alone —
// `workspace = true` entries resolved from the root manifest, paths made absolute — and the
// root Cargo.lock, so it builds the same dependency versions. Built into the workspace's
// `target/hotswap-dev`, it shares the dev loop's compiled dependencies.
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The dev loop's target directory, shared with `npm run dev`. */
export const devTarget = join(root, 'target', 'hotswap-dev');

/** `[section]` of a TOML file as { key: raw value text } (single-line entries only). */
function section(toml, name) {
  const start = toml.indexOf(`\n[${name}]\n`);
  if (start < 0) return {};
  const body = toml.slice(start + name.length + 4).split(/\n\[/)[0];
  const entries = {};
  for (const line of body.split('\n')) {
    const found = /^([A-Za-z0-9_.-]+)\s*=\s*(.+)$/.exec(line.trim());
    if (found) entries[found[1]] = found[2];
  }
  return entries;
}

/** An inline table's text without braces, or a version string as `version = "…"`. */
const tableBody = (spec) => (spec.startsWith('{') ? spec.slice(1, -1).trim() : `version = ${spec}`);

/** One dependency line of the copy: the root's spec, paths absolute, plus the member's own keys. */
function dependency(key, spec, workspaceDeps) {
  const name = key.replace(/\.workspace$/, '');
  const inherited = key.endsWith('.workspace') || /\bworkspace\s*=\s*true\b/.test(spec);
  if (!inherited) return `${name} = ${spec}`;
  const base = tableBody(workspaceDeps[name] ?? '').replace(/path\s*=\s*"([^"]+)"/, (_, p) => `path = ${JSON.stringify(isAbsolute(p) ? p : join(root, p))}`);
  const own = key.endsWith('.workspace') ? '' : tableBody(spec).replace(/\bworkspace\s*=\s*true\s*,?\s*/, '').trim();
  return `${name} = { ${[base, own].filter(Boolean).join(', ')} }`;
}

/** Copy `guest-modules/<name>` into a new temporary directory; returns the copy's path. */
export function copyGuest(name = 'editor') {
  const source = join(root, 'guest-modules', name);
  const dir = join(mkdtempSync(join(tmpdir(), `hotswap-dev-${name}-`)), name);
  cpSync(join(source, 'src'), join(dir, 'src'), { recursive: true });
  if (existsSync(join(source, 'build.rs'))) cpSync(join(source, 'build.rs'), join(dir, 'build.rs'));
  const rootToml = readFileSync(join(root, 'Cargo.toml'), 'utf8');
  const toml = readFileSync(join(source, 'Cargo.toml'), 'utf8');
  const workspaceDeps = section(rootToml, 'workspace.dependencies');
  const deps = Object.entries(section(toml, 'dependencies')).map(([k, v]) => dependency(k, v, workspaceDeps));
  const features = Object.entries(section(toml, 'features')).map(([k, v]) => `${k} = ${v}`);
  const lib = section(toml, 'lib');
  writeFileSync(join(dir, 'Cargo.toml'), [
    '[package]', `name = "${name}"`, 'version = "0.1.0"', 'edition = "2021"', 'publish = false', '',
    '[lib]', ...Object.entries(lib).map(([k, v]) => `${k} = ${v}`), '',
    '[features]', ...features, '',
    '[dependencies]', ...deps, '',
    '# A workspace of its own: the copy lives outside the repository.', '[workspace]', '',
  ].join('\n'));
  cpSync(join(root, 'Cargo.lock'), join(dir, 'Cargo.lock'));
  return dir;
}

/** Replace `from` by `to` in the copy's `src/lib.rs` (a save, as an editor makes it). */
export function editSource(dir, from, to) {
  const file = join(dir, 'src', 'lib.rs');
  const text = readFileSync(file, 'utf8');
  if (!text.includes(from)) throw new Error(`${file} has no ${JSON.stringify(from)}`);
  writeFileSync(file, text.replace(from, to));
}
