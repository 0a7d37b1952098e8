#!/usr/bin/env bash
# Makes large progressive JPEGs (16-24 MP) from corpus photos for the progressive benches,
# one or more from every common writer and sampling:
#
#   libjpeg's standard scan script (cjpeg -progressive): 4:2:2 quality 100 (camera-style),
#     4:4:0, 4:4:4, 4:1:1, and 4:2:0 quality 100 with fine grain (a 16 MB file);
#   jpegtran -progressive (lossless rewrite of a 4:2:2 baseline file);
#   jpegtran -scans with hand-written scripts: chroma scans before luma with spectral
#     selection only (4:4:4), and deep successive approximation (4:2:0);
#   MozJPEG's optimized scans (the mozjpeg-lossless-optimization wheel, the jpegtran
#     -optimize of MozJPEG) of 4:2:2 and 4:4:4 baseline files;
#   ImageMagick (convert -interlace JPEG -sampling-factor) 4:2:2 and 4:2:0;
#   one 6912x2400 panorama (16.6 MP, 4:4:4, chroma-first script) that graph decodes at full
#     scale (its short side is under 4x 648).
#
#   benches/progressive_inputs.sh [CORPUS_DIR] [OUT_DIR]
#
# CORPUS_DIR defaults to ../shared/corpus, OUT_DIR to target/progressive-inputs (never into
# the repo). Needs cjpeg, djpeg, jpegtran (apt install libjpeg-turbo-progs), ImageMagick's
# convert (apt install imagemagick) and python3 with venv (the wheel is installed into
# target/mozjpeg-venv). Point benches/compare.sh at OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=$(realpath "${1:-../shared/corpus}")
OUT=${2:-target/progressive-inputs}
mkdir -p "$OUT"
for t in cjpeg djpeg jpegtran python3; do
  command -v "$t" >/dev/null || { echo "progressive_inputs.sh: $t missing (apt install libjpeg-turbo-progs imagemagick python3-venv)" >&2; exit 1; }
