#!/usr/bin/env bash
# Runs the cargo-fuzz target on the decode entry point for a while.
#
#   scripts/fuzz.sh [SECONDS]    (default 60)
#
# Installs cargo-fuzz if missing. The stable toolchain is used with RUSTC_BOOTSTRAP=1 for
# the sanitizer flags cargo-fuzz needs. Seeds: generated images (written to
# fuzz/corpus/normalize, which git ignores) plus ../shared/corpus when present, passed as a
# second, read-only corpus folder (nothing is copied from it).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
mkdir -p fuzz/corpus/normalize
# Seeds from the crate's own generators (small, so the fuzzer mutates them quickly).
cargo run --release --quiet -p userphoto-cli -- demo --out fuzz/corpus/seed-demo >/dev/null
for f in fuzz/corpus/seed-demo/samples/* fuzz/corpus/seed-demo/renditions/*-ad-thumbnail.jpg; do
  cp "$f" "fuzz/corpus/normalize/$(basename "$f")"
done
rm -rf fuzz/corpus/seed-demo
extra=()
[ -d ../shared/corpus ] && extra+=(../shared/corpus)
export RUSTC_BOOTSTRAP=1
cargo fuzz run --fuzz-dir fuzz normalize fuzz/corpus/normalize "${extra[@]}" -- \
  -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -max_len=4000000
