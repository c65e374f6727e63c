#!/usr/bin/env bash
# The long property-test run over every parser that takes untrusted bytes (`npm test` runs
# the same properties briefly): module metadata (hotswap-abi), module sections
# (hotswap-inspect), the manifest envelope and payload (hotswap-registry), the relay's
# message handling and the editor's state decoding (demo-app). HOTSWAP_FUZZ_LONG=1 makes
# each property run 100 times as many cases.
# Any failure prints the minimal input, and proptest keeps it in <crate>/proptest-regressions/.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
export HOTSWAP_FUZZ_LONG=1
start=$(date +%s)
cargo test --quiet -p hotswap-abi --test metadata_fuzz
cargo test --quiet -p hotswap-registry --test envelope_fuzz
cargo test --quiet -p hotswap-inspect --lib -- tests::
cargo test --quiet -p demo-app -- tests::fuzz::
echo "fuzz: every property held ($(( $(date +%s) - start )) s)"
