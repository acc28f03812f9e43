"""CONV_2D: int8 per-channel convolution (TFLM reference_integer_ops::ConvPerChannel), grouped convs included."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoint import Rounding, mbqm
from ..ir import Graph, Operator
from . import EmitTarget, OpDef, register
from ._common import (
    act_range,
    check_activation,
    check_arity,
    check_const,
    check_int8_activation,
    out_size,
    padding_before,
    per_channel_multipliers,
    tensor_in,
    tensor_out,
)
from ._conv_math import exact_matmul, pad_nhwc, windows


@dataclass(frozen=True)
class ConvParams:
    stride: tuple[int, int]  # (h, w)
    dilation: tuple[int, int]
    pad: tuple[int, int]  # top, left
    in_zp: int
    out_zp: int
    act_min: int
    act_max: int
    multiplier: np.ndarray  # int32 per output channel
    shift: np.ndarray
    groups: int


def check(op: Operator, graph: Graph) -> list[str]:
    problems = check_arity(op, (2, 3))
    if problems:
        return problems
    x, w, b, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_in(op, graph, 2), tensor_out(op, graph)
    problems += check_int8_activation(x, "input") + check_int8_activation(y, "output") + check_activation(op, y)
    problems += check_const(w, "filter", "int8")
    if b is not None:
        problems += check_const(b, "bias", "int32")
    if problems:
        return problems
    if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        return ["input, filter and output must be 4-D (NHWC / OHWI)"]
    if w.quant is None or any(z != 0 for z in w.quant.zero_point):
        return ["filter must be symmetrically quantized (zero point 0)"]
    if w.quant.per_channel and (w.quant.axis != 0 or len(w.quant.scale) != w.shape[0]):
        return ["per-channel filter quantization must be along the output channel (axis 0)"]
    if x.shape[3] % w.shape[3] or w.shape[0] % (x.shape[3] // w.shape[3]):
        return [f"input depth {x.shape[3]} is not a multiple of filter depth {w.shape[3]} compatible with {w.shape[0]} filters"]
    if b is not None and b.size != w.shape[0]:
        return [f"bias has {b.size} values for {w.shape[0]} output channels"]
    sh, sw = op.opt("stride_h", 1), op.opt("stride_w", 1)
    dh, dw = op.opt("dilation_h_factor", 1), op.opt("dilation_w_factor", 1)
    if min(sh, sw, dh, dw) < 1:
        return ["strides and dilations must be >= 1"]
    padding = op.opt("padding", "SAME")
    expect = (
        x.shape[0],
        out_size(padding, x.shape[1], w.shape[1], sh, dh),
        out_size(padding, x.shape[2], w.shape[2], sw, dw),
        w.shape[0],
    )
    if tuple(y.shape) != expect:
        return [f"output shape {list(y.shape)} does not match {padding} padding ({list(expect)})"]
    return []


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> ConvParams:
    x, w, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_out(op, graph)
    sh, sw = op.opt("stride_h", 1), op.opt("stride_w", 1)
    dh, dw = op.opt("dilation_h_factor", 1), op.opt("dilation_w_factor", 1)
    pad = (
        padding_before(sh, dh, x.shape[1], w.shape[1], y.shape[1]),
        padding_before(sw, dw, x.shape[2], w.shape[2], y.shape[2]),
    )
    mult, shift = per_channel_multipliers(x.quant.s, w.quant.scales(w.shape[0]), y.quant.s, rounding)
    lo, hi = act_range(op, y)
    return ConvParams((sh, sw), (dh, dw), pad, x.quant.zp, y.quant.zp, lo, hi, mult, shift, x.shape[3] // w.shape[3])


def requantize(acc: np.ndarray, bias: np.ndarray | None, p, rounding: Rounding) -> np.ndarray:
    """Bias, per-channel MultiplyByQuantizedMultiplier, output offset and activation clamp (last axis = channel)."""
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    out = mbqm(acc, p.multiplier, p.shift, rounding) + p.out_zp
    return np.clip(out, p.act_min, p.act_max).astype(np.int8)


def reference(op: Operator, graph: Graph, p: ConvParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    w = tensor_in(op, graph, 1).data
    b = tensor_in(op, graph, 2)
    y = tensor_out(op, graph)
    x = xs[0].reshape((-1,) + tensor_in(op, graph, 0).shape[1:])  # batch axis folds the model's N
    o, kh, kw, fc = w.shape
    oh, ow = y.shape[1], y.shape[2]
    xp = pad_nhwc(x.astype(np.int16) - p.in_zp, p.pad, (kh, kw), p.stride, p.dilation, (oh, ow))
    cols = windows(xp, (kh, kw), p.stride, p.dilation, (oh, ow))  # [N, OH, OW, KH, KW, C]
    per_group = o // p.groups
    accs = []
    for g in range(p.groups):
        patch = cols[..., g * fc : (g + 1) * fc].reshape(cols.shape[:3] + (kh * kw * fc,))
        wg = w[g * per_group : (g + 1) * per_group].reshape(per_group, kh * kw * fc)
        accs.append(exact_matmul(patch, wg.T))
    acc = np.concatenate(accs, axis=-1) if p.groups > 1 else accs[0]
    out = requantize(acc, None if b is None else b.data, p, rounding)
    return [out.reshape((xs[0].shape[0],) + y.shape)]


def macs(op: Operator, graph: Graph) -> int:
    w, y = tensor_in(op, graph, 1), tensor_out(op, graph)
    return y.size * w.shape[1] * w.shape[2] * w.shape[3]


def _im2col_bytes(isa: str, k_h: int, k_w: int, in_c: int) -> int:
    """arm_convolve_s8_get_buffer_size: two q15 im2col columns (scalar/DSP) or four 16-lane int8 ones (MVE)."""
    cols = k_h * k_w * in_c
    if isa == "mve":
        return 4 * ((cols + 15) // 16) * 16
    return 2 * (cols + (-cols) % 4) * 2


def _one_by_n_mve_bytes(x_w: int, in_c: int, k_h: int, k_w: int, out_w: int, pad_w: int, stride_w: int) -> int:
    """arm_convolve_1_x_n_s8_get_buffer_size_mve."""
    total_pad = (out_w - 1) * stride_w + k_w - x_w
    asym = total_pad % 2
    right = max(1, (pad_w + asym + stride_w - 1) // stride_w) if pad_w + asym != 0 else 0
    left = max(1, (pad_w + stride_w - 1) // stride_w) if pad_w != 0 else 0
    if right + max(out_w - (right + left), 0) + left != out_w:
        return _im2col_bytes("mve", k_h, k_w, in_c)
    pad_left = pad_w * in_c
    pad_right = right * in_c if asym else pad_left
    elems_left = k_w * in_c
    return max(elems_left + pad_left, elems_left - in_c + pad_right)


def cmsis_scratch_bytes(isa: str, x_shape, w_shape, y_shape, pad: tuple[int, int], stride: tuple[int, int],
                        dilation: tuple[int, int]) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size{,_dsp,_mve} of CMSIS-NN v7.0.0 as built by GCC.

    (The 1x1-fast DSP buffer is non-zero only under Arm Compiler 6, so it is 0 here.)
    """
    _, x_h, x_w, in_c = x_shape
    _, k_h, k_w, _ = w_shape
    if pad == (0, 0) and (k_h, k_w) == (1, 1) and dilation == (1, 1):
        return 0
    if x_h == 1 and dilation[1] == 1 and k_h == 1 and (stride[1] * in_c) % 4 == 0:
        if isa == "mve":
            return _one_by_n_mve_bytes(x_w, in_c, k_h, k_w, y_shape[2], pad[1], stride[1])
        return _im2col_bytes(isa, k_h, k_w, in_c)
    return _im2col_bytes(isa, k_h, k_w, in_c)


