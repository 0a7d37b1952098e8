#!/usr/bin/env bash
# Breadth test: the odd files a mature image library keeps in its own test suite.
#
#   scripts/breadth.sh
#
# Takes Pillow's test images (Tests/images of the Pillow sdist from PyPI: PngSuite,
# palette and 16-bit PNGs, TIFF compressions, BMP suite, interlaced GIFs, broken headers,
# ...; downloaded into target/, never committed), then for every file:
#   - Pillow, a mainstream decoder, tries to open and load it;
#   - `userphoto normalize` runs on it in its own process with a 30 s timeout and a 4 GiB
#     address-space limit.
# Fails when any file crashes, hangs or exhausts memory, or when fewer than 90% of the
# files that Pillow opens in the formats userphoto supports normalize.
set -euo pipefail
cd "$(dirname "$0")/.."
PILLOW_VERSION=11.3.0
WORK=target/breadth
mkdir -p "$WORK"
VENV=$WORK/venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "pillow==$PILLOW_VERSION"
fi
if [ ! -d "$WORK/images" ]; then
  [ -f "$WORK/pillow-$PILLOW_VERSION.tar.gz" ] ||
    "$VENV/bin/pip" download -q --no-deps --no-binary :all: "pillow==$PILLOW_VERSION" -d "$WORK"
  tar xzf "$WORK/pillow-$PILLOW_VERSION.tar.gz" -C "$WORK" "pillow-$PILLOW_VERSION/Tests/images"
  mv "$WORK/pillow-$PILLOW_VERSION/Tests/images" "$WORK/images"
  rm -rf "$WORK/pillow-$PILLOW_VERSION"
fi
# The CLI, wherever cargo puts it (CARGO_TARGET_DIR is respected).
# (USERPHOTO_CLI: a CLI already built, e.g. by scripts/test.sh)
CLI=${USERPHOTO_CLI:-$(scripts/cargo-exe.sh userphoto -p userphoto-cli ${CARGO_FEATURES:+--features "$CARGO_FEATURES"})}
"$VENV/bin/python" - "$WORK/images" "$CLI" <<'PYEOF'
import json, os, resource, subprocess, sys, tempfile, warnings
from PIL import Image
warnings.simplefilter("ignore")
# Pillow keeps its own decompression-bomb guard; its process gets a memory cap too.
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
images, cli = sys.argv[1], sys.argv[2]
SUPPORTED = {"JPEG", "MPO", "PNG", "GIF", "BMP", "DIB", "TIFF", "WEBP"}
if os.environ.get("CARGO_FEATURES", "").find("heic") >= 0:
    SUPPORTED.add("HEIF")

def limit():
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

def pillow(path):
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.load()
            return fmt
    except Exception:
        return None

files = sorted(os.path.join(d, f) for d, _, fs in os.walk(images) for f in fs)
out = tempfile.mkdtemp()
crashes, hangs, opened, ok_opened, ok_other, fails = [], [], 0, 0, 0, []
kinds = {}
for path in files:
    fmt = pillow(path)
    try:
        p = subprocess.run([cli, "normalize", "--profile", "ad-thumbnail", "--threads", "1", "--out", out, path],
                           capture_output=True, timeout=30, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        hangs.append(path)
        continue
    if p.returncode not in (0, 1):
        crashes.append((path, p.returncode, p.stderr.decode(errors="replace")[-300:]))
        continue
    line = json.loads(p.stdout.decode().splitlines()[0])
    ok = line["ok"]
    if not ok:
        kinds[line["error_kind"]] = kinds.get(line["error_kind"], 0) + 1
    if fmt in SUPPORTED:
        opened += 1
        ok_opened += ok
        if not ok:
            fails.append((os.path.relpath(path, images), fmt, line["error"]))
    elif ok:
        ok_other += 1
rel = lambda p: os.path.relpath(p, images)
print(f"breadth: {len(files)} files from Pillow's test suite")
print(f"  Pillow opens {opened} of them in formats userphoto supports; userphoto normalizes {ok_opened} ({100*ok_opened/max(opened,1):.1f}%)")
print(f"  of the rest (other formats, or files Pillow refuses), userphoto normalizes {ok_other}")
print(f"  errors by kind: {json.dumps(kinds, sort_keys=True)}")
print(f"  crashes: {len(crashes)}, hangs (> 30 s): {len(hangs)}")
for f in fails:
    print(f"  not normalized: {f[0]} ({f[1]}): {f[2][:140]}")
for c in crashes:
    print(f"  CRASH {rel(c[0])}: exit {c[1]}: {c[2]}")
for h in hangs:
    print(f"  HANG {rel(h)}")
ratio = ok_opened / max(opened, 1)
if crashes or hangs or ratio < 0.90:
    print("breadth: FAILED")
    sys.exit(1)
print("breadth: passed")
PYEOF
