"""RESIZE_NEAREST_NEIGHBOR with a constant size (TFLM resize_nearest_neighbor.cc, reference/resize_nearest_neighbor.h).

TFLM semantics that matter:
- Prepare: 4-D input, size a constant int32 vector of 2 values; the kernel takes the output height/width
  from `size`, batches and depth from the shapes, and copies `depth` bytes per output pixel (no rescaling,
  no quantization check: kwsgen requires equal scale and zero point on both sides).
- Source index per output coordinate (GetNearestNeighbor), all in float32:
  scale = (in-1)/float(out-1) if align_corners and out > 1 else in/float(out);
  v = (i + (half_pixel_centers ? 0.5f : 0.0f)) * scale;
  src = min(align_corners ? (int)roundf(v) : (int)floorf(v), in - 1), then max(src, 0) with half_pixel_centers.
  kwsgen evaluates exactly that with NumPy float32 at compile time (roundf rounds half away from zero, done
  exactly in float64 on the non-negative float32 value) and emits the indices as tables, so the device does
  no float arithmetic and cannot round differently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoint import Rounding
from ..ir import Graph, Operator
from . import OpDef, register
from ._common import const_ints, data_tensor_problems, tensor_in, tensor_out


@dataclass(frozen=True)
class ResizeParams:
    rows: tuple[int, ...]  # source row of each output row
    cols: tuple[int, ...]  # source column of each output column


def nearest_indices(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """TFLM reference_ops::GetNearestNeighbor for every output coordinate, bit for bit (float32 maths)."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    offset = f32(0.5) if half_pixel_centers else f32(0.0)
    v = (np.arange(out_size).astype(np.float32) + offset) * scale  # float32 add, float32 multiply
    assert v.dtype == np.float32
    if align_corners:
        idx = np.floor(v.astype(np.float64) + 0.5)  # roundf of a non-negative float32, exact in float64
    else:
        idx = np.floor(v)
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    if half_pixel_centers:
        idx = np.maximum(idx, 0)
    return idx


def check(op: Operator, graph: Graph) -> list[str]:
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        return [f"expects 2 inputs (input, size) and 1 output, has {len(op.inputs)} and {len(op.outputs)}"]
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    problems = data_tensor_problems(x, y)
    if problems:
        return problems
    if len(x.shape) != 4:
        return [f"input must be 4-D (NHWC), has rank {len(x.shape)}"]
    size_t = tensor_in(op, graph, 1)
    problems, size = const_ints(size_t, "size", 2)
    if problems:
        return problems
    if len(size_t.shape) != 1:
        return [f"size must be a 1-D tensor of 2 values, has shape {list(size_t.shape)}"]
    if min(size) < 1:
        return [f"size {list(size)} must be positive"]
    expect = (x.shape[0], size[0], size[1], x.shape[3])
    if tuple(y.shape) != expect:
        return [f"output shape {list(y.shape)} does not match size {list(size)} ({list(expect)})"]
    return []


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> ResizeParams:
    x = tensor_in(op, graph, 0)
    out_h, out_w = (int(v) for v in np.asarray(tensor_in(op, graph, 1).data).ravel()[:2])
    align, half = bool(op.opt("align_corners", False)), bool(op.opt("half_pixel_centers", False))
    rows = nearest_indices(x.shape[1], out_h, align, half)
    cols = nearest_indices(x.shape[2], out_w, align, half)
    return ResizeParams(tuple(int(r) for r in rows), tuple(int(c) for c in cols))


def reference(op: Operator, graph: Graph, p: ResizeParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    x = xs[0]
    out = x[:, :, list(p.rows)][:, :, :, list(p.cols)]
    return [np.ascontiguousarray(out)]


def emit(ctx) -> "Emitted":
    p = ctx.params
    _, in_h, in_w, depth = ctx.input_tensor(0).shape
    dims = dict(batches=ctx.input_tensor(0).shape[0], in_h=in_h, in_w=in_w, depth=depth, out_h=len(p.rows), out_w=len(p.cols))
    rows = ctx.const("rows", np.array(p.rows, dtype=np.int32) * (in_w * depth), "int32_t", 4, f"layer {ctx.step} source row offsets")
    cols = ctx.const("cols", np.array(p.cols, dtype=np.int32) * depth, "int32_t", 4, f"layer {ctx.step} source column offsets")
    return ctx.portable(d=dims, rows=rows, cols=cols)


register(OpDef("RESIZE_NEAREST_NEIGHBOR", check, reference, prepare, emit=emit, template="resize_nearest_neighbor"))
