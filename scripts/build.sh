#!/usr/bin/env bash
# Build the guests (target/guests), the loader's npm package (loader/pkg), the demo server
# and the hotswap CLI.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
cargo run --quiet -p xtask -- guests
wasm-pack --quiet build loader --release --target web --mode no-install --out-name wasm_hotswap -- --features watch
cargo build --quiet --release -p demo-app -p hotswap-cli
