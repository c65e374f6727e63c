#!/usr/bin/env bash
# `npm run dev`: the demo in watch mode. Serves the page as `npm start` does and runs the dev
# loop (`hotswap dev`'s code, inside the demo server) on the editor guest: every save of
# guest-modules/editor (or of the SDK/ABI crates it uses) rebuilds it, publishes it to the
# dev registry (<data>/dev/registry) as a dev version signed with the demo key, and every
# open page swaps to it in place. Arguments go to the demo server, e.g.
#   npm run dev -- --dev-features v1_1      (build the editor as 1.1.0)
# HOTSWAP_DEV_GUEST=path/to/crate picks another guest crate. Ctrl-C stops everything.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/build.sh
guest="${HOTSWAP_DEV_GUEST:-guest-modules/editor}"
# The release build's RUSTFLAGS for this guest (xtask keeps the one list).
flags=$(cargo run --quiet -p xtask -- rustflags "$(basename "$guest")" 2>/dev/null || true)
exec ./target/release/demo-app --dev "$guest" ${flags:+--dev-rustflags "$flags"} "$@"
