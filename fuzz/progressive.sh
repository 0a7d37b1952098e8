#!/usr/bin/env bash
# Seeds and runs the progressive JPEG fuzz target (fuzz_targets/progressive.rs), which
# compares the crate's own progressive decoder with the libjpeg path through the normalizer.
#
#   fuzz/progressive.sh [SECONDS [LIBFUZZER-FLAGS...]]    (default 60 seconds)
#
# e.g. `fuzz/progressive.sh 600 -fork=1 -ignore_crashes=1` keeps going after a crash (each
# one is saved under fuzz/artifacts/progressive) and counts them.
#
# Seeds (written to fuzz/corpus/progressive, which git ignores) are made here at run time,
# never copied from ../shared/corpus: small synthetic pictures (python3 writes them as
# PPM/PGM) encoded by cjpeg as baseline JPEGs and turned progressive by jpegtran
# (libjpeg-turbo-progs): gray, 4:4:4, 4:2:2, 4:4:0, 4:2:0, 4:1:1, odd sizes, restart
# markers every row and every block, a custom scan script with split spectral bands and
# many refinement scans, a few truncated files and one arithmetic-coded one. Runs with
# cargo-fuzz (installed if missing; stable with RUSTC_BOOTSTRAP=1, as scripts/fuzz.sh does);
# where it cannot be installed, builds the target with the nightly toolchain and
# libFuzzer's flags and runs it directly, as fuzz/ldif.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
CORPUS=fuzz/corpus/progressive
for tool in python3 cjpeg jpegtran; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "progressive.sh: $tool is needed to make the seeds (apt-get install libjpeg-turbo-progs python3)" >&2
    exit 2
  }
done
mkdir -p "$CORPUS"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# A picture W x H with gradients, edges and a little pseudo-random texture (so that every
# band of coefficients has something in it), as binary PPM (P6) or PGM (P5).
picture() { # W H P5|P6 OUT
  python3 - "$@" <<'EOF'
import sys
w, h, kind, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ch = 3 if kind == "P6" else 1
seed = w * 7919 + h * 104729
px = bytearray()
for y in range(h):
    for x in range(w):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        noise = (seed >> 16) % 48
        edge = 160 if (x // 5 + y // 7) % 2 else 0
        v = (x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // max(w + h - 2, 1))
        for c in range(ch):
            px.append((v[c] // 2 + edge // (c + 1) + noise) % 256)
with open(out, "wb") as f:
    f.write(b"%s\n%d %d\n255\n" % (kind.encode(), w, h))
    f.write(bytes(px))
EOF
}

# Scan scripts (libjpeg's wizard syntax: components: Ss-Se, Ah, Al;). Successive
# approximation on DC and AC, the luma AC split into three bands, each refined twice.
cat >"$TMP/many.scans" <<'EOF'
0,1,2: 0-0, 0, 2;
0: 1-2, 0, 3;
0: 3-9, 0, 3;
0: 10-63, 0, 3;
1: 1-63, 0, 2;
2: 1-5, 0, 1;
2: 6-63, 0, 1;
0,1,2: 0-0, 2, 1;
0: 1-63, 3, 2;
0: 1-9, 2, 1;
0: 10-63, 2, 1;
1: 1-63, 2, 1;
0,1,2: 0-0, 1, 0;
0: 1-63, 1, 0;
1: 1-63, 1, 0;
2: 1-63, 1, 0;
EOF
# Non-interleaved DC scans (one component each) and single-coefficient AC bands.
cat >"$TMP/split.scans" <<'EOF'
0: 0-0, 0, 1;
1: 0-0, 0, 0;
2: 0-0, 0, 0;
0: 1-1, 0, 0;
0: 2-2, 0, 0;
0: 3-63, 0, 1;
0: 0-0, 1, 0;
0: 3-63, 1, 0;
1: 1-63, 0, 0;
2: 1-63, 0, 0;
EOF
cat >"$TMP/gray.scans" <<'EOF'
0: 0-0, 0, 3;
0: 1-4, 0, 2;
0: 5-63, 0, 2;
0: 0-0, 3, 2;
0: 1-63, 2, 1;
0: 0-0, 2, 1;
0: 0-0, 1, 0;
0: 1-63, 1, 0;
EOF

# seed NAME W H SAMPLING [jpegtran switches...]: a baseline JPEG made progressive.
seed() {
  local name=$1 w=$2 h=$3 sampling=$4
  shift 4
  if [ "$sampling" = gray ]; then
    picture "$w" "$h" P5 "$TMP/$name.pgm"
    cjpeg -quality 85 -grayscale -outfile "$TMP/$name.jpg" "$TMP/$name.pgm"
  else
    picture "$w" "$h" P6 "$TMP/$name.ppm"
    cjpeg -quality 85 -sample "$sampling" -outfile "$TMP/$name.jpg" "$TMP/$name.ppm"
  fi
  jpegtran "$@" -outfile "$CORPUS/$name.jpg" "$TMP/$name.jpg"
}
seed gray-32 32 32 gray -progressive
seed gray-odd 45 17 gray -progressive -restart 1
seed gray-scans 64 48 gray -scans "$TMP/gray.scans"
seed 444-24 24 24 1x1 -progressive
seed 444-restart-block 40 40 1x1 -progressive -restart 1B
seed 422-50 50 36 2x1 -progressive
seed 440-36 36 50 1x2 -progressive
seed 420-16 16 16 2x2 -progressive
seed 420-odd 33 71 2x2 -progressive
seed 420-200 200 150 2x2 -progressive
seed 420-restart-row 96 64 2x2 -progressive -restart 1
seed 420-restart-block 72 56 2x2 -progressive -restart 1B
seed 420-many-scans 80 80 2x2 -scans "$TMP/many.scans"
seed 444-many-scans 48 40 1x1 -scans "$TMP/many.scans" -restart 1B
seed 420-split-scans 64 64 2x2 -scans "$TMP/split.scans"
seed 411-64 64 32 4x1 -progressive
seed 420-arithmetic 48 48 2x2 -progressive -arithmetic
# Truncated: inside the first scans, in the middle, just before EOI.
for cut in 400 1500; do
  head -c "$cut" "$CORPUS/420-many-scans.jpg" >"$CORPUS/truncated-many-scans-$cut.jpg"
done
n=$(wc -c <"$CORPUS/420-200.jpg")
head -c $((n / 2)) "$CORPUS/420-200.jpg" >"$CORPUS/truncated-420-200-half.jpg"
head -c $((n - 2)) "$CORPUS/420-200.jpg" >"$CORPUS/truncated-420-200-no-eoi.jpg"

ARGS=(-max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -max_len=1000000 "${@:2}")
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz || true
exec fuzz/run-target.sh progressive "$CORPUS" "${ARGS[@]}"
