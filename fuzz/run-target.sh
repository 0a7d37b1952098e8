#!/usr/bin/env bash
# Runs one fuzz target of fuzz/Cargo.toml under libFuzzer: with cargo-fuzz when it is
# installed (the stable toolchain with RUSTC_BOOTSTRAP=1, as scripts/fuzz.sh does), else
# built with the nightly toolchain and the flags cargo-fuzz would pass, and run directly.
# Shared by fuzz/ldif.sh and fuzz/progressive.sh, which make the seeds.
#
#   fuzz/run-target.sh TARGET CORPUS_DIR [LIBFUZZER-FLAGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=$1
CORPUS=$2
shift 2
if command -v cargo-fuzz >/dev/null 2>&1; then
  export RUSTC_BOOTSTRAP=1
  exec cargo fuzz run --fuzz-dir fuzz "$NAME" "$CORPUS" -- "$@"
fi
# What cargo-fuzz passes to rustc for libFuzzer's coverage instrumentation.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps those flags off build scripts and proc macros, as cargo-fuzz does.
TARGET=${CARGO_TARGET_DIR:-fuzz/target}/fuzz
HOST=$(rustc +nightly -vV | sed -n 's/^host: //p')
(cd fuzz && CARGO_TARGET_DIR="$TARGET" cargo +nightly build --release --target "$HOST" --bin "$NAME")
exec "$TARGET/$HOST/release/$NAME" "$CORPUS" "$@"
