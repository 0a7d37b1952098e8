#!/bin/sh
"exec" "${0%/*}/../target/crop-venv/bin/python" "$0" "$@"
# TEST DOUBLE, not userphoto: lets benches/crop_score.sh and benches/crop_speed.sh run end
# to end before the crate has --crop. It runs under target/crop-venv (made by those scripts:
# opencv-python-headless 4.x, numpy, Pillow). Its figures say nothing about userphoto.
#
#   USERPHOTO_BIN=benches/testdouble_userphoto.py USERPHOTO_BENCH_BIN=benches/testdouble_userphoto.py \
#     benches/crop_score.sh        (and benches/crop_speed.sh)
#
# Two modes, as the two programs the benches call:
#   testdouble_userphoto.py normalize --profile P --crop face|attention|centre [--threads N]
#       --out DIR FILE...   -> one JSON line per file, in the CLI's format (crop and faces in
#       upright source pixels), DIR/<stem>.jpg written
#   testdouble_userphoto.py DIR PROFILE [RUNS] [OUT_DIR]   (as examples/bench_folder, reads
#       BENCH_CROP=face|attention|centre) -> one JSON line per file and a summary line
# Its crops: centre = the largest centred square; attention = the square along the long axis
# with the most gradient energy; face = OpenCV's haarcascade_frontalface_alt (not one of the
# reference's cascades), face centre at 40 % of the side from the top, side 2.5x the face
# height, falling back to attention with warning "no-face".
import hashlib
import io
import json
import os
import sys
import time

import cv2
import numpy as np
from PIL import Image, ImageOps

SIZES = {"ad-thumbnail": 96, "ad-large": 648, "graph": 648}
_cascade = None


def faces_of(img):
    global _cascade
    if _cascade is None:
        _cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_alt.xml")
    g = cv2.equalizeHist(np.asarray(img.convert("L")))
    boxes, levels, weights = _cascade.detectMultiScale3(g, 1.1, 5, minSize=(20, 20), outputRejectLevels=True)
    out = [{"x": int(x), "y": int(y), "width": int(w), "height": int(h),
            "score": round(float(min(1.0, max(0.0, s / 5.0))), 3)} for (x, y, w, h), s in zip(boxes, weights)]
    return sorted(out, key=lambda f: -f["width"] * f["height"])


def attention(img):
    w, h = img.size
    s = min(w, h)
    g = np.asarray(img.convert("L"), dtype=np.float32)
    e = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1, :]
    if w >= h:
        col = np.concatenate([[0.0], np.cumsum(e.sum(axis=0))])
        n = len(col) - 1
        best = max(range(0, max(1, n - s + 2)), key=lambda x: col[min(n, x + s)] - col[min(n, x)])
        return {"x": min(best, w - s), "y": 0, "width": s, "height": s}
    row = np.concatenate([[0.0], np.cumsum(e.sum(axis=1))])
    n = len(row) - 1
    best = max(range(0, max(1, n - s + 2)), key=lambda y: row[min(n, y + s)] - row[min(n, y)])
    return {"x": 0, "y": min(best, h - s), "width": s, "height": s}


def crop_for(img, strategy):
    w, h = img.size
    s = min(w, h)
    if strategy == "centre":
        return "centre", {"x": (w - s) // 2, "y": (h - s) // 2, "width": s, "height": s}, None, []
    if strategy == "attention":
        return "attention", attention(img), None, []
    faces = faces_of(img)
    if not faces:
        return "attention", attention(img), [], ["no-face"]
    f = faces[0]
    side = int(min(s, max(f["height"] * 2.5, 32)))
    cx, cy = f["x"] + f["width"] / 2, f["y"] + f["height"] / 2
    x = int(round(min(max(cx - side / 2, 0), w - side)))
    y = int(round(min(max(cy - 0.4 * side, 0), h - side)))
    return "face", {"x": x, "y": y, "width": side, "height": side}, faces, (["several-faces"] if len(faces) > 1 else [])


def normalize(data, profile, strategy):
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    used, crop, faces, warnings = crop_for(img, strategy)
    size = SIZES[profile]
    out = img.crop((crop["x"], crop["y"], crop["x"] + crop["width"], crop["y"] + crop["height"]))
    out = out.resize((size, size), Image.LANCZOS)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=90)
    return buf.getvalue(), used, crop, faces, warnings


def cli(argv):
    if "--help" in argv or "-h" in argv:
        print("testdouble_userphoto normalize --profile P --crop face|attention|centre [--threads N] --out DIR FILE...")
        return 0
    opts, files, i = {}, [], 1
    while i < len(argv):
        if argv[i] in ("--profile", "--crop", "--threads", "--out"):
            opts[argv[i][2:]] = argv[i + 1]
            i += 2
        else:
            files.append(argv[i])
            i += 1
    os.makedirs(opts["out"], exist_ok=True)
    failed = 0
    for f in files:
        t = time.perf_counter()
        try:
            data = open(f, "rb").read()
            jpeg, used, crop, faces, warnings = normalize(data, opts["profile"], opts.get("crop", "centre"))
        except Exception as e:  # noqa: BLE001 - reported like the CLI does
            failed += 1
            print(json.dumps({"input": f, "ok": False, "profile": opts["profile"], "error_kind": "decode", "error": str(e)}))
            continue
        out = os.path.join(opts["out"], os.path.splitext(os.path.basename(f))[0] + ".jpg")
        open(out, "wb").write(jpeg)
        size = SIZES[opts["profile"]]
        line = {"input": f, "output": out, "ok": True, "profile": opts["profile"], "bytes": len(jpeg),
                "width": size, "height": size, "quality": 90, "sha256": hashlib.sha256(jpeg).hexdigest(),
                "ms": (time.perf_counter() - t) * 1000, "strategy": used, "crop": crop, "warnings": warnings}
        if faces is not None:
            line["faces"] = faces
        print(json.dumps(line))
    return 1 if failed else 0


def bench_folder(argv):
    d, profile = argv[0], argv[1]
    runs = int(argv[2]) if len(argv) > 2 else 5
    out = argv[3] if len(argv) > 3 else None
    strategy = os.environ.get("BENCH_CROP", "centre")
    if out:
        os.makedirs(out, exist_ok=True)
    total = {}
    for name in sorted(os.listdir(d)):
        data = open(os.path.join(d, name), "rb").read()
        try:
            normalize(data, profile, strategy)
        except Exception:  # noqa: BLE001 - not an image
            continue
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            jpeg = normalize(data, profile, strategy)[0]
            times.append((time.perf_counter() - t) * 1000)
        ms = sorted(times)[len(times) // 2]
        cls = "baseline" if data[:2] == b"\xff\xd8" else "other"
        if out:
            open(os.path.join(out, os.path.splitext(name)[0] + ".jpg"), "wb").write(jpeg)
        e = total.setdefault(cls, {"files": 0, "total_ms": 0.0, "floor_total_ms": 0.0})
        e["files"] += 1
        e["total_ms"] += ms
        print(json.dumps({"file": name, "class": cls, "ms": ms, "floor_ms": None, "bytes": len(jpeg),
                          "quality": 90, "encodes": 1}))
    print(json.dumps({"summary": total, "profile": profile, "codec": "testdouble"}))
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(cli(args) if args and args[0] == "normalize" else bench_folder(args))
