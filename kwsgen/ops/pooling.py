"""AVERAGE_POOL_2D and MAX_POOL_2D: int8 pooling (TFLM reference_integer_ops::AveragePool / MaxPool).

Both only look at taps inside the image: SAME padding shrinks the window at the borders instead of
padding with zeros, so an average divides by the number of valid taps. TFLM requires input and
output to share the zero point and (to 1e-6) the scale, and never rescales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoint import Rounding
from ..ir import Graph, Operator
from . import EmitTarget, OpDef, register
from ._common import (
    act_range,
    check_activation,
    check_arity,
    check_int8_activation,
    out_size,
    padding_before,
    tensor_in,
    tensor_out,
)
from ._conv_math import pad_nhwc, windows


@dataclass(frozen=True)
class PoolParams:
    filter: tuple[int, int]  # (h, w)
    stride: tuple[int, int]
    pad: tuple[int, int]  # top, left
    act_min: int
    act_max: int


def _geometry(op: Operator) -> tuple[tuple[int, int], tuple[int, int], str]:
    filt = (op.opt("filter_height", 1), op.opt("filter_width", 1))
    stride = (op.opt("stride_h", 1), op.opt("stride_w", 1))
    return filt, stride, op.opt("padding", "SAME")


def check(op: Operator, graph: Graph) -> list[str]:
    problems = check_arity(op, (1, 1))
    if problems:
        return problems
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    problems = check_int8_activation(x, "input") + check_int8_activation(y, "output") + check_activation(op, y)
    if problems:
        return problems
    if len(x.shape) != 4 or len(y.shape) != 4:
        return ["input and output must be 4-D (NHWC)"]
    (fh, fw), (sh, sw), padding = _geometry(op)
    if min(fh, fw, sh, sw) < 1:
        return ["filter sizes and strides must be >= 1"]
    if padding not in ("SAME", "VALID"):
        return [f"padding {padding} is not supported (SAME, VALID are)"]
    # PoolingPrepare: TF_LITE_ENSURE(|s_in - s_out| <= 1e-6) on float32 scales, equal zero points.
    if abs(float(np.float32(x.quant.s) - np.float32(y.quant.s))) > 1.0e-6 or x.quant.zp != y.quant.zp:
        return ["output must have the input's scale and zero point (TFLM pools without rescaling)"]
    expect = (x.shape[0], out_size(padding, x.shape[1], fh, sh), out_size(padding, x.shape[2], fw, sw), x.shape[3])
    if min(expect[1], expect[2]) < 1:
        return [f"filter {fh}x{fw} does not fit the {x.shape[1]}x{x.shape[2]} input with VALID padding"]
    if tuple(y.shape) != expect:
        return [f"output shape {list(y.shape)} does not match {padding} padding ({list(expect)})"]
    return []


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> PoolParams:
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    (fh, fw), (sh, sw), _ = _geometry(op)
    pad = (padding_before(sh, 1, x.shape[1], fh, y.shape[1]), padding_before(sw, 1, x.shape[2], fw, y.shape[2]))
    lo, hi = act_range(op, y)
    return PoolParams((fh, fw), (sh, sw), pad, lo, hi)


def valid_taps(out: int, stride: int, pad: int, filt: int, size: int) -> np.ndarray:
    """Per output position along one axis: how many window taps fall inside the input."""
    origin = np.arange(out) * stride - pad
    return np.minimum(filt, size - origin) - np.maximum(0, -origin)


def _int8_input(op: Operator, graph: Graph, xs: list) -> np.ndarray:
    x = tensor_in(op, graph, 0)
    if xs[0].dtype != np.int8:  # e.g. constant folding of a float tensor: int8 semantics would be wrong
        raise ValueError(f"{op}: int8 input expected, got {xs[0].dtype}")
    return xs[0].reshape((-1,) + x.shape[1:])


def reference_avg(op: Operator, graph: Graph, p: PoolParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    y = tensor_out(op, graph)
    x = _int8_input(op, graph, xs)
    oh, ow = y.shape[1], y.shape[2]
    xp = pad_nhwc(x, p.pad, p.filter, p.stride, (1, 1), (oh, ow))  # zeros add nothing
    # int32 sums as in TFLM (exact: a window would need 2^24 taps to overflow)
    acc = windows(xp, p.filter, p.stride, (1, 1), (oh, ow)).sum(axis=(3, 4), dtype=np.int32).astype(np.int64)
    count = (
        valid_taps(oh, p.stride[0], p.pad[0], p.filter[0], x.shape[1])[:, None]
        * valid_taps(ow, p.stride[1], p.pad[1], p.filter[1], x.shape[2])[None, :]
    )[:, :, None].astype(np.int64)
    # Round half away from zero: (acc +- count/2) / count with C's truncating division.
    num = np.where(acc > 0, acc + count // 2, acc - count // 2)
    avg = np.where(num >= 0, num // count, -((-num) // count))
    out = np.clip(avg, p.act_min, p.act_max).astype(np.int8)
    return [out.reshape((xs[0].shape[0],) + y.shape)]


def reference_max(op: Operator, graph: Graph, p: PoolParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    y = tensor_out(op, graph)
    x = _int8_input(op, graph, xs)
    oh, ow = y.shape[1], y.shape[2]
    # -128 padding never wins: TFLM starts the maximum at int8's lowest value.
    xp = pad_nhwc(x, p.pad, p.filter, p.stride, (1, 1), (oh, ow), value=-128)
    peak = windows(xp, p.filter, p.stride, (1, 1), (oh, ow)).max(axis=(3, 4))
    out = np.clip(peak, p.act_min, p.act_max).astype(np.int8)
    return [out.reshape((xs[0].shape[0],) + y.shape)]


def macs(op: Operator, graph: Graph) -> int:
    """One accumulate (average) or compare (max) per window tap."""
    (fh, fw), _, _ = _geometry(op)
    return tensor_out(op, graph).size * fh * fw


def cmsis_scratch_bytes(isa: str, output_x: int, ch_src: int) -> int:
    """arm_avgpool_s8_get_buffer_size{,_dsp,_mve} of CMSIS-NN v7.0.0: an int32 sum per channel on DSP."""
    if isa == "dsp":
        return ch_src * 4
    return 0


def scratch_avg(op: Operator, graph: Graph, p: PoolParams, target: EmitTarget) -> int:
    if target.kernels != "cmsis-nn":
        return 0
    y = tensor_out(op, graph)
    return cmsis_scratch_bytes(target.isa, y.shape[2], y.shape[3])


def _emit(ctx) -> "Emitted":
    op, graph = ctx.op, ctx.model.graph
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    dims = dict(n=x.shape[0], in_h=x.shape[1], in_w=x.shape[2], c=x.shape[3], out_h=y.shape[1], out_w=y.shape[2])
    if ctx.target.kernels == "cmsis-nn":  # TFLM's cmsis_nn/pooling.cc calls CMSIS-NN for every int8 pool
        return ctx.cmsis(d=dims)
    return ctx.portable(d=dims)


register(OpDef("AVERAGE_POOL_2D", check, reference_avg, prepare, macs, _emit, scratch_avg, template="average_pool_2d"))
register(OpDef("MAX_POOL_2D", check, reference_max, prepare, macs, _emit, template="max_pool_2d"))
