#!/usr/bin/env bash
# Compares userphoto's normalization core with libvips (vipsthumbnail) on a folder of photos.
#
#   benches/compare.sh [PHOTO_DIR] [RUNS]
#   PER_FILE=1 benches/compare.sh target/progressive-inputs 3    (adds a per-file table)
#
# PHOTO_DIR defaults to ../shared/corpus. Installs libvips-tools, hyperfine and time (apt)
# and a Python venv with numpy, Pillow and scikit-image (pip) when missing. Prints, per
# profile and per class (baseline / progressive JPEG, other formats): totals, the
# throughput ratio against vipsthumbnail (one process over the class's files, one thread),
# the ratio against the libjpeg-turbo 1/8-scale decode floor, peak memory for the largest
# file, 2-thread scaling, output bytes, and SSIM at equal bytes against a full-resolution
# Lanczos reference. Every figure is measured in this run; quote the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$(realpath "${1:-../shared/corpus}")
RUNS=${2:-5}
WORK=$(mktemp -d /tmp/userphoto-compare.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
CORE=${BENCH_CORE:-1}

need=()
command -v vipsthumbnail >/dev/null || need+=(libvips-tools)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
command -v nasm >/dev/null || need+=(nasm)
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
VENV=target/compare-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy pillow scikit-image
fi
PY="$VENV/bin/python"

BENCH=$(scripts/cargo-exe.sh bench_folder -p userphoto --example bench_folder)
# Centre crops on both sides (vipsthumbnail --smartcrop centre below); benches/crop_speed.sh
# measures the face crop against vips' attention crop.
export BENCH_CROP=${BENCH_CROP:-centre}
CLI=$(scripts/cargo-exe.sh userphoto -p userphoto-cli)

# Classify the files once (our bench prints the class of each file it can normalize).
"$BENCH" "$DIR" ad-thumbnail 1 >"$WORK/classes.jsonl"
for class in baseline progressive other; do
  "$PY" -c "
import json,sys
for l in open('$WORK/classes.jsonl'):
    d=json.loads(l)
    if d.get('class')=='$class': print('$DIR/'+d['file'])
" >"$WORK/$class.list"
done

echo "userphoto vs vipsthumbnail on $(wc -l <"$WORK/classes.jsonl" | awk '{print $1-1}') files from $DIR"
echo "codec: $("$PY" -c "import json;print(json.loads(open('$WORK/classes.jsonl').readlines()[-1])['codec'])"); one thread pinned to core $CORE; $RUNS runs per file"
echo "vips: $(vipsthumbnail --vips-version 2>/dev/null | head -1)"
echo

for spec in ad-thumbnail:96 ad-large:648 graph:648; do
  profile=${spec%%:*}; size=${spec##*:}
  mkdir -p "$WORK/$profile/ours" "$WORK/$profile/vips"
  taskset -c "$CORE" "$BENCH" "$DIR" "$profile" "$RUNS" "$WORK/$profile/ours" >"$WORK/$profile/ours.jsonl"
  for class in baseline progressive other; do
    [ -s "$WORK/$class.list" ] || continue
    # One vipsthumbnail process over all files of the class, like our one process.
    # shellcheck disable=SC2046
    VIPS_CONCURRENCY=1 hyperfine --style none --runs 3 --warmup 1 --export-json "$WORK/$profile/vips-$class.json" \
      "taskset -c $CORE vipsthumbnail -s ${size}x${size} --smartcrop centre -o '$WORK/$profile/vips/%s.jpg[Q=90,strip,optimize_coding]' $(tr '\n' ' ' <"$WORK/$class.list")" >/dev/null
  done
  "$PY" - "$WORK/$profile" "$profile" <<'PYEOF'
import json, sys, os
d, profile = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(os.path.join(d, 'ours.jsonl'))]
files = [r for r in rows if 'file' in r]
print(f"== {profile}")
print(f"{'class':12} {'files':>5} {'ours s':>8} {'vips s':>8} {'x vips':>7} {'floor s':>8} {'/floor':>7} {'med ms':>7} {'encodes':>7} {'bytes med':>9}")
for cls in ['baseline', 'progressive', 'other']:
    fs = [r for r in files if r['class'] == cls]
    if not fs: continue
    ours = sum(r['ms'] for r in fs) / 1000
    vj = os.path.join(d, f'vips-{cls}.json')
    vips = json.load(open(vj))['results'][0]['median'] if os.path.exists(vj) else float('nan')
    floor = sum(r['floor_ms'] or 0 for r in fs) / 1000
    med = sorted(r['ms'] for r in fs)[len(fs)//2]
    enc = sum(r['encodes'] for r in fs) / len(fs)
    b = sorted(r['bytes'] for r in fs)[len(fs)//2]
    fl = f"{floor:8.3f} {ours/floor:7.2f}" if floor > 0 else f"{'-':>8} {'-':>7}"
    print(f"{cls:12} {len(fs):5d} {ours:8.3f} {vips:8.3f} {vips/ours:7.2f} {fl} {med:7.1f} {enc:7.2f} {b:9d}")
jp = [r for r in files if r['class'] != 'other']
if jp:
    ours = sum(r['ms'] for r in jp) / 1000
    vips = sum(json.load(open(os.path.join(d, f'vips-{c}.json')))['results'][0]['median'] for c in ['baseline', 'progressive'] if os.path.exists(os.path.join(d, f'vips-{c}.json')))
    floor = sum(r['floor_ms'] for r in jp) / 1000
    print(f"{'all JPEG':12} {len(jp):5d} {ours:8.3f} {vips:8.3f} {vips/ours:7.2f} {floor:8.3f} {ours/floor:7.2f}")
print("(x vips: vipsthumbnail time / ours, higher is better; /floor: ours / libjpeg-turbo 1/8 decode of every scan, lower is better)")
print()
PYEOF
done

# --- byte-budget search overhead ---------------------------------------------------------
# ad-large and graph share the decode and resize (648 px); graph's budget never binds, so it
# encodes once. The difference is the cost of the search.
"$PY" -c "
import json
def tot(p): return sum(json.loads(l).get('ms', 0) for l in open('$WORK/'+p+'/ours.jsonl'))
def enc(p):
    r=[json.loads(l) for l in open('$WORK/'+p+'/ours.jsonl')]; r=[x for x in r if 'encodes' in x]; return sum(x['encodes'] for x in r)/len(r)
a, g = tot('ad-large'), tot('graph')
print(f'== ad-large budget search: {enc(\"ad-large\"):.2f} encodes per file on average; {(a-g)/1000:.3f} s over graph\'s single encode = {(a-g)/g:.2f}x of the rest of the pipeline')
"

# --- two threads -----------------------------------------------------------------------
LIST=$(cat "$WORK/baseline.list" "$WORK/progressive.list" | tr '\n' ' ')
# shellcheck disable=SC2086
hyperfine --style none --runs 3 --warmup 1 --export-json "$WORK/threads.json" \
  "$CLI normalize --profile ad-thumbnail --threads 1 --out $WORK/t1 $LIST $LIST $LIST $LIST" \
  "$CLI normalize --profile ad-thumbnail --threads 2 --out $WORK/t2 $LIST $LIST $LIST $LIST" >/dev/null
"$PY" -c "
import json
r=json.load(open('$WORK/threads.json'))['results']
print(f'== threads (ad-thumbnail, all JPEGs four times): 1 thread {r[0][\"median\"]:.3f} s, 2 threads {r[1][\"median\"]:.3f} s, speed-up {r[0][\"median\"]/r[1][\"median\"]:.2f}x on $(nproc) cores')
"

# --- peak memory -----------------------------------------------------------------------
# The JPEG with the most pixels (the 24 MP case).
BIG=$("$PY" -c "
import glob
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
print(max(glob.glob('$DIR/*.jpg'), key=lambda f: Image.open(f).size[0] * Image.open(f).size[1]))
")
for profile in ad-thumbnail graph; do
  size=96; [ $profile = graph ] && size=648
  ours=$( { /usr/bin/time -f %M "$CLI" normalize --profile $profile --threads 1 --out "$WORK/mem" "$BIG" >/dev/null; } 2>&1 | tail -1)
  vips=$( { /usr/bin/time -f %M env VIPS_CONCURRENCY=1 vipsthumbnail -s ${size}x${size} --smartcrop centre -o "$WORK/mem-vips.jpg[Q=90,strip]" "$BIG"; } 2>&1 | tail -1)
  echo "== peak RSS, $profile, $(basename "$BIG") ($(stat -c %s "$BIG") bytes): ours $((ours / 1024)) MB, vipsthumbnail $((vips / 1024)) MB"
done
echo

# --- per file (PER_FILE=1) ---------------------------------------------------------------
# For every JPEG: graph time against vipsthumbnail (ours in-process from bench_folder above;
# vips one process per file, minus its start-up measured on a 16x16 JPEG), peak RSS of the
# CLI for graph and ad-thumbnail, and whether the crate's progressive decoder took the file
# (its debug event "progressive JPEG left to libjpeg" counts the fallbacks, with reasons).
if [ "${PER_FILE:-0}" = 1 ]; then
  "$PY" -c "from PIL import Image; Image.new('RGB', (16, 16)).save('$WORK/tiny.jpg')"
  VIPS_CONCURRENCY=1 hyperfine --style none --runs 5 --warmup 1 --export-json "$WORK/vips-start.json" \
    "taskset -c $CORE vipsthumbnail -s 8x8 -o '$WORK/tiny-out.jpg' '$WORK/tiny.jpg'" >/dev/null
  start=$("$PY" -c "import json;print(json.load(open('$WORK/vips-start.json'))['results'][0]['median'])")
  echo "== per file (graph x vips: vipsthumbnail per-file time minus its start-up ${start}s / ours in-process; peak RSS of the CLI, one thread)"
  printf '%-44s %9s %8s %8s %8s %9s %s\n' file ours_ms vips_ms "x vips" graph_MB ad_thumb_MB "decoder"
  fallbacks=0
  while read -r f <&3; do
    name=$(basename "$f")
    ours=$("$PY" -c "
import json
for l in open('$WORK/graph/ours.jsonl'):
    d = json.loads(l)
    if d.get('file') == '$name': print(d['ms'])")
    VIPS_CONCURRENCY=1 hyperfine --style none --runs 3 --warmup 1 --export-json "$WORK/v1.json" \
      "taskset -c $CORE vipsthumbnail -s 648x648 --smartcrop centre -o '$WORK/v1.jpg[Q=90,strip,optimize_coding]' '$f'" >/dev/null
    vips=$("$PY" -c "import json;print(max(0.0, json.load(open('$WORK/v1.json'))['results'][0]['median'] - $start) * 1000)")
    rss=()
    for profile in graph ad-thumbnail; do
      RUST_LOG=userphoto::normalize=debug /usr/bin/time -o "$WORK/rss" -f %M taskset -c "$CORE" \
        "$CLI" normalize --profile $profile --threads 1 --out "$WORK/pf" "$f" >/dev/null 2>"$WORK/pf-$profile.log"
      rss+=("$(( $(tail -1 "$WORK/rss") / 1024 ))")
    done
    why=$(grep -ho 'reason="[^"]*"' "$WORK/pf-graph.log" "$WORK/pf-ad-thumbnail.log" | head -1 | sed 's/^reason=//' || true)
    if [ -n "$why" ]; then fallbacks=$((fallbacks + 1)); dec="libjpeg ($why)"; else dec=native; fi
    printf '%-44s %9.1f %8.1f %8.2f %8s %9s %s\n' "$name" "$ours" "$vips" "$("$PY" -c "print($vips / $ours)")" "${rss[0]}" "${rss[1]}" "$dec"
  done 3< <(cat "$WORK/baseline.list" "$WORK/progressive.list")
  echo "files left to libjpeg by the progressive decoder: $fallbacks"
  echo
fi

# --- quality at equal bytes --------------------------------------------------------------
# For every file: our ad-thumbnail rendition has B bytes; vipsthumbnail gets the highest Q
# whose output is at most B bytes; both are compared by SSIM with a reference made by a
# full-resolution decode, EXIF transpose, centre crop and Lanczos (Pillow).
mkdir -p "$WORK/ssim"
"$PY" - "$DIR" "$WORK/ad-thumbnail/ours" "$WORK/ssim" <<'PYEOF'
import json, os, subprocess, sys
import numpy as np
from PIL import Image, ImageOps
from skimage.metrics import structural_similarity as ssim
src, ours_dir, work = sys.argv[1:4]
def ref(path, size=96):
    im = ImageOps.exif_transpose(Image.open(path)).convert('RGB')
    w, h = im.size; s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return np.asarray(im.resize((size, size), Image.LANCZOS))
def vips(path, q, out):
    subprocess.run(['vipsthumbnail', '-s', '96x96', '--smartcrop', 'centre', '-o', f'{out}[Q={q},strip,optimize_coding]', path], check=True, env={**os.environ, 'VIPS_CONCURRENCY': '1'})
    return os.path.getsize(out)
rows = []
for name in sorted(os.listdir(ours_dir)):
    stem = name[:-4]
    cand = [f for f in os.listdir(src) if f.rsplit('.', 1)[0] == stem]
    if not cand or not cand[0].lower().endswith('.jpg'): continue
    path = os.path.join(src, cand[0])
    ours = os.path.join(ours_dir, name)
    budget = os.path.getsize(ours)
    out = os.path.join(work, name)
    lo, hi, best = 1, 100, None
    while lo <= hi:
        q = (lo + hi) // 2
        if vips(path, q, out) <= budget: best, lo = q, q + 1
        else: hi = q - 1
    if best is None: continue
    vips(path, best, out)
    r = ref(path)
    a = ssim(r, np.asarray(Image.open(ours).convert('RGB')), channel_axis=2, data_range=255)
    b = ssim(r, np.asarray(Image.open(out).convert('RGB')), channel_axis=2, data_range=255)
    rows.append((cand[0], budget, os.path.getsize(out), a, b))
if rows:
    ma = sum(r[3] for r in rows) / len(rows); mb = sum(r[4] for r in rows) / len(rows)
    wins = sum(r[3] >= r[4] for r in rows)
    print(f"== SSIM at equal bytes (ad-thumbnail, {len(rows)} JPEGs): ours {ma:.4f}, vipsthumbnail {mb:.4f} (ours >= vips on {wins} of {len(rows)} files)")
    print(f"   mean bytes: ours {sum(r[1] for r in rows)/len(rows):.0f}, vips {sum(r[2] for r in rows)/len(rows):.0f}")
PYEOF
