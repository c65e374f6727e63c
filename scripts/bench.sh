#!/usr/bin/env bash
# `npm run bench`: the fixtures, the size floor (tests/bench/size-floor), then the benchmark
# and the dev-loop timing. Prints tables; asserts nothing.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
cargo run --quiet --release -p xtask --features fixtures -- fixtures
# Built the way the loader is (wasm-pack, the same wasm-opt settings), so the sizes compare.
wasm-pack --quiet build tests/bench/size-floor --release --target web --mode no-install --out-dir ../../../target/size-floor
node tests/bench/run.mjs
node tests/bench/devloop.mjs
