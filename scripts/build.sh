#!/usr/bin/env bash
# Build the guests (target/guests), the loader's npm package (loader/pkg), the demo server
# and the hotswap CLI.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
cargo run --quiet -p xtask -- guests
# The npm package: the core and the registry watcher are separate builds with separate entries
# (scripts/package.mjs), so an app that only loads and swaps never downloads the watcher.
wasm-pack --quiet build loader --release --target web --mode no-install --out-dir pkg/core --out-name wasm_hotswap
wasm-pack --quiet build loader --release --target web --mode no-install --out-dir pkg/watch --out-name wasm_hotswap -- --features watch
node scripts/package.mjs
cargo build --quiet --release -p demo-app -p hotswap-cli
