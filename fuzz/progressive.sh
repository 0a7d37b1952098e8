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
# markers every row and every block, custom scan scripts (split spectral bands and many
# refinement scans, chroma before luma, component ids from 0, six random valid scripts),
# ImageMagick's and MozJPEG's progressive files (when convert and the
# mozjpeg-lossless-optimization wheel, installed into target/mozjpeg-venv, are at hand), a
# few truncated files and one arithmetic-coded one. Runs with
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
# Other writers' scan scripts: chroma scans before luma with spectral selection only, on
# 4:2:2, 4:4:0 and 4:4:4; the same file with component ids from 0 (as some MozJPEG files).
cat >"$TMP/chroma-first.scans" <<'EOF'
2: 0-0, 0, 0; 1: 0-0, 0, 0; 0: 0-0, 0, 0;
2: 1-63, 0, 0; 1: 1-63, 0, 0;
0: 1-5, 0, 0; 0: 6-20, 0, 0; 0: 21-63, 0, 0;
EOF
seed 422-chroma-first 56 40 2x1 -scans "$TMP/chroma-first.scans"
seed 440-chroma-first 40 56 1x2 -scans "$TMP/chroma-first.scans" -restart 1
seed 444-chroma-first 48 48 1x1 -scans "$TMP/chroma-first.scans"
seed 422-many-scans 64 48 2x1 -scans "$TMP/many.scans"
python3 - "$CORPUS/444-chroma-first.jpg" "$CORPUS/444-ids-from-0.jpg" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
pos = 2
while pos + 4 <= len(b) and b[pos] == 0xFF:
    marker, length = b[pos + 1], (b[pos + 2] << 8) | b[pos + 3]
    seg = pos + 4
    if marker in (0xC0, 0xC1, 0xC2):
        for i in range(b[seg + 5]):
            b[seg + 6 + 3 * i] -= 1
    elif marker == 0xDA:
        for i in range(b[seg]):
            b[seg + 1 + 2 * i] -= 1
        p = seg + length - 2
        while p + 1 < len(b) and not (b[p] == 0xFF and b[p + 1] != 0 and not 0xD0 <= b[p + 1] <= 0xD7):
            p += 1
        pos = p
        continue
    elif marker == 0xD9:
        break
    pos = seg + length - 2
open(sys.argv[2], "wb").write(b)
EOF
# Random valid scan scripts: DC interleaved or not (then in any order; jpegtran wants an
# interleaved scan's components in frame order), successive approximation,
# AC bands split at random per component, each refined down to Al 0, the scans shuffled
# within the order the standard allows.
samplings=(2x2 2x1 1x2 1x1 4x1 2x1)
for n in 1 2 3 4 5 6; do
  python3 - "$n" >"$TMP/random-$n.scans" <<'EOF'
import random, sys
r = random.Random(int(sys.argv[1]) * 7717)
comps = [0, 1, 2]
al = r.randint(0, 3)
order = comps[:]
r.shuffle(order)
if r.random() < 0.5:
    first = [f"0,1,2: 0-0, 0, {al};"]
else:
    first = [f"{c}: 0-0, 0, {al};" for c in order]
seqs = [[f"0,1,2: 0-0, {k}, {k - 1};" for k in range(al, 0, -1)]]
for c in comps:
    cuts = sorted(r.sample(range(2, 64), r.randint(0, 3)))
    for s, e in zip([1] + cuts, cuts + [64]):
        a = r.randint(0, 3)
        seqs.append([f"{c}: {s}-{e - 1}, 0, {a};"] + [f"{c}: {s}-{e - 1}, {k}, {k - 1};" for k in range(a, 0, -1)])
out = first[:]
while any(seqs):
    q = r.choice([q for q in seqs if q])
    out.append(q.pop(0))
print("\n".join(out))
EOF
  seed "random-scans-$n" $((24 + 8 * n)) $((56 - 4 * n)) "${samplings[$((n - 1))]}" -scans "$TMP/random-$n.scans"
done
# ImageMagick and MozJPEG, when they are at hand (seeds from every common writer).
if convert -version 2>/dev/null | grep -q ImageMagick; then
  picture 60 44 P6 "$TMP/magick.ppm"
  for s in 2x1 1x2 2x2 1x1; do
    convert "$TMP/magick.ppm" -interlace JPEG -sampling-factor "$s" -quality 88 "$CORPUS/magick-$s.jpg"
  done
fi
VENV=target/mozjpeg-venv
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q mozjpeg-lossless-optimization; } || true
if "$VENV/bin/python" -c "import mozjpeg_lossless_optimization" 2>/dev/null; then
  picture 52 36 P6 "$TMP/moz.ppm"
  for s in 2x1 1x1 2x2; do
    cjpeg -quality 90 -sample "$s" -outfile "$TMP/moz-$s.jpg" "$TMP/moz.ppm"
    "$VENV/bin/python" -c '
import sys, mozjpeg_lossless_optimization as m
open(sys.argv[2], "wb").write(m.optimize(open(sys.argv[1], "rb").read()))' "$TMP/moz-$s.jpg" "$CORPUS/mozjpeg-$s.jpg"
  done
fi
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