done
convert -version 2>/dev/null | grep -q ImageMagick || { echo "progressive_inputs.sh: ImageMagick's convert missing (apt install imagemagick)" >&2; exit 1; }
VENV=target/mozjpeg-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q mozjpeg-lossless-optimization
fi
mozjpeg() { # IN OUT: MozJPEG's lossless optimization (optimized progressive scans)
  "$VENV/bin/python" -c '
import sys, mozjpeg_lossless_optimization as m
open(sys.argv[2], "wb").write(m.optimize(open(sys.argv[1], "rb").read()))' "$1" "$2"
}
A="$CORPUS/03_lomiri_seeding_5312x2988.jpg"   # 16 MP progressive wallpaper
B="$CORPUS/36_derived_upscaled_jolla_5664x4248_24mp.jpg"   # 24 MP baseline
for f in "$A" "$B"; do [ -f "$f" ] || { echo "progressive_inputs.sh: $f missing" >&2; exit 1; }; done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/userphoto-prog-inputs.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
djpeg -pnm "$A" >"$TMP/a.ppm"
djpeg -pnm "$B" >"$TMP/b.ppm"
rm -f "$OUT"/*.jpg

# Scan scripts (jpegtran -scans syntax: components: Ss-Se, Ah, Al;).
cat >"$TMP/chroma-first.scans" <<'EOF'
2: 0-0, 0, 0; 1: 0-0, 0, 0; 0: 0-0, 0, 0;
2: 1-63, 0, 0; 1: 1-63, 0, 0;
0: 1-5, 0, 0; 0: 6-20, 0, 0; 0: 21-63, 0, 0;
EOF
cat >"$TMP/deep-sa.scans" <<'EOF'
0,1,2: 0-0, 0, 2; 0: 1-5, 0, 3; 0: 6-63, 0, 3; 1: 1-63, 0, 2; 2: 1-63, 0, 2;
0,1,2: 0-0, 2, 1; 0: 1-63, 3, 2; 1: 1-63, 2, 1; 2: 1-63, 2, 1;
0,1,2: 0-0, 1, 0; 0: 1-63, 2, 1; 0: 1-63, 1, 0; 1: 1-63, 1, 0; 2: 1-63, 1, 0;
EOF

# libjpeg's standard script.
cjpeg -progressive -quality 100 -sample 2x1 "$TMP/a.ppm" >"$OUT/cjpeg_16mp_q100_422.jpg"
cjpeg -progressive -quality 90 -sample 1x2 "$TMP/b.ppm" >"$OUT/cjpeg_24mp_q90_440.jpg"
cjpeg -progressive -quality 90 -sample 1x1 "$TMP/b.ppm" >"$OUT/cjpeg_24mp_q90_444.jpg"
cjpeg -progressive -quality 90 -sample 4x1 "$TMP/a.ppm" >"$OUT/cjpeg_16mp_q90_411.jpg"
# jpegtran -progressive of a 4:2:2 baseline file.
cjpeg -quality 92 -sample 2x1 "$TMP/b.ppm" >"$TMP/b422.jpg"
jpegtran -progressive "$TMP/b422.jpg" >"$OUT/jpegtran_24mp_422.jpg"
# Hand-written scripts.
cjpeg -quality 90 -sample 1x1 "$TMP/a.ppm" >"$TMP/a444.jpg"
jpegtran -scans "$TMP/chroma-first.scans" "$TMP/a444.jpg" >"$OUT/scans_16mp_444_chroma_first.jpg"
cjpeg -quality 95 -sample 2x2 "$TMP/b.ppm" >"$TMP/b420.jpg"
jpegtran -scans "$TMP/deep-sa.scans" "$TMP/b420.jpg" >"$OUT/scans_24mp_420_deep_sa.jpg"
# MozJPEG's optimized scans.
mozjpeg "$TMP/b422.jpg" "$OUT/mozjpeg_24mp_422.jpg"
mozjpeg "$TMP/a444.jpg" "$OUT/mozjpeg_16mp_444.jpg"
# ImageMagick.
convert "$TMP/a.ppm" -interlace JPEG -sampling-factor 2x1 -quality 92 "$OUT/magick_16mp_422.jpg"
convert "$TMP/b.ppm" -interlace JPEG -sampling-factor 2x2 -quality 85 "$OUT/magick_24mp_420.jpg"
# A panorama graph decodes at full scale.
convert "$TMP/b.ppm" -resize 6912x -gravity center -crop 6912x2400+0+0 +repage "$TMP/pano.ppm"
cjpeg -quality 90 -sample 1x1 "$TMP/pano.ppm" >"$TMP/pano.jpg"
jpegtran -scans "$TMP/chroma-first.scans" "$TMP/pano.jpg" >"$OUT/scans_pano_6912x2400_444.jpg"
# A heavy one like a 16 MB quality-100 camera file: the 16 MP picture with fine
# deterministic grain in the low 4 bits (python3, no packages), 4:2:0, quality 100.
python3 - "$TMP/a.ppm" "$TMP/grain.ppm" <<'PY'
import random, sys
raw = open(sys.argv[1], 'rb').read()
# P6 header: magic, width, height, maxval, each followed by one whitespace byte.
fields, pos = [], 0
while len(fields) < 4:
    while raw[pos:pos + 1].isspace():
        pos += 1
    start = pos
    while not raw[pos:pos + 1].isspace():
        pos += 1
    fields.append(raw[start:pos])
pos += 1
head, data = raw[:pos], raw[pos:]
n = len(data)
noise = random.Random(13).randbytes(n)
keep = int.from_bytes(b'\xf0' * n, 'big')
mixed = (int.from_bytes(data, 'big') & keep) | (int.from_bytes(noise, 'big') & (keep >> 4))
open(sys.argv[2], 'wb').write(head + mixed.to_bytes(n, 'big'))
PY
cjpeg -progressive -quality 100 -sample 2x2 "$TMP/grain.ppm" >"$OUT/cjpeg_16mp_q100_420_grain.jpg"
ls -l "$OUT"
