#!/usr/bin/env bash
# Scores the framing of userphoto's crop strategies (centre, attention, face) on photos of
# people against a reference face detector that is not ours (OpenCV's Haar cascades, see
# benches/crop_reference.py), and vipsthumbnail --smartcrop attention beside them.
#
#   benches/crop_score.sh [PHOTO_DIR]
#
# PHOTO_DIR defaults to target/people-photos (made by benches/people_photos.sh when missing).
# USERPHOTO_BIN replaces the CLI built by scripts/cargo-exe.sh (benches/testdouble_userphoto.py
# is a test double of it); BENCH_VIPS=0 skips vipsthumbnail. Installs python3-venv and
# libvips-tools (apt) and the venv target/crop-venv (opencv-python-headless 4.x, numpy,
# Pillow) when missing.
#
# For every photo: the reference's main face on the UPRIGHT image (EXIF orientation applied):
# the largest detection, in a group the one nearest the centre among those >= 80 % of the
# largest's area. Photos where it finds none are listed apart and left out of the score. Each
# strategy runs `userphoto normalize --profile ad-thumbnail --crop S` over all photos in one
# process; its JSON line's "crop" (upright source pixels) is the square. Well framed means all
# of, with s the square's side:
#   I  at least 95 % of the reference face box inside the square;
#   H  face centre within 0.10 s of the square's horizontal centre;
#   V  face centre between 0.25 s and 0.55 s from the square's top;
#   S  face height between 0.25 s and 0.60 s.
# vipsthumbnail's square is recovered by sliding its 96 px output along the long side of the
# photo shrunk to 96 px on its short side (vips keeps the whole short side) and taking the
# best match. Also prints how often our `face` strategy and the reference find faces, and the
# IoU of our main face (same rule) with the reference's. Writes a contact sheet of the
# squares to target/crop-score-sheet.jpg. Every figure is measured in this run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ] && [ ! -f target/people-photos/MANIFEST.tsv ]; then
  benches/people_photos.sh target/people-photos >/dev/null
