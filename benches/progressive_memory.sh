#!/usr/bin/env bash
# Peak RSS of the whole CLI process (`userphoto normalize`, one thread) on one progressive
# JPEG per profile, measured with /usr/bin/time -v, for our progressive decoder and for the
# libjpeg path (USERPHOTO_PROGRESSIVE=libjpeg).
#
#   benches/progressive_memory.sh [FILE]
#
# FILE defaults to target/progressive-inputs/cjpeg_16mp_q100_420_grain.jpg (make it with
# benches/progressive_inputs.sh). Targets (issue 13, on the 16 MB 18 MP quality-100 file):
# ad-thumbnail < 30 MB, graph < 60 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
FILE=${1:-target/progressive-inputs/cjpeg_16mp_q100_420_grain.jpg}
[ -f "$FILE" ] || { echo "progressive_memory.sh: $FILE missing (run benches/progressive_inputs.sh)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "progressive_memory.sh: /usr/bin/time missing (apt install time)" >&2; exit 1; }
CLI=$(scripts/cargo-exe.sh userphoto -p userphoto-cli)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/userphoto-progmem.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "file: $FILE ($(stat -c %s "$FILE") bytes)"
for path in native libjpeg; do
  for profile in ad-thumbnail graph; do
    USERPHOTO_PROGRESSIVE=$path /usr/bin/time -v -o "$WORK/time" \
      "$CLI" normalize --threads 1 --profile "$profile" --out "$WORK/out" "$FILE" >/dev/null 2>"$WORK/err" || {
      echo "progressive_memory.sh: normalize failed:" >&2; cat "$WORK/err" >&2; exit 1; }
    kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time")
    secs=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/time")
    printf '%-8s %-13s peak_rss_mb=%.1f wall=%s\n' "$path" "$profile" "$(echo "$kb / 1024" | bc -l)" "$secs"
  done
done
