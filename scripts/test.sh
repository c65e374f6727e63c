#!/usr/bin/env bash
# Every test: host-side cargo tests, then the loader in headless Chrome against the
# fixture server, then the page in Chromium driven by Playwright.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

bash scripts/build.sh

echo "== cargo fmt --check, cargo clippy -D warnings (every crate natively; the loader for wasm32, with and without the watcher)"
cargo fmt --all --check
cargo clippy --quiet --workspace --all-targets --features wasm-hotswap/watch,xtask/fixtures -- -D warnings
cargo clippy --quiet -p wasm-hotswap --target wasm32-unknown-unknown --all-targets --features watch -- -D warnings
cargo clippy --quiet -p wasm-hotswap --target wasm32-unknown-unknown --lib -- -D warnings

echo "== cargo test (host: ABI, SDK macros, validation, hashing, demo server relay and HTTP surface, registry, CLI, editor preview; short property runs)"
cargo test --quiet -p hotswap-abi -p hotswap-inspect -p hotswap-guest -p hotswap-guest-macros -p xtask -p wasm-hotswap -p demo-app -p hotswap-registry -p hotswap-cli -p editor --features wasm-hotswap/watch,editor/v2

echo "== wasm-pack test --headless --chrome (loader in a real browser)"
log=$(mktemp)
node tests/support/server.mjs 0 >"$log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q LISTENING "$log" && break; sleep 0.1; done
read -r _ url _ < <(grep LISTENING "$log") || { echo "fixture server did not start"; cat "$log"; exit 1; }
export HOTSWAP_TEST_SERVER="$url"
export WASM_BINDGEN_TEST_TIMEOUT=900
# Cargo options go straight after the path: wasm-pack 0.15 hands whatever follows `--` to the
# test runner (which refuses `--features`).
wasm-pack test --headless --chrome --mode no-install loader --features watch

echo "== Playwright (the pages in Chromium, the demo end to end against the real server)"
node --test tests/page.test.mjs tests/demo.test.mjs tests/demo-hostile.test.mjs tests/examples.test.mjs tests/dev.test.mjs tests/dev-cli.test.mjs
