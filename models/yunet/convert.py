#!/usr/bin/env python3
"""Turns the YuNet ONNX model into the compact weight file the crate ships.

    python3 models/yunet/convert.py models/yunet/yunet_n_dynamic.onnx src/normalize/face/yunet_n.bin

Needs the `onnx` and `numpy` packages (`pip install onnx numpy`). The output is read by
`src/normalize/face/net.rs`; the format (all little-endian):

    b"UPYUNET1"  u32 op count  u32 slot count  u16 x 9 output slots
                 (cls at strides 8, 16, 32; obj at 8, 16, 32; bbox at 8, 16, 32)
    then per op, a u8 code:
      1 conv     u8 kernel (1 or 3)  u8 stride (1 or 2)  u8 relu  u8 depthwise
                 u16 in  u16 out  u16 cin  u16 cout
                 f32 weights (cout*cin*k*k, or cout*9 when depthwise), f32 bias (cout)
      2 maxpool  u16 in  u16 out                        (2x2, stride 2)
      3 upadd    u16 small  u16 skip  u16 out            (out = skip + nearest 2x upsample)

Slot 0 is the input (3 channels, BGR, 0..255, height and width multiples of 32). The
landmark branch (`kps_*`) is not needed to place a crop and is dropped; the Sigmoid, Reshape
and Transpose nodes at the outputs are left to the Rust side (it reads NCHW maps and applies
the sigmoid itself). Everything else is checked to be one of the ops above, so a different
model fails here instead of giving wrong numbers.
"""
import struct
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def main(src, dst):
    m = onnx.load(src)
    g = m.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    # The conv map under each output: output <- Sigmoid/Reshape/Transpose chain <- Conv.
    def head_source(name):
        n = producers[name]
        while n.op_type in ("Sigmoid", "Reshape", "Transpose"):
            n = producers[n.input[0]]
        assert n.op_type == "Conv", (name, n.op_type)
        return n.output[0]

    outputs = [f"{k}_{s}" for k in ("cls", "obj", "bbox") for s in (8, 16, 32)]
    out_tensors = [head_source(o) for o in outputs]

    # Keep only the nodes the nine outputs need.
    needed, stack = set(), list(out_tensors)
    while stack:
        t = stack.pop()
        if t in needed or t not in producers:
            continue
        needed.add(t)
        stack.extend(i for i in producers[t].input if i not in inits)
    nodes = [n for n in g.node if n.output[0] in needed]

    slots = {"input": 0}

    def slot(name):
        if name not in slots:
            slots[name] = len(slots)
        return slots[name]

    ops = []
    skip = set()
    for idx, n in enumerate(nodes):
        if idx in skip:
            continue
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        if n.op_type == "Conv":
            w = inits[n.input[1]].astype(np.float32)
            b = inits[n.input[2]].astype(np.float32) if len(n.input) > 2 else np.zeros(w.shape[0], np.float32)
            cout, cin_g, kh, kw = w.shape
            group = a.get("group", 1)
            assert kh == kw and kh in (1, 3), n.name
            assert a.get("dilations", [1, 1]) == [1, 1]
            stride = a["strides"][0]
            assert a["strides"] == [stride, stride] and stride in (1, 2)
            pad = a["pads"]
            assert pad == [kh // 2] * 4, pad
            depthwise = group > 1 or (kh == 3 and cin_g == 1 and cout == 1)
            if depthwise:
                assert cin_g == 1 and group == cout and kh == 3 and stride == 1, n.name
                cin = cout
            else:
                assert group == 1, n.name
                cin = cin_g
            out = n.output[0]
            relu = False
            cons = consumers.get(out, [])
            if len(cons) == 1 and cons[0].op_type == "Relu" and out not in out_tensors:
                relu = True
                j = nodes.index(cons[0])
                skip.add(j)
                out = cons[0].output[0]
            ops.append(("conv", kh, stride, relu, depthwise, slot(n.input[0]), slot(out), cin, cout, w, b))
        elif n.op_type == "MaxPool":
            assert a["kernel_shape"] == [2, 2] and a["strides"] == [2, 2] and a.get("pads", [0] * 4) == [0] * 4
            ops.append(("maxpool", slot(n.input[0]), slot(n.output[0])))
        elif n.op_type == "Resize":
            assert a["mode"] == b"nearest" and a["coordinate_transformation_mode"] == b"asymmetric"
            assert a["nearest_mode"] == b"floor"
            scales = inits[n.input[2]]
            assert list(scales) == [1, 1, 2, 2], scales
            (add,) = consumers[n.output[0]]
            assert add.op_type == "Add"
            other = [i for i in add.input if i != n.output[0]][0]
            skip.add(nodes.index(add))
            ops.append(("upadd", slot(n.input[0]), slot(other), slot(add.output[0])))
        else:
            raise SystemExit(f"unexpected op {n.op_type} ({n.name})")

    with open(dst, "wb") as f:
        f.write(b"UPYUNET1")
        f.write(struct.pack("<II", len(ops), len(slots)))
        f.write(struct.pack("<9H", *[slots[t] for t in out_tensors]))
        for op in ops:
            if op[0] == "conv":
                _, k, s, relu, dw, i, o, cin, cout, w, b = op
                f.write(struct.pack("<BBBBBHHHH", 1, k, s, int(relu), int(dw), i, o, cin, cout))
                f.write(w.reshape(-1).astype("<f4").tobytes())
                f.write(b.reshape(-1).astype("<f4").tobytes())
            elif op[0] == "maxpool":
                f.write(struct.pack("<BHH", 2, op[1], op[2]))
            else:
                f.write(struct.pack("<BHHH", 3, op[1], op[2], op[3]))
    print(f"{dst}: {len(ops)} ops, {len(slots)} slots")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