def scratch(op: Operator, graph: Graph, p: ConvParams, target: EmitTarget) -> int:
    if target.kernels != "cmsis-nn" or p.groups != 1:
        return 0
    x, w, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_out(op, graph)
    return cmsis_scratch_bytes(target.isa, x.shape, w.shape, y.shape, p.pad, p.stride, p.dilation)


def emit(ctx) -> "Emitted":
    op, graph, p = ctx.op, ctx.model.graph, ctx.params
    x, w, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_out(op, graph)
    dims = dict(
        n=x.shape[0], in_h=x.shape[1], in_w=x.shape[2], in_c=x.shape[3],
        out_h=y.shape[1], out_w=y.shape[2], out_c=y.shape[3],
        k_h=w.shape[1], k_w=w.shape[2], f_c=w.shape[3],
    )
    mult = ctx.const("mult", p.multiplier, "int32_t", 4, f"layer {ctx.step} per-channel multipliers")
    shift = ctx.const("shift", p.shift, "int32_t", 4, f"layer {ctx.step} per-channel shifts")
    if ctx.target.kernels == "cmsis-nn" and p.groups == 1:
        return ctx.cmsis(d=dims, mult=mult, shift=shift)
    return ctx.portable(d=dims, mult=mult, shift=shift)


register(OpDef("CONV_2D", check, reference, prepare, macs, emit, scratch, template="conv_2d"))
