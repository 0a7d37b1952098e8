#!/usr/bin/env python3
"""The oracle for the crate's face detector: runs the YuNet ONNX model with onnxruntime.

    yunet_ort.py MODEL.onnx INPUT.f32 HEIGHT WIDTH OUTPUT.f32

INPUT.f32 is a BGR image, channels last (HEIGHT x WIDTH x 3 little-endian f32, 0..255); OUTPUT.f32
gets the nine maps cls_8, cls_16, cls_32, obj_8, obj_16, obj_32, bbox_8, bbox_16, bbox_32
one after another, each as onnxruntime returns it (cls and obj after the sigmoid; all in
(cell, channel) order). Used by tests/face_oracle.rs.
"""
import sys

import numpy as np
import onnxruntime as ort

model, src, h, w, dst = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
x = np.fromfile(src, dtype="<f4").reshape(1, h, w, 3).transpose(0, 3, 1, 2).copy()
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
names = [f"{k}_{s}" for k in ("cls", "obj", "bbox") for s in (8, 16, 32)]
outs = sess.run(names, {"input": x})
with open(dst, "wb") as f:
    for o in outs:
        f.write(np.asarray(o, dtype="<f4").reshape(-1).tobytes())
