#!/usr/bin/env bash
# Install whatever is missing to build, run and test wasm-hotswap on a Debian machine.
# Idempotent: a second run only checks versions and takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

WASM_PACK_VERSION=0.15.1
# wasm-bindgen-cli must equal the wasm-bindgen in Cargo.lock, or wasm-pack falls back to a
# slow install and the test runner refuses the module.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)

say() { echo "bootstrap: $*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    say "missing $1 — install it (Debian: sudo apt-get install -y $2) and run again"
    exit 1
  fi
}

apt_install() {
  need_root "$*" "$*"
  for attempt in 1 2; do
    if apt-get update -o DPkg::Lock::Timeout=300 >/dev/null && \
       DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=300 "$@" >/dev/null; then
      return 0
    fi
    say "apt-get install $* failed (attempt $attempt)"
  done
  return 1
}

command -v cargo >/dev/null || { say "cargo not found: install Rust with rustup first"; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(wasm-pack --version 2>/dev/null)" != "wasm-pack $WASM_PACK_VERSION" ]; then
  say "installing wasm-pack $WASM_PACK_VERSION (a few minutes, once)"
  cargo install --locked --quiet wasm-pack --version "$WASM_PACK_VERSION"
fi

if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  # Not --locked: its lockfile pins a crate version the registry mirror lacks.
  cargo install --quiet --force wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  say "installing Chromium and ChromeDriver from Debian"
  apt_install chromium chromium-driver
fi

# npm dev dependencies: binaryen (a wasm-opt that works; Debian's miscompiles wasm-bindgen
# output) and playwright-core (driven against Debian's Chromium, never a downloaded one).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dev dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
