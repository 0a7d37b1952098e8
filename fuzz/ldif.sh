#!/usr/bin/env bash
# Seeds and runs the LDIF reader's fuzz target (fuzz_targets/ldif.rs).
#
#   fuzz/ldif.sh [SECONDS]    (default 60)
#
# Seeds: the exports of tests/data/ldif (each written as its tool writes it), copied into
# fuzz/corpus/ldif (which git ignores), plus a few small hostile ones. Runs with cargo-fuzz
# when it is installed (stable with RUSTC_BOOTSTRAP=1, as scripts/fuzz.sh does); without it,
# builds the target with the nightly toolchain and libFuzzer's flags and runs it directly.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
CORPUS=fuzz/corpus/ldif
mkdir -p "$CORPUS"
cp tests/data/ldif/*.ldif "$CORPUS/"
printf 'dn: CN=a,DC=x\nthumbnailPhoto:: /9j/\n \n' >"$CORPUS/seed-fold.ldif"
printf '\xff\xfed\x00n\x00:\x00 \x00x\x00\n\x00' >"$CORPUS/seed-utf16.ldif"
printf '# search result\nsearch: 2\nresult: 0 Success\n\n' >"$CORPUS/seed-result.ldif"
ARGS=(-max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -max_len=1000000)
exec fuzz/run-target.sh ldif "$CORPUS" "${ARGS[@]}"
