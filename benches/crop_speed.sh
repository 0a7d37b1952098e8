#!/usr/bin/env bash
# Measures what the face-aware crop costs: userphoto's `face` crop against its `centre` crop
# and against vipsthumbnail --smartcrop attention, at ad-thumbnail (96 px), one thread.
#
#   benches/crop_speed.sh [PHOTO_DIR...]
#
# PHOTO_DIRs default to target/people-photos (made by benches/people_photos.sh when missing)
# and ../shared/corpus. BENCH_CORE (default 1) is the core everything is pinned to with
# taskset, BENCH_RUNS (default 5) the runs per file of our in-process timer. USERPHOTO_BIN and
# USERPHOTO_BENCH_BIN replace the CLI and examples/bench_folder built by scripts/cargo-exe.sh
# (benches/testdouble_userphoto.py is a test double of both). Installs libvips-tools,
# hyperfine, time and python3-venv (apt) and the venv target/crop-venv when missing.
#
# Per folder, on the same files (those both bench_folder and vipsheader can read), in the same
# run:
#   - ours: `bench_folder DIR ad-thumbnail RUNS` with BENCH_CROP=face and BENCH_CROP=centre,
#     the sum of the per-file medians (in process: decode, crop, resize, encode);
#   - vips: `VIPS_CONCURRENCY=1 vipsthumbnail -s 96x96 --smartcrop attention` (and centre),
#     one process over all the files, median of hyperfine's runs, as in benches/compare.sh;
#   - the ratio vips(attention) / ours(face) (target: >= 1.5) and the face crop's overhead
#     over the centre crop;
#   - peak RSS (/usr/bin/time -f %M) of `userphoto normalize --profile ad-thumbnail --crop face`
#     and `--crop centre` (--threads 1) on the folder's largest file in pixels (target: face at
#     most 10 MB above centre), and of vipsthumbnail --smartcrop attention on it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
  [ -f target/people-photos/MANIFEST.tsv ] || benches/people_photos.sh target/people-photos >/dev/null
  set -- target/people-photos ../shared/corpus
