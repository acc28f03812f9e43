"""DEPTHWISE_CONV_2D: int8 per-channel depthwise convolution (TFLM reference_integer_ops::DepthwiseConvPerChannel).

Output channel oc = ic * depth_multiplier + m reads input channel ic; the filter is [1, KH, KW, C_OUT]
and per-channel scales lie along axis 3. TFLM ignores the filter zero point here (weights are
symmetric by the quantization spec), so kwsgen requires it to be 0 rather than silently drop it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..fixedpoint import INT32_MAX, RequantS8, Rounding, requant_s8, requantize_s8, wrap32
from ..ir import Graph, Operator
from . import EmitTarget, OpDef, register
from ._common import (
    check_weighted_layer,
    act_range,
    out_size,
    padding_before,
    per_channel_multipliers,
    tensor_in,
    tensor_out,
)
from ._conv_math import FLOAT32_EXACT, exact_matmul_float, pad_nhwc, padded_extent, per_layer, windows, work_buffer

if TYPE_CHECKING:  # pragma: no cover
    from ..codegen import EmitContext, Emitted


@dataclass(frozen=True)
class DepthwiseParams:
    stride: tuple[int, int]  # (h, w)
    dilation: tuple[int, int]
    pad: tuple[int, int]  # top, left
    depth_multiplier: int
    in_zp: int
    out_zp: int
    act_min: int
    act_max: int
    multiplier: np.ndarray  # int32 per output channel
    shift: np.ndarray
    fold: np.ndarray  # int32 per output channel: bias - in_zp * sum(filter taps), wrapped (see emit)


def _geometry(op: Operator) -> tuple[tuple[int, int], tuple[int, int], str, int]:
    stride = (op.opt("stride_h", 1), op.opt("stride_w", 1))
    dilation = (op.opt("dilation_h_factor", 1), op.opt("dilation_w_factor", 1))
    return stride, dilation, op.opt("padding", "SAME"), op.opt("depth_multiplier", 1)


def check(op: Operator, graph: Graph) -> list[str]:
    problems = check_weighted_layer(op, graph)
    if problems:
        return problems
    x, w, b, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_in(op, graph, 2), tensor_out(op, graph)
    if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        return ["input, filter and output must be 4-D (NHWC, filter 1HWO)"]
    if w.shape[0] != 1:
        return [f"filter shape {list(w.shape)} must be [1, KH, KW, C_OUT]"]
    out_c = w.shape[3]
    if w.quant is None:
        return ["filter has no quantization parameters"]
    if any(z != 0 for z in w.quant.zero_point):
        return ["filter must be symmetrically quantized (zero point 0; TFLM ignores filter zero points)"]
    if w.quant.per_channel and (w.quant.axis != 3 or len(w.quant.scale) != out_c):
        return [f"per-channel filter quantization must have {out_c} scales along the output channel (axis 3)"]
    if b is not None and b.size != out_c:
        return [f"bias has {b.size} values for {out_c} output channels"]
    (sh, sw), (dh, dw), padding, dm = _geometry(op)
    if min(sh, sw, dh, dw) < 1:
        return ["strides and dilations must be >= 1"]
    if padding not in ("SAME", "VALID"):
        return [f"padding {padding} is not supported (SAME, VALID are)"]
    if dm < 1 or x.shape[3] * dm != out_c:
        return [f"depth_multiplier {dm} does not map {x.shape[3]} input channels to {out_c} filter channels"]
    expect = (
        x.shape[0],
        out_size(padding, x.shape[1], w.shape[1], sh, dh),
        out_size(padding, x.shape[2], w.shape[2], sw, dw),
        out_c,
    )
    if min(expect[1], expect[2]) < 1:
        return [f"dilated {w.shape[1]}x{w.shape[2]} filter does not fit the {x.shape[1]}x{x.shape[2]} input with VALID padding"]
    if tuple(y.shape) != expect:
        return [f"output shape {list(y.shape)} does not match {padding} padding ({list(expect)})"]
    # The int32 accumulator of the C kernels must not overflow (sum of |w| * |x - zp| <= 255 per tap).
    if int(np.abs(w.data.astype(np.int64)).sum(axis=(0, 1, 2)).max(initial=0)) * 255 > INT32_MAX:
        return [f"{w.shape[1]}x{w.shape[2]} filter is too large for an int32 accumulator"]
    return []


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> DepthwiseParams:
    x, w, b, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_in(op, graph, 2), tensor_out(op, graph)
    (sh, sw), (dh, dw), _, dm = _geometry(op)
    pad = (
        padding_before(sh, dh, x.shape[1], w.shape[1], y.shape[1]),
        padding_before(sw, dw, x.shape[2], w.shape[2], y.shape[2]),
    )
    out_c = w.shape[3]
    mult, shift = per_channel_multipliers(x.quant.s, w.quant.scales(out_c), y.quant.s, rounding)
    lo, hi = act_range(op, y)
    bias = np.zeros(out_c, np.int64) if b is None else b.data.astype(np.int64).ravel()
    ksum = w.data.astype(np.int64).sum(axis=(0, 1, 2))
    fold = wrap32(bias - x.quant.zp * ksum).astype(np.int32)
    return DepthwiseParams((sh, sw), (dh, dw), pad, dm, x.quant.zp, y.quant.zp, lo, hi, mult, shift, fold)


# With a large depth multiplier each input channel feeds many outputs: one exact BLAS product per input
# channel beats a pass over the output per filter tap (the tap loop's cost grows with the multiplier).
MATMUL_DEPTH_MULTIPLIER = 4


@dataclass(frozen=True)
class _RefConstants:
    dtype: type  # float32 when every accumulator stays below 2^24 in magnitude (exact), else float64
    transposed: bool  # run on the transposed image (H and W swapped), see _acc_taps
    taps: np.ndarray  # [KH, KW, ...] per tap its weights: [C], or with stride 1 laid out like the accumulators
    stage: RequantS8


@per_layer
def _reference_constants(op: Operator, graph: Graph, p: DepthwiseParams, rounding: Rounding) -> _RefConstants:
    x, w, b, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1).data, tensor_in(op, graph, 2), tensor_out(op, graph)
    w64 = w.astype(np.int64)
    acc_bound = 128 * np.abs(w64).sum(axis=(0, 1, 2))
    dtype = np.float32 if acc_bound.max(initial=0) < FLOAT32_EXACT else np.float64
    fold = (0 if b is None else b.data.astype(np.int64).ravel()) - p.in_zp * w64.sum(axis=(0, 1, 2))
    stage = requant_s8(fold, p.multiplier, p.shift, p.out_zp, p.act_min, p.act_max, rounding, acc_bound,
                       per_sample=y.size // y.shape[0])
    taps, (oh, ow), out_c = w[0], y.shape[1:3], w.shape[3]
    if p.stride != (1, 1) or p.depth_multiplier >= MATMUL_DEPTH_MULTIPLIER:
        return _RefConstants(dtype, False, taps.astype(dtype), stage)
    # A tap's weights over the padded-width grid [OH, WP, C] (flattened, cut to length), on the image or on its
    # transpose, whichever has the fewer padded columns to compute.
    hp, wp = (padded_extent(x.shape[1 + a], p.pad[a], w.shape[1 + a], 1, p.dilation[a], y.shape[1 + a])[0] for a in (0, 1))
    transposed = ow * hp < oh * wp
    if transposed:
        taps, (oh, ow), wp = taps.transpose(1, 0, 2), (ow, oh), hp
    taps = np.tile(taps, (1, 1, oh * wp))[:, :, : ((oh - 1) * wp + ow) * out_c]
    return _RefConstants(dtype, transposed, np.ascontiguousarray(taps, dtype=dtype), stage)


def _acc_taps(xp: np.ndarray, taps: np.ndarray, dm: int, stride: tuple[int, int], dilation: tuple[int, int],
              out: tuple[int, int]) -> np.ndarray:
    """Accumulators [N, OH, OW, C_OUT]: the sum over filter taps of window times weights (xp's dtype, exact).

    With stride 1 the windows of tap (fy, fx) are, in the flattened padded sample, one contiguous range
    starting at (fy * dh * WP + fx * dw) * C: a strided view [N, KH, KW, range] holds them all, and one einsum
    multiplies and sums it against the weights in a single pass of long inner loops. The accumulators then
    cover the padded width too (the extra columns are cut at the end). Otherwise the einsum runs over the
    windows [N, OH, OW, KH, KW, C] (inner loops of one channel row).
    """
    kh, kw = taps.shape[:2]
    (oh, ow), (dh, dw) = out, dilation
    if dm > 1:
        xp = np.repeat(xp, dm, axis=3)  # channel oc reads input channel oc // m
    n, _, wp, c = xp.shape
    if stride == (1, 1):
        flat = np.ascontiguousarray(xp).reshape(n, -1)
        length, (s_n, s_e) = taps.shape[2], flat.strides
        spans = as_strided(flat, (n, kh, kw, length), (s_n, dh * wp * c * s_e, dw * c * s_e, s_e), writeable=False)
        acc = work_buffer("depthwise.acc", (n, oh * wp * c), xp.dtype)
        np.einsum("nabj,abj->nj", spans, taps, out=acc[:, :length])
        return acc.reshape(n, oh, wp, c)[:, :, :ow]
    acc = work_buffer("depthwise.acc", (n, oh, ow, c), xp.dtype)
    return np.einsum("nhwabc,abc->nhwc", windows(xp, (kh, kw), stride, dilation, out), taps, out=acc)


def _acc_matmul(xp: np.ndarray, w: np.ndarray, p: DepthwiseParams, out: tuple[int, int]) -> np.ndarray:
    """Accumulators as, per input channel, its [taps] windows times the [taps, multiplier] filter slice."""
    _, kh, kw, out_c = w.shape
    dm = p.depth_multiplier
    cols = windows(xp, (kh, kw), p.stride, p.dilation, out)  # [N, OH, OW, KH, KW, C_IN]
    accs = []
    for ic in range(xp.shape[3]):
        patch = cols[..., ic].reshape(cols.shape[:3] + (kh * kw,))
        accs.append(exact_matmul_float(patch, w[0, :, :, ic * dm : (ic + 1) * dm].reshape(kh * kw, dm), a_max=128))
    return np.concatenate(accs, axis=-1)


def reference(op: Operator, graph: Graph, p: DepthwiseParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    w = tensor_in(op, graph, 1).data
    y = tensor_out(op, graph)
    x = xs[0].reshape((-1,) + tensor_in(op, graph, 0).shape[1:])  # batch axis folds the model's N
    k = _reference_constants(op, graph, p, rounding)
    # Sums of raw int8 values (|x| <= 128) times the taps, padded with the input zero point: every tap then
    # adds in_zp * w, padding included (TFLM skips out-of-image taps), and the per-channel fold takes that out
    # again, as the C kernels do: acc + fold = sum over in-image taps of (x - in_zp) * w, plus the bias.
    pad, kernel, dilation, out = p.pad, w.shape[1:3], p.dilation, y.shape[1:3]
    if p.depth_multiplier >= MATMUL_DEPTH_MULTIPLIER:
        xp = pad_nhwc(x, pad, kernel, p.stride, dilation, out, value=p.in_zp, dtype=k.dtype, work="depthwise.pad")
        acc = _acc_matmul(xp, w, p, out)
    else:
        if k.transposed:  # H and W swap roles; the result is transposed back below
            x, pad, kernel, dilation, out = x.transpose(0, 2, 1, 3), pad[::-1], kernel[::-1], dilation[::-1], out[::-1]
        xp = pad_nhwc(x, pad, kernel, p.stride, dilation, out, value=p.in_zp, dtype=k.dtype, work="depthwise.pad")
        acc = _acc_taps(xp, k.taps, p.depth_multiplier, p.stride, dilation, out)
    # (the per-channel constants of the output stage are tiled over positions, so either layout suits them)
    result = requantize_s8(acc, k.stage, work_buffer("requant", (acc.shape[0], acc[0].size), np.float64))
    if k.transposed:
        result = result.transpose(0, 2, 1, 3)
    return [np.ascontiguousarray(result).reshape((xs[0].shape[0],) + y.shape)]


def macs(op: Operator, graph: Graph) -> int:
    w, y = tensor_in(op, graph, 1), tensor_out(op, graph)
    return y.size * w.shape[1] * w.shape[2]


# ---- CMSIS-NN v7.0.0 ----

CH_IN_BLOCK_MVE = 124  # arm_nnsupportfunctions.h
# CONVERT_DW_CONV_WITH_ONE_INPUT_CH_AND_OUTPUT_CH_ABOVE_THRESHOLD: 1 under GCC (8 under Arm Compiler 6).
DW_TO_CONV_THRESHOLD = 1


def _opt_bytes(isa: str, in_c: int, k_h: int, k_w: int) -> int:
    """arm_depthwise_conv_s8_opt_get_buffer_size{,_dsp,_mve}: q15 im2col (DSP), 4 int8 column blocks (MVE)."""
    if isa == "mve":
        return 4 * CH_IN_BLOCK_MVE * k_w * k_h
    if isa == "dsp":
        return in_c * k_w * k_h * 2
    return 0


def _to_conv_bytes(x_shape, k_h: int, k_w: int, y_shape, pad, stride, dilation) -> int:
    """arm_deptwise_conv_s8_one_in_ch_get_buffer_size_mve: the conv wrapper's buffer + the transposed filter."""
    from .conv_2d import cmsis_scratch_bytes as conv_scratch_bytes  # the conv wrapper's getter, already ported

    out_c = y_shape[3]
    conv = conv_scratch_bytes("mve", x_shape, (out_c, k_h, k_w, 1), y_shape, pad, stride, dilation)
    return conv + out_c * k_h * k_w


def cmsis_scratch_bytes(isa: str, x_shape, w_shape, y_shape, pad: tuple[int, int], stride: tuple[int, int],
                        dilation: tuple[int, int]) -> int:
    """arm_depthwise_conv_wrapper_s8_get_buffer_size{,_dsp,_mve} of CMSIS-NN v7.0.0 as built by GCC.

    `isa` "scalar" is the plain getter without ARM_MATH_DSP/MVEI; "dsp" and "mve" are the `_dsp` and `_mve`
    getters (which equal the plain getter under ARM_MATH_DSP and ARM_MATH_MVEI respectively).
    """
    n, _, _, in_c = x_shape
    _, k_h, k_w, _ = w_shape
    out_c = y_shape[3]
    if isa == "scalar":  # without DSP or MVE no depthwise kernel takes a buffer
        return 0
    size = 0
    if in_c == out_c and n == 1 and dilation == (1, 1):
        if isa == "dsp" and (k_w, k_h) == (3, 3) and pad[0] <= 1 and pad[1] <= 1:
            return 0
        size = _opt_bytes(isa, in_c, k_h, k_w)
    if isa == "mve" and in_c == 1 and out_c > DW_TO_CONV_THRESHOLD:
        size = max(size, _to_conv_bytes(x_shape, k_h, k_w, y_shape, pad, stride, dilation))
    return size


def scratch(op: Operator, graph: Graph, p: DepthwiseParams, target: EmitTarget) -> int:
    if target.kernels != "cmsis-nn":
        return 0
    x, w, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_out(op, graph)
    return cmsis_scratch_bytes(target.isa, x.shape, w.shape, y.shape, p.pad, p.stride, p.dilation)


def tap_offsets(x_shape, w_shape, dilation: tuple[int, int]) -> np.ndarray:
    """Element offset of each filter tap (row-major) from a window's first input element: lets the portable
    kernel walk a full window in one flat loop instead of recomputing 2-D addresses."""
    _, _, in_w, in_c = x_shape
    _, k_h, k_w, _ = w_shape
    fy, fx = np.meshgrid(np.arange(k_h), np.arange(k_w), indexing="ij")
    return (fy * dilation[0] * in_w * in_c + fx * dilation[1] * in_c).astype(np.int32).ravel()


def _padded(values: np.ndarray, extra: int) -> np.ndarray:
    flat = np.ascontiguousarray(values).ravel()
    return np.concatenate([flat, np.zeros(extra, dtype=flat.dtype)]) if extra else flat


def emit(ctx: "EmitContext") -> "Emitted":
    op, graph, p = ctx.op, ctx.model.graph, ctx.params
    x, w, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_out(op, graph)
    dims = dict(
        n=x.shape[0], in_h=x.shape[1], in_w=x.shape[2], in_c=x.shape[3],
        out_h=y.shape[1], out_w=y.shape[2], out_c=y.shape[3], k_h=w.shape[1], k_w=w.shape[2],
    )
    out_c = y.shape[3]
    if ctx.target.kernels == "cmsis-nn":
        # TFLM's cmsis_nn/depthwise_conv.cc calls the wrapper for every int8 layer. Its MVE kernels load
        # multipliers, shifts, biases and filter taps 4 channels at a time: pad every per-channel array
        # so those loads stay inside it when C_OUT % 4 != 0.
        extra = (-out_c) % 4
        mult = ctx.const("mult", _padded(p.multiplier, extra), "int32_t", 16, f"layer {ctx.step} per-channel multipliers")
        shift = ctx.const("shift", _padded(p.shift, extra), "int32_t", 16, f"layer {ctx.step} per-channel shifts")
        filt = ctx.const("filter", _padded(w.data, extra), "int8_t", 16, f"{w.name} {list(w.shape)} (+{extra} pad)")
        b = ctx.input_tensor(2)
        bias = "NULL" if b is None else ctx.const(
            "bias", _padded(b.data.astype(np.int32), extra), "int32_t", 16, f"{b.name} {list(b.shape)} (+{extra} pad)")
        return ctx.cmsis(d=dims, mult=mult, shift=shift, filt=filt, bias=bias)
    mult = ctx.const("mult", p.multiplier, "int32_t", 4, f"layer {ctx.step} per-channel multipliers")
    shift = ctx.const("shift", p.shift, "int32_t", 4, f"layer {ctx.step} per-channel shifts")
    _, k_h, k_w, _ = w.shape
    if x.shape[3] == 1:
        # One input channel: the layer is a CONV_2D with filter [out_c, k_h, k_w, 1], which the conv kernel
        # runs with two pixels per multiply-accumulate (e.g. micro_speech's 10x8 first layer).
        from .conv_2d import emit_portable

        b = ctx.input_tensor(2)
        return emit_portable(
            ctx, x.shape, y.shape, np.ascontiguousarray(w.data[0].transpose(2, 0, 1)[..., None]),
            None if b is None else b.data, groups=1, stride=p.stride, dilation=p.dilation, pad=p.pad,
            in_zp=p.in_zp, out_zp=p.out_zp, act=(p.act_min, p.act_max), mult=mult, shift=shift,
        )
    from .conv_2d import inside_range

    dims["oy_lo"], dims["oy_hi"] = inside_range(y.shape[1], x.shape[1], k_h, p.stride[0], p.dilation[0], p.pad[0])
    dims["ox_lo"], dims["ox_hi"] = inside_range(y.shape[2], x.shape[2], k_w, p.stride[1], p.dilation[1], p.pad[1])
    # Filter [1, KH, KW, C_OUT] -> blocks of 4 output channels [KH*KW][4], zero-padded to a multiple of 4.
    taps_w = np.zeros((k_h * k_w, out_c + (-out_c) % 4), np.int8)
    taps_w[:, :out_c] = w.data.reshape(k_h * k_w, out_c)
    blocks = taps_w.reshape(k_h * k_w, -1, 4).transpose(1, 0, 2)
    filt = ctx.const("filter_blocks", blocks, "int8_t", 4, f"layer {ctx.step} filter in blocks of 4 channels [tap][4]")
    fold = ctx.const("fold", p.fold, "int32_t", 4, f"layer {ctx.step} bias - input zero point * filter tap sums")
    taps = ctx.const("taps", tap_offsets(x.shape, w.shape, p.dilation), "int32_t", 4,
                     f"layer {ctx.step} input offset of each filter tap in a full window")
    bias = "NULL" if ctx.input_tensor(2) is None else ctx.weights(2)  # the bias input may be absent or left out
    return ctx.portable(d=dims, mult=mult, shift=shift, filt=filt, fold=fold, bias=bias, taps=taps)


register(OpDef("DEPTHWISE_CONV_2D", check, reference, prepare, macs, emit, scratch, template="depthwise_conv_2d"))
