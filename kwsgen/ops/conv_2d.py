"""CONV_2D: int8 per-channel convolution (TFLM reference_integer_ops::ConvPerChannel), grouped convs included."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

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
from ._conv_math import ExactMatmul, exact_matmul_plan, im2col, pad_nhwc, per_layer, work_buffer

if TYPE_CHECKING:  # pragma: no cover
    from ..codegen import EmitContext, Emitted


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
    problems = check_weighted_layer(op, graph)
    if problems:
        return problems
    x, w, b, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_in(op, graph, 2), tensor_out(op, graph)
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
    # The int32 accumulator must not overflow (|x - zp| <= 255 per tap): TFLM's would be undefined.
    if int(np.abs(w.data.astype(np.int64)).sum(axis=(1, 2, 3)).max(initial=0)) * 255 > INT32_MAX:
        return [f"{w.shape[1]}x{w.shape[2]}x{w.shape[3]} filter is too large for an int32 accumulator"]
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


@per_layer
def _reference_constants(op: Operator, graph: Graph, p: ConvParams, rounding: Rounding
                         ) -> tuple[list[ExactMatmul], RequantS8]:
    """Per group, the product with its filters; the output stage, whose fold takes the input offset out (below)."""
    w, b, y = tensor_in(op, graph, 1).data, tensor_in(op, graph, 2), tensor_out(op, graph)
    wk = w.reshape(w.shape[0], -1).astype(np.int64)
    fold = (0 if b is None else b.data.astype(np.int64).ravel()) - p.in_zp * wk.sum(axis=1)
    stage = requant_s8(fold, p.multiplier, p.shift, p.out_zp, p.act_min, p.act_max, rounding,
                       acc_bound=128 * np.abs(wk).sum(axis=1), per_sample=y.size // y.shape[0])
    per_group = wk.shape[0] // p.groups
    return [exact_matmul_plan(wk[g * per_group : (g + 1) * per_group].T, 128) for g in range(p.groups)], stage


def reference(op: Operator, graph: Graph, p: ConvParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    w = tensor_in(op, graph, 1).data
    y = tensor_out(op, graph)
    x = xs[0].reshape((-1,) + tensor_in(op, graph, 0).shape[1:])  # batch axis folds the model's N
    o, kh, kw, fc = w.shape
    oh, ow = y.shape[1], y.shape[2]
    products, stage = _reference_constants(op, graph, p, rounding)
    # Dot products of the raw int8 values (|x| <= 128), padded with the input zero point: each then holds
    # in_zp * w for every tap, padding included, and the per-channel fold takes that out again, as the C
    # kernels do: acc + fold = sum over in-image taps of (x - in_zp) * w, plus the bias.
    xp = pad_nhwc(x, p.pad, (kh, kw), p.stride, p.dilation, (oh, ow), value=p.in_zp, work="conv.pad")
    n = x.shape[0]
    if p.groups == 1:
        patch = im2col(xp, (kh, kw), p.stride, p.dilation, (oh, ow), work="conv.im2col")
        acc = products[0](patch, out=work_buffer("conv.acc", (n * oh * ow, o), np.float32))
    else:
        acc = np.concatenate([
            product(im2col(xp[..., g * fc : (g + 1) * fc], (kh, kw), p.stride, p.dilation, (oh, ow)))
            for g, product in enumerate(products)], axis=-1)
    out = requantize_s8(acc.reshape(n, oh * ow, o), stage, work_buffer("requant", (n, oh * ow * o), np.float64))
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


def inside_range(out_n: int, in_n: int, k: int, stride: int, dil: int, pad: int) -> tuple[int, int]:
    """Output positions [lo, hi) along one axis whose whole window lies inside the input."""
    lo = min(-(-pad // stride), out_n)  # first o with o * stride - pad >= 0
    last = in_n - 1 - (k - 1) * dil + pad  # o * stride <= last keeps the last tap inside
    hi = min(last // stride + 1, out_n) if last >= 0 else 0
    return lo, max(lo, hi)


def window_runs(in_w: int, in_c: int, k_h: int, k_w: int, f_c: int, dilation: tuple[int, int]) -> tuple[list[int], int]:
    """A full window as runs of contiguous input bytes: (start offsets from the window's first byte, run length).

    Taps are visited in filter order (fy, fx, c), which is also the blocked filter's order, so runs of the
    input that are contiguous are contiguous in the filter too; adjacent taps merge when their input is.
    All runs have one length (a tap's f_c channels, or a whole filter row, or the whole window)."""
    taps = [(fy * dilation[0] * in_w + fx * dilation[1]) * in_c for fy in range(k_h) for fx in range(k_w)]
    for per_run in (k_h * k_w, k_w, 1):  # the longest uniform merge that holds
        starts = taps[::per_run]
        if all(taps[i] == taps[i - 1] + f_c for i in range(1, len(taps)) if i % per_run):
            return starts, per_run * f_c
    raise AssertionError("unreachable: single taps always form runs")


def blocked_filter(w: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Filter [O, KH, KW, FC] -> blocks of up to 4 output channels of one group, each [KH*KW*FC][4]
    (zero-padded), and the block table [(first channel, count, first input channel)] as int32."""
    o = w.shape[0]
    per_group = o // groups
    rows = w.reshape(o, -1)
    blocks, table = [], []
    for g in range(groups):
        for first in range(g * per_group, (g + 1) * per_group, 4):
            count = min(4, (g + 1) * per_group - first)
            block = np.zeros((4, rows.shape[1]), np.int8)
            block[:count] = rows[first : first + count]
            blocks.append(block.T.ravel())
            table.append((first, count, g * w.shape[3]))
    return np.concatenate(blocks), np.array(table, np.int32).ravel()


# The portable kernel packs two pixels' int8 inputs into one operand x0 + x1 * 2^23 (kws_conv_pair_packed):
# exact while every channel's |sum of w * x| stays below 2^22.
PACK_BOUND = 1 << 22
DIRECT_RUN = 16  # bytes per run from which the portable kernel reads inside windows in place
WINDOW_BYTES = 512  # KWS_CONV_WINDOW_BYTES of templates/ops/conv_2d.j2 (two copied windows must fit)


def emit_portable(ctx, x_shape, y_shape, w: np.ndarray, bias: np.ndarray | None, *, groups: int,
                  stride: tuple[int, int], dilation: tuple[int, int], pad: tuple[int, int], in_zp: int, out_zp: int,
                  act: tuple[int, int], mult: str, shift: str) -> "Emitted":
    """The portable kernel kws_conv_s8 for a conv with filter w [O, KH, KW, FC] (grouped when FC < C_in) and
    bias (input 2 of the layer, or None).

    Geometry, filter layout and constant sums are all settled here, at compile time. DEPTHWISE_CONV_2D
    layers with one input channel, which are such convs, come here too."""
    from ..codegen import Emitted

    o, k_h, k_w, f_c = w.shape
    d = dict(
        n=x_shape[0], in_h=x_shape[1], in_w=x_shape[2], in_c=x_shape[3], out_h=y_shape[1], out_w=y_shape[2], out_c=o,
        k_h=k_h, k_w=k_w, f_c=f_c, stride_h=stride[0], stride_w=stride[1], dil_h=dilation[0], dil_w=dilation[1],
        pad_h=pad[0], pad_w=pad[1], in_offset=-in_zp, out_offset=out_zp, act_min=act[0], act_max=act[1],
    )
    if (k_h, k_w, stride, pad) == (1, 1, (1, 1), (0, 0)):
        # A pointwise conv maps pixel i to pixel i: one long row (batch included) pairs pixels across rows.
        pixels = d["n"] * d["in_h"] * d["in_w"]
        d.update(n=1, in_h=1, in_w=pixels, out_h=1, out_w=pixels)
    d["oy_lo"], d["oy_hi"] = inside_range(d["out_h"], d["in_h"], k_h, stride[0], dilation[0], pad[0])
    d["ox_lo"], d["ox_hi"] = inside_range(d["out_w"], d["in_w"], k_w, stride[1], dilation[1], pad[1])
    starts, d["seg_len"] = window_runs(d["in_w"], d["in_c"], k_h, k_w, f_c, dilation)
    d["n_seg"] = len(starts)
    # Inside windows are read in place when their runs are long enough to amortize a run's set-up;
    # windows of short runs (e.g. in_c = 1) are cheaper copied into one contiguous run first.
    d["direct"] = int(groups > 1 or d["n_seg"] == 1 or d["seg_len"] >= DIRECT_RUN)
    blocks, table = blocked_filter(w, groups)
    d["n_blocks"] = len(table) // 3
    w64 = w.astype(np.int64).reshape(o, -1)
    d["pack"] = int(128 * int(np.abs(w64).sum(axis=1).max()) < PACK_BOUND)
    fold = wrap32((0 if bias is None else bias.astype(np.int64).ravel()) - in_zp * w64.sum(axis=1)).astype(np.int32)
    # The bias itself is read only by border pixels summed in place: those of a conv whose windows
    # cannot be copied (grouped, or two windows over KWS_CONV_WINDOW_BYTES); all other sums take fold.
    borders = (d["oy_lo"], d["oy_hi"], d["ox_lo"], d["ox_hi"]) != (0, d["out_h"], 0, d["out_w"])
    in_place = borders and not (groups == 1 and 2 * k_h * k_w * f_c <= WINDOW_BYTES)
    bias_name = ctx.weights(2) if in_place and bias is not None else "NULL"
    args = dict(
        d=d, mult=mult, shift=shift, bias=bias_name,
        filt=ctx.const("filter_blocks", blocks, "int8_t", 4, f"layer {ctx.step} filter in blocks of 4 output channels [K][4]"),
        fold=ctx.const("fold", fold, "int32_t", 4, f"layer {ctx.step} bias - input zero point * filter sums"),
        segs=ctx.const("runs", np.array(starts, np.int32), "int32_t", 4, f"layer {ctx.step} input offsets of a window's runs"),
        # Ungrouped: block k is channels 4k.. (the kernel needs no table).
        blocks="NULL" if groups == 1 else ctx.const("blocks", table, "int32_t", 4,
                                                    f"layer {ctx.step} (first channel, count, first input channel) per block"),
    )
    template = "ops/conv_2d.j2"
    ctx.require_kernel(template)
    return Emitted(ctx.render(template, "decl", **args), ctx.render(template, "call", **args))


def emit(ctx: "EmitContext") -> "Emitted":
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
    b = tensor_in(op, graph, 2)
    return emit_portable(
        ctx, x.shape, y.shape, w.data, None if b is None or ctx.input_tensor(2) is None else b.data, groups=p.groups, stride=p.stride, dilation=p.dilation, pad=p.pad, in_zp=p.in_zp, out_zp=p.out_zp,
        act=(p.act_min, p.act_max), mult=mult, shift=shift,
    )


register(OpDef("CONV_2D", check, reference, prepare, macs, emit, scratch, template="conv_2d"))
