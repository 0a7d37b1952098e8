"""The reference face detector of the crop benches: OpenCV's Haar cascades, not the crate's
YuNet, so that the score does not grade our detector with itself.

Used by benches/people_photos.sh (where to put the derived windows) and benches/crop_score.sh
(the face each crop is scored against). Needs opencv-python-headless 4.x (the Haar cascades
left the main wheel in 5.0), numpy and Pillow: both scripts make the venv target/crop-venv.

    target/crop-venv/bin/python benches/crop_reference.py FILE...

prints one JSON line per file: the upright size, every merged detection and the main face.

Rules, in UPRIGHT pixels (EXIF orientation applied with Pillow's ImageOps.exif_transpose):
- detections of haarcascade_frontalface_default, haarcascade_frontalface_alt2 and
  haarcascade_profileface on the image and on its mirror (profiles facing the other way), on
  the histogram-equalised grey image scaled to at most MAX_SIDE px on its long side, scale
  factor 1.1, at least MIN_NEIGHBORS neighbours (10: at 3-9 the default cascade fires on
  crowds, shirts and keyboards in these photos), boxes at least 20 px at that scale;
- boxes of different cascades that overlap (IoU >= 0.25, or the centre of the smaller inside
  the larger one at most 4x its area) are one face: its box is the mean of its frontal boxes,
  or its strongest profile box when no frontal cascade fired; its score is the sum of the
  neighbours;
- the main face is the largest face; in a group (several faces at least 80 % of the largest's
  area) the one of those nearest the image centre.
"""

import json
import sys

import cv2
import numpy as np
from PIL import Image, ImageOps

Image.MAX_IMAGE_PIXELS = None
MAX_SIDE = 1600
MIN_NEIGHBORS = 10
CASCADES = ("frontalface_default", "frontalface_alt2", "profileface")
_loaded = {}


def _cascade(name):
    if name not in _loaded:
        c = cv2.CascadeClassifier(cv2.data.haarcascades + f"haarcascade_{name}.xml")
        if c.empty():
            raise RuntimeError(f"cannot load haarcascade_{name}.xml from {cv2.data.haarcascades}")
        _loaded[name] = c
    return _loaded[name]


def load_upright(path):
    """The image as displayed: EXIF orientation applied, RGB."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def iou(a, b):
    ax, ay, aw, ah = a[:4]
    bx, by, bw, bh = b[:4]
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _same_face(a, b):
    if iou(a, b) >= 0.25:
        return True
    small, big = (a, b) if a[2] * a[3] <= b[2] * b[3] else (b, a)
    cx, cy = small[0] + small[2] / 2, small[1] + small[3] / 2
    inside = big[0] <= cx <= big[0] + big[2] and big[1] <= cy <= big[1] + big[3]
    return inside and big[2] * big[3] <= 4 * small[2] * small[3]


def detect(img):
    """Faces of an upright PIL image: a list of {x, y, width, height, score, cascades}."""
    w, h = img.size
    scale = min(1.0, MAX_SIDE / max(w, h))
    g = img.convert("L")
    if scale < 1.0:
        g = g.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    g = cv2.equalizeHist(np.asarray(g))
    gw = g.shape[1]
    raw = []  # (x, y, w, h, neighbours, cascade) in source pixels
    for name in CASCADES:
        for mirror in ((False, True) if name == "profileface" else (False,)):
            gg = cv2.flip(g, 1) if mirror else g
            boxes, neighbours = _cascade(name).detectMultiScale2(
                gg, scaleFactor=1.1, minNeighbors=MIN_NEIGHBORS, minSize=(20, 20))
            for (x, y, bw, bh), n in zip(boxes, neighbours):
                if mirror:
                    x = gw - x - bw
                raw.append((x / scale, y / scale, bw / scale, bh / scale, int(n),
                            name + ("_mirrored" if mirror else "")))
    # Merge overlapping boxes (greedy, strongest first).
    raw.sort(key=lambda r: -r[4])
    groups = []
    for r in raw:
        for g_ in groups:
            if any(_same_face(r, m) for m in g_):
                g_.append(r)
                break
        else:
            groups.append([r])
    faces = []
    for g_ in groups:
        frontal = [m for m in g_ if m[5].startswith("frontal")]
        src = frontal if frontal else [max(g_, key=lambda m: m[4])]
        box = [sum(m[i] for m in src) / len(src) for i in range(4)]
        faces.append({"x": round(box[0]), "y": round(box[1]), "width": round(box[2]),
                      "height": round(box[3]), "score": sum(m[4] for m in g_),
                      "cascades": sorted({m[5] for m in g_})})
    faces.sort(key=lambda f: -f["width"] * f["height"])
    return faces


def main_face(faces, width, height):
    """The largest face; among faces >= 80 % of its area, the one nearest the image centre."""
    if not faces:
        return None
    area = lambda f: f["width"] * f["height"]
    big = max(area(f) for f in faces)
    near = [f for f in faces if area(f) >= 0.8 * big]
    return min(near, key=lambda f: (f["x"] + f["width"] / 2 - width / 2) ** 2
               + (f["y"] + f["height"] / 2 - height / 2) ** 2)


def reference(path):
    img = load_upright(path)
    faces = detect(img)
    return {"file": path, "width": img.size[0], "height": img.size[1], "faces": faces,
            "main": main_face(faces, *img.size)}


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(json.dumps(reference(p)))