fi
CORE=${BENCH_CORE:-1}
RUNS=${BENCH_RUNS:-5}
VENV=target/crop-venv
WORK=$(mktemp -d "${TMPDIR:-/tmp}/userphoto-crop-speed.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

need=()
command -v vipsthumbnail >/dev/null || need+=(libvips-tools)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
# shellcheck source=benches/crop_env.sh
. benches/crop_env.sh

BENCH=${USERPHOTO_BENCH_BIN:-$(scripts/cargo-exe.sh bench_folder -p userphoto --example bench_folder)}
CLI=${USERPHOTO_BIN:-$(scripts/cargo-exe.sh userphoto -p userphoto-cli)}
# Without these the run would time the centre crop twice, or fail on every file.
grep -q BENCH_CROP "$BENCH" || { echo "crop_speed.sh: $BENCH does not read BENCH_CROP (the face-aware crop has not landed in this tree)" >&2; exit 1; }
"$CLI" normalize --help 2>/dev/null | grep -q -- '--crop' || { echo "crop_speed.sh: $CLI normalize has no --crop option" >&2; exit 1; }

echo "crop speed: userphoto --crop face / centre vs vipsthumbnail --smartcrop attention, ad-thumbnail (96 px)"
echo "machine: $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "one thread pinned to core $CORE; ours: median of $RUNS runs per file in process; vips: $(vipsthumbnail --vips-version 2>/dev/null | head -1), one process over the files, median of 3 runs"
echo "userphoto: $CLI ($("$CLI" --version 2>/dev/null || echo 'no --version'))$(git rev-parse --short HEAD 2>/dev/null | sed 's/^/, tree at /')"
echo

n=0
for arg in "$@"; do
  DIR=$(realpath "$arg")
  n=$((n + 1))
  W="$WORK/$n"
  mkdir -p "$W/vips-attention" "$W/vips-centre" "$W/mem"
  for crop in face centre; do
    BENCH_CROP=$crop taskset -c "$CORE" "$BENCH" "$DIR" ad-thumbnail "$RUNS" >"$W/ours-$crop.jsonl"
  done
  # The files both read: bench_folder printed them (by name); vipsheader opens them.
  "$PY" - "$W" >"$W/ours.names" <<'PYEOF'
import json, sys
w = sys.argv[1]
def names(c):
    return {json.loads(l)["file"] for l in open(f"{w}/ours-{c}.jsonl") if l.startswith('{"file"') or '"file"' in l}
print("\n".join(sorted(names("face") & names("centre"))))
PYEOF
  : >"$W/files.list"
  while IFS= read -r name; do
    [ -n "$name" ] && vipsheader "$DIR/$name" >/dev/null 2>&1 && printf '%s\n' "$DIR/$name" >>"$W/files.list"
  done <"$W/ours.names"
  if [ ! -s "$W/files.list" ]; then
    echo "== $DIR: no file that both read"; echo; continue
  fi
  mapfile -t FILES <"$W/files.list"
  for crop in attention centre; do
    # One vipsthumbnail process over all files, like our one process.
    VIPS_CONCURRENCY=1 hyperfine --style none --runs 3 --warmup 1 --export-json "$W/vips-$crop.json" \
      "taskset -c $CORE vipsthumbnail -s 96x96 --smartcrop $crop -o '$W/vips-$crop/%s.jpg[Q=90,strip,optimize_coding]' $(printf "'%s' " "${FILES[@]}")" >/dev/null
  done
  BIG=$("$PY" -c "
import sys
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
def px(f):
    with Image.open(f) as im: return im.size[0] * im.size[1]
print(max((l.rstrip('\n') for l in open(sys.argv[1])), key=px))" "$W/files.list")
  rss() {
    /usr/bin/time -f %M -o "$W/rss.txt" "$@" >/dev/null 2>"$W/rss.err" ||
      { echo "crop_speed.sh: failed: $* ($(tail -1 "$W/rss.err"))" >&2; exit 1; }
    tail -1 "$W/rss.txt"
  }
  rss_face=$(rss "$CLI" normalize --profile ad-thumbnail --crop face --threads 1 --out "$W/mem" "$BIG")
  rss_centre=$(rss "$CLI" normalize --profile ad-thumbnail --crop centre --threads 1 --out "$W/mem" "$BIG")
  rss_vips=$(rss env VIPS_CONCURRENCY=1 vipsthumbnail -s 96x96 --smartcrop attention -o "$W/mem/vips.jpg[Q=90,strip]" "$BIG")
  "$PY" - "$W" "$DIR" "$BIG" "$rss_face" "$rss_centre" "$rss_vips" <<'PYEOF'
import json, os, sys
w, d, big, rf, rc, rv = sys.argv[1:7]
files = {os.path.basename(l.rstrip("\n")) for l in open(f"{w}/files.list")}
def ours(c):
    rows = [json.loads(l) for l in open(f"{w}/ours-{c}.jsonl")]
    return {r["file"]: r["ms"] for r in rows if "file" in r and r["file"] in files}
face, centre = ours("face"), ours("centre")
fs, cs = sum(face.values()) / 1000, sum(centre.values()) / 1000
va = json.load(open(f"{w}/vips-attention.json"))["results"][0]["median"]
vc = json.load(open(f"{w}/vips-centre.json"))["results"][0]["median"]
n = len(files)
print(f"== {d}: {n} files")
print(f"{'':28} {'seconds':>8} {'ms/file':>8}")
for label, s in [("ours --crop face", fs), ("ours --crop centre", cs),
                 ("vips --smartcrop attention", va), ("vips --smartcrop centre", vc)]:
    print(f"{label:28} {s:8.3f} {1000 * s / n:8.1f}")
ratio = va / fs if fs > 0 else float("nan")
print(f"vips(attention) time / ours(face) time: {ratio:.2f} (ours is faster above 1; target >= 1.5: {'met' if ratio >= 1.5 else 'NOT met'})")
print(f"face vs centre: +{fs - cs:.3f} s, +{1000 * (fs - cs) / n:.1f} ms per file, {fs / cs:.2f}x the centre crop's time"
      f"; vips attention vs centre: {va / vc:.2f}x")
slow = sorted(((face[f] - centre.get(f, 0), f) for f in face), reverse=True)[:3]
print("largest face-crop overheads: " + ", ".join(f"{f} +{x:.1f} ms" for x, f in slow))
rf, rc, rv = int(rf) / 1024, int(rc) / 1024, int(rv) / 1024
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
with Image.open(big) as im:
    size = f"{im.size[0]}x{im.size[1]}"
print(f"peak RSS on the largest file, {os.path.basename(big)} ({size}, {os.path.getsize(big)} bytes): "
      f"ours face {rf:.1f} MB, centre {rc:.1f} MB, face - centre {rf - rc:+.1f} MB "
      f"(target <= 10 MB: {'met' if rf - rc <= 10 else 'NOT met'}); vipsthumbnail attention {rv:.1f} MB")
print()
PYEOF
done