fi
DIR=$(realpath "${1:-target/people-photos}")
VENV=target/crop-venv
WORK=$(mktemp -d "${TMPDIR:-/tmp}/userphoto-crop-score.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

need=()
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
[ "${BENCH_VIPS:-1}" = 0 ] || command -v vipsthumbnail >/dev/null || need+=(libvips-tools)
# shellcheck source=benches/crop_env.sh
. benches/crop_env.sh

CLI=${USERPHOTO_BIN:-$(scripts/cargo-exe.sh userphoto -p userphoto-cli)}
if ! "$CLI" normalize --help 2>/dev/null | grep -q -- '--crop'; then
  echo "crop_score.sh: $CLI normalize has no --crop option (the face-aware crop has not landed in this tree)" >&2
  exit 1
fi

mapfile -t FILES < <(find "$DIR" -maxdepth 1 -type f -regextype posix-extended \
  -iregex '.*\.(jpe?g|png|webp|gif|tiff?|bmp)' | sort)
[ ${#FILES[@]} -gt 0 ] || { echo "crop_score.sh: no photos in $DIR" >&2; exit 1; }

echo "crop framing score on ${#FILES[@]} photos from $DIR"
echo "machine: $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "userphoto: $CLI ($("$CLI" --version 2>/dev/null || echo 'no --version'))$(git rev-parse --short HEAD 2>/dev/null | sed 's/^/, tree at /')"
echo "reference: OpenCV $("$PY" -c 'import cv2; print(cv2.__version__)') Haar cascades (frontalface_default, frontalface_alt2, profileface both ways)"

for s in centre attention face; do
  # Exit 1 means some file failed: the JSON lines say which, and the score counts it.
  "$CLI" normalize --profile ad-thumbnail --crop "$s" --out "$WORK/$s" "${FILES[@]}" >"$WORK/$s.jsonl" || [ $? -eq 1 ]
done
VIPS=0
if [ "${BENCH_VIPS:-1}" != 0 ]; then
  echo "vips: $(vipsthumbnail --vips-version 2>/dev/null | head -1)"
  mkdir -p "$WORK/vips"
  # PNG output: no JPEG loss in the match. %s is the file's stem (unique in these folders).
  VIPS_CONCURRENCY=1 vipsthumbnail -s 96x96 --smartcrop attention -o "$WORK/vips/%s.png" "${FILES[@]}" 2>"$WORK/vips.err" || true
  VIPS=1
fi
echo

"$PY" - "$WORK" "$VIPS" "${FILES[@]}" <<'PYEOF'
import json, os, statistics, sys
sys.path.insert(0, "benches")
import numpy as np
from PIL import Image, ImageDraw
import crop_reference as ref

work, use_vips, files = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
STRATS = ["centre", "attention", "face"] + (["vips"] if use_vips else [])

def read(s):
    rows = {}
    for line in open(os.path.join(work, s + ".jsonl")):
        line = line.strip()
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        if d.get("profile", "ad-thumbnail") == "ad-thumbnail":
            rows[os.path.realpath(d["input"])] = d
    return rows
ours = {s: read(s) for s in ["centre", "attention", "face"]}

def vips_square(img, path):
    """vipsthumbnail's square in upright source pixels, and the mean absolute difference of
    the match (0-255), or None when it wrote nothing."""
    out = os.path.join(work, "vips", os.path.splitext(os.path.basename(path))[0] + ".png")
    if not os.path.exists(out):
        return None
    t = np.asarray(Image.open(out).convert("L"), dtype=np.float32)
    W, H = img.size
    short, longside = min(W, H), max(W, H)
    g = img.convert("L")
    best = None
    base = longside * 96 / short
    for L in {int(base) - 1, int(base), round(base), int(base) + 1}:
        if L < 96:
            continue
        small = np.asarray(g.resize((L, 96) if W >= H else (96, L), Image.BILINEAR), dtype=np.float32)
        for off in range(0, L - 96 + 1):
            c = small[:, off:off + 96] if W >= H else small[off:off + 96, :]
            if c.shape != t.shape:
                continue
            d = float(np.abs(c - t).mean())
            if best is None or d < best[0]:
                best = (d, off, L)
    if best is None:
        return None
    d, off, L = best
    pos = round(off * longside / L)
    sq = {"x": pos, "y": 0, "width": short, "height": short} if W >= H else {"x": 0, "y": pos, "width": short, "height": short}
    return sq, d

def criteria(face, sq):
    fx, fy, fw, fh = face["x"], face["y"], face["width"], face["height"]
    sx, sy, sw, sh = sq["x"], sq["y"], sq["width"], sq["height"]
    iw = max(0, min(fx + fw, sx + sw) - max(fx, sx))
    ih = max(0, min(fy + fh, sy + sh) - max(fy, sy))
    cx, cy = fx + fw / 2, fy + fh / 2
    return {"I": iw * ih >= 0.95 * fw * fh,
            "H": abs(cx - (sx + sw / 2)) <= 0.10 * sw,
            "V": 0.25 * sh <= cy - sy <= 0.55 * sh,
            "S": 0.25 * sh <= fh <= 0.60 * sh}

photos = []
for path in files:
    img = ref.load_upright(path)
    faces = ref.detect(img)
    p = {"path": path, "name": os.path.basename(path), "size": img.size, "faces": faces,
         "main": ref.main_face(faces, *img.size), "sq": {}, "res": {}, "img": img}
    for s in ["centre", "attention", "face"]:
        d = ours[s].get(os.path.realpath(path))
        if d is None or not d.get("ok") or "crop" not in d:
            p["sq"][s] = None
            p["err_" + s] = (d or {}).get("error_kind", "missing")
        else:
            p["sq"][s] = d["crop"]
            p["json_" + s] = d
    if use_vips:
        v = vips_square(img, path)
        p["sq"]["vips"] = v[0] if v else None
        p["vips_diff"] = v[1] if v else None
    if p["main"]:
        for s in STRATS:
            p["res"][s] = criteria(p["main"], p["sq"][s]) if p["sq"][s] else None
    photos.append(p)

scored = [p for p in photos if p["main"]]
noref = [p for p in photos if not p["main"]]
M = len(scored)
print(f"== well framed (ad-thumbnail crop square vs the reference main face), {M} photos with a reference face of {len(photos)}")
print("   I: >= 95 % of the face box inside; H: face centre within 10 % of the side from the middle;")
print("   V: face centre 25-55 % of the side from the top; S: face height 25-60 % of the side")
print(f"{'strategy':10} {'well framed':>11} {'%':>6}   {'fail I':>6} {'fail H':>6} {'fail V':>6} {'fail S':>6} {'no crop':>7}")
for s in STRATS:
    ok = sum(1 for p in scored if p["res"][s] and all(p["res"][s].values()))
    fails = {k: sum(1 for p in scored if p["res"][s] and not p["res"][s][k]) for k in "IHVS"}
    missing = sum(1 for p in scored if p["res"][s] is None)
    label = "vips-attn" if s == "vips" else s
    pct = 100 * ok / M if M else float("nan")
    print(f"{label:10} {ok:>5d}/{M:<5d} {pct:6.1f}   {fails['I']:6d} {fails['H']:6d} {fails['V']:6d} {fails['S']:6d} {missing:7d}")
print("(a photo can fail several criteria; 'no crop': the run gave no square for it)")
print()

def cell(p, s):
    if not p["main"]:
        return "-"
    r = p["res"][s]
    if r is None:
        return "err:" + p.get("err_" + s, "none")
    bad = "".join(k for k in "IHVS" if not r[k])
    c = "ok" if not bad else "x" + bad
    if s == "face" and p.get("json_face", {}).get("strategy", "face") != "face":
        c += "(" + p["json_face"]["strategy"][:4] + ")"
    return c

w = max(len(p["name"]) for p in photos)
print("== per photo (ok = well framed, xIHVS = the criteria it fails; face(atte): our face run fell back to attention)")
hdr = f"{'photo':{w}} {'size':>9} {'ref main face x,y,w,h':>22} {'refN':>4} {'ourN':>4} {'IoU':>5}"
for s in STRATS:
    hdr += f" {('vips-attn' if s == 'vips' else s):>11}"
print(hdr)
ious = []
both = ref_only = ours_only = neither = 0
for p in photos:
    jf = p.get("json_face")
    our_faces = (jf or {}).get("faces") or []
    W, H = p["size"]
    our_main = ref.main_face(our_faces, W, H) if our_faces else None
    iou = None
    if p["main"] and our_main:
        both += 1
        iou = ref.iou(tuple(p["main"][k] for k in ("x", "y", "width", "height")),
                      tuple(our_main[k] for k in ("x", "y", "width", "height")))
        ious.append(iou)
    elif p["main"]:
        ref_only += 1
    elif our_main:
        ours_only += 1
    else:
        neither += 1
    m = p["main"]
    box = f"{m['x']},{m['y']},{m['width']},{m['height']}" if m else "none"
    line = f"{p['name']:{w}} {W:>4}x{H:<4} {box:>22} {len(p['faces']):>4} {len(our_faces) if jf else '-':>4} {('%.2f' % iou) if iou is not None else '-':>5}"
    for s in STRATS:
        line += f" {cell(p, s):>11}"
    print(line)
print()
if noref:
    print(f"== no reference face ({len(noref)}, left out of the score): " + ", ".join(p["name"] for p in noref))
print(f"== faces found: reference {sum(1 for p in photos if p['main'])} of {len(photos)} photos, "
      f"ours (--crop face) {sum(1 for p in photos if (p.get('json_face') or {}).get('faces'))} of {len(photos)}; "
      f"both {both}, reference only {ref_only}, ours only {ours_only}, neither {neither}")
if ious:
    print(f"   our main face vs the reference's (IoU, {len(ious)} photos): median {statistics.median(ious):.2f}, "
          f"mean {statistics.mean(ious):.2f}, >= 0.5 on {sum(i >= 0.5 for i in ious)}, >= 0.3 on {sum(i >= 0.3 for i in ious)}, "
          f"< 0.1 (another face) on {sum(i < 0.1 for i in ious)}")
    print("   (box conventions differ: Haar boxes are square and brow-to-mouth, so a right face gives IoU ~0.5-0.8)")
warn = {}
for p in photos:
    for x in (p.get("json_face") or {}).get("warnings") or []:
        warn[x] = warn.get(x, 0) + 1
if warn:
    print("   warnings of the face run: " + ", ".join(f"{k} {v}" for k, v in sorted(warn.items())))
fallback = sum(1 for p in photos if (p.get("json_face") or {}).get("strategy", "face") != "face")
print(f"   face run used another strategy (its JSON \"strategy\") on {fallback} photos")
if use_vips:
    diffs = [p["vips_diff"] for p in photos if p.get("vips_diff") is not None]
    if diffs:
        print(f"   vipsthumbnail squares recovered for {len(diffs)} of {len(photos)} photos (match: mean abs difference {statistics.mean(diffs):.1f}, worst {max(diffs):.1f} of 255)")
# bounds check of our squares
bad = [(p["name"], s) for p in photos for s in ["centre", "attention", "face"] if p["sq"][s] and (
    p["sq"][s]["x"] < 0 or p["sq"][s]["y"] < 0 or p["sq"][s]["x"] + p["sq"][s]["width"] > p["size"][0] + 1
    or p["sq"][s]["y"] + p["sq"][s]["height"] > p["size"][1] + 1 or abs(p["sq"][s]["width"] - p["sq"][s]["height"]) > 1)]
if bad:
    print(f"!! crops outside the upright image or not square: {bad}")

# Contact sheet: reference face green, centre grey, attention blue, face red, vips yellow.
T, cols = 200, 6
colours = {"centre": (160, 160, 160), "attention": (40, 90, 255), "face": (255, 40, 40), "vips": (255, 220, 0)}
rows = (len(photos) + cols - 1) // cols
sheet = Image.new("RGB", (cols * T, rows * (T + 14)), "white")
d = ImageDraw.Draw(sheet)
for i, p in enumerate(photos):
    W, H = p["size"]
    k = T / max(W, H)
    th = p["img"].resize((max(1, round(W * k)), max(1, round(H * k))))
    ox, oy = (i % cols) * T, (i // cols) * (T + 14)
    sheet.paste(th, (ox, oy))
    for s in STRATS:
        q = p["sq"].get(s)
        if q:
            d.rectangle((ox + q["x"] * k, oy + q["y"] * k, ox + (q["x"] + q["width"]) * k, oy + (q["y"] + q["height"]) * k), outline=colours[s], width=2)
    if p["main"]:
        m = p["main"]
        d.rectangle((ox + m["x"] * k, oy + m["y"] * k, ox + (m["x"] + m["width"]) * k, oy + (m["y"] + m["height"]) * k), outline=(0, 200, 0), width=2)
    d.text((ox + 2, oy + T), p["name"][:32], fill="black")
sheet.save("target/crop-score-sheet.jpg", quality=85)
print("   contact sheet: target/crop-score-sheet.jpg (reference face green; squares: centre grey, attention blue, face red, vips yellow)")
PYEOF
