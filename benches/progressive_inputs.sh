#!/usr/bin/env bash
# Makes large progressive JPEGs (16-24 MP) from the corpus for the progressive benches:
# quality 75, 90 and 100, 4:2:0 and 4:4:4, plus jpegtran's lossless progressive rewrite of
# the 24 MP baseline file. Output goes to a folder under target/ (never into the repo).
#
#   benches/progressive_inputs.sh [CORPUS_DIR] [OUT_DIR]
#
# CORPUS_DIR defaults to ../shared/corpus, OUT_DIR to target/progressive-inputs. Needs cjpeg,
# djpeg and jpegtran (apt install libjpeg-turbo-progs). Point benches/compare.sh at OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=$(realpath "${1:-../shared/corpus}")
OUT=${2:-target/progressive-inputs}
mkdir -p "$OUT"
for t in cjpeg djpeg jpegtran; do
  command -v "$t" >/dev/null || { echo "progressive_inputs.sh: $t missing (apt install libjpeg-turbo-progs)" >&2; exit 1; }
done
A="$CORPUS/03_lomiri_seeding_5312x2988.jpg"   # 16 MP progressive wallpaper
B="$CORPUS/36_derived_upscaled_jolla_5664x4248_24mp.jpg"   # 24 MP baseline
for f in "$A" "$B"; do [ -f "$f" ] || { echo "progressive_inputs.sh: $f missing" >&2; exit 1; }; done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/userphoto-prog-inputs.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
djpeg -pnm "$A" >"$TMP/a.ppm"
djpeg -pnm "$B" >"$TMP/b.ppm"
for q in 75 90 100; do
  for s in 2x2 1x1; do
    tag=$([ "$s" = 2x2 ] && echo 420 || echo 444)
    cjpeg -progressive -quality "$q" -sample "$s" "$TMP/a.ppm" >"$OUT/seeding_16mp_q${q}_${tag}.jpg"
  done
done
cjpeg -progressive -quality 100 -sample 2x2 "$TMP/b.ppm" >"$OUT/jolla_24mp_q100_420.jpg"
cjpeg -progressive -quality 90 -sample 1x1 "$TMP/b.ppm" >"$OUT/jolla_24mp_q90_444.jpg"
jpegtran -progressive "$B" >"$OUT/jolla_24mp_jpegtran.jpg"
# A heavy one like the issue's 16 MB quality-100 file: the 16 MP picture with fine
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
cjpeg -progressive -quality 100 -sample 2x2 "$TMP/grain.ppm" >"$OUT/seeding_16mp_q100_420_grain.jpg"
ls -l "$OUT"
