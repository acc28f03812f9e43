"""FULLY_CONNECTED: int8 matrix-vector layers (TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel).

TFLM takes `batches` from the *output* shape (all dims but the last) and `accum_depth` from the filter's
last dim, and reads the input of any rank as a dense [batches, accum_depth] matrix; keep_num_dims only
changes the output shape, which the model already states. Per-tensor filters may be asymmetric (TFLM's
reference applies -filter_zp); per-channel ones must be symmetric (TFLM ignores their zero points).
"""

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
    per_channel_multipliers,
    tensor_in,
    tensor_out,
)
from ._conv_math import ExactMatmul, exact_matmul_plan, per_layer

if TYPE_CHECKING:  # pragma: no cover
    from ..codegen import EmitContext, Emitted


@dataclass(frozen=True)
class FcParams:
    batches: int
    accum_depth: int
    out_depth: int
    in_zp: int
    filter_zp: int  # 0 unless a per-tensor filter is asymmetric
    out_zp: int
    act_min: int
    act_max: int
    per_channel: bool
    multiplier: np.ndarray  # int32: one per output row, or a single per-tensor value
    shift: np.ndarray
    fold: np.ndarray  # int32 per row: bias + in_offset * (row sum + accum_depth * filter_offset), wrapped


def _rows(op: Operator, graph: Graph) -> tuple[int, int, int]:
    """(batches, accum_depth, out_depth) as TFLM derives them."""
    w, y = tensor_in(op, graph, 1), tensor_out(op, graph)
    out_depth = y.shape[-1] if y.shape else 1
    return int(np.prod(y.shape[:-1], dtype=np.int64)), w.shape[-1], out_depth


def check(op: Operator, graph: Graph) -> list[str]:
    problems = check_weighted_layer(op, graph)
    if problems:
        return problems
    x, w, b, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_in(op, graph, 2), tensor_out(op, graph)
    if op.opt("weights_format", 0) not in (0, "DEFAULT"):
        return [f"weights format {op.opt('weights_format')} is not supported (only DEFAULT; TFLM has no shuffled weights)"]
    if len(w.shape) != 2:
        return [f"filter must be 2-D [units, accum_depth], got {list(w.shape)}"]
    if len(y.shape) < 1:
        return ["output must have at least one dimension"]
    batches, depth, units = _rows(op, graph)
    if units != w.shape[0]:
        return [f"output depth {units} does not match the filter's {w.shape[0]} units"]
    if depth < 1 or x.size != batches * depth:
        return [f"input of {x.size} values is not {batches} rows of accum_depth {depth}"]
    if b is not None and b.size != units:
        return [f"bias has {b.size} values for {units} units"]
    if w.quant is None:
        return ["filter has no quantization parameters"]
    if w.quant.per_channel:
        if w.quant.axis != 0 or len(w.quant.scale) != units:
            return [f"per-channel filter quantization must have {units} scales along axis 0"]
        if any(z != 0 for z in w.quant.zero_point):
            return ["per-channel filter must be symmetric (zero point 0; TFLM ignores per-channel zero points)"]
    else:
        if not -128 <= w.quant.zp <= 127:
            return [f"filter zero point {w.quant.zp} is outside the int8 range"]
        problems = _bias_scale_problems(x, w, b, y)
        if problems:
            return problems
    # The C kernel's int32 partial sums (w.x, filter_offset * sum(x), and TFLM's (w - zp_w)(x - zp_x)) must not overflow.
    fo = -(w.quant.zp if not w.quant.per_channel else 0)
    wd = w.data.astype(np.int64)
    bound = max(int(np.abs(wd).sum(axis=1).max()) * 255, int(np.abs(wd + fo).sum(axis=1).max()) * 255, abs(fo) * depth * 128)
    if bound > INT32_MAX:
        return [f"accum_depth {depth} is too large for an int32 accumulator with these weights"]
    return []


def _bias_scale_problems(x, w, b, y) -> list[str]:
    """GetQuantizedConvolutionMultipler (per-tensor filters only) refuses a bias whose scale is not within 2% of
    the output scale of in_s * w_s (in double): such a bias was quantized for another layer."""
    if b is None:
        return []
    bias_scale = b.quant.s if b.quant is not None else 0.0
    product = float(np.float64(x.quant.s) * np.float64(w.quant.s))
    if abs(product - bias_scale) / y.quant.s > 0.02:
        return [f"bias scale {bias_scale:g} does not match input scale * filter scale {product:g} (TFLM refuses it)"]
    return []


def _multipliers(x, w, y, units: int, rounding: Rounding) -> tuple[np.ndarray, np.ndarray]:
    """double(in) * double(w_i) / double(out), per channel or per tensor (a per-tensor scale is broadcast
    and then one multiplier kept). The TFLM source computes the per-tensor product in float32, but the
    tflite-micro build kwsgen is checked against takes it in double: where the two differ (rounding ties)
    the oracle follows double (tests/test_op_fully_connected.py::test_per_tensor_multiplier_follows_the_oracle)."""
    mult, shift = per_channel_multipliers(x.quant.s, w.quant.scales(units), y.quant.s, rounding)
    return (mult, shift) if w.quant.per_channel else (mult[:1], shift[:1])


def vector_sum_s8(cols: int, rows: int, weights: np.ndarray, lhs_offset: int, rhs_offset: int,
                  bias: np.ndarray | None) -> np.ndarray:
    """CMSIS-NN v7.0.0 arm_vector_sum_s8 (the MVE kernel sums), in int32 wrapping arithmetic.

    buf[r] = bias[r] + lhs_offset * (sum_c w[r, c] + cols * rhs_offset); nothing but the bias when lhs_offset is 0.
    """
    buf = np.zeros(rows, np.int64) if bias is None else np.asarray(bias, np.int64).ravel().copy()
    if lhs_offset:
        s = np.asarray(weights, np.int64).reshape(rows, cols).sum(axis=1)  # |s| <= 128 * cols: exact
        if rhs_offset:
            s = wrap32(s + wrap32(np.int64(cols) * rhs_offset))
        buf = wrap32(buf + wrap32(s * lhs_offset))
    return wrap32(buf).astype(np.int32)


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> FcParams:
    x, w, b, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_in(op, graph, 2), tensor_out(op, graph)
    batches, depth, units = _rows(op, graph)
    mult, shift = _multipliers(x, w, y, units, rounding)
    filter_zp = 0 if w.quant.per_channel else w.quant.zp
    lo, hi = act_range(op, y)
    # fold = bias + in_offset * sum_d (w + filter_offset): everything of sum (w + fo)(x + io) + bias that is constant.
    fold = vector_sum_s8(depth, units, w.data, -x.quant.zp, -filter_zp, None if b is None else b.data)
    return FcParams(batches, depth, units, x.quant.zp, filter_zp, y.quant.zp, lo, hi, w.quant.per_channel, mult, shift, fold)


@per_layer
def _reference_constants(op: Operator, graph: Graph, p: FcParams, rounding: Rounding) -> tuple[ExactMatmul, RequantS8]:
    """The product with filter + filter offset and the output stage, whose fold holds the bias and the
    input offset's share: sum (x - in_zp) * wf + bias = (sum x * wf) + fold, constant per row as in C."""
    w, b = tensor_in(op, graph, 1).data, tensor_in(op, graph, 2)
    wf = w.reshape(p.out_depth, p.accum_depth).astype(np.int64) - p.filter_zp
    fold = (0 if b is None else b.data.astype(np.int64).ravel()) - p.in_zp * wf.sum(axis=1)
    stage = requant_s8(fold, p.multiplier, p.shift, p.out_zp, p.act_min, p.act_max, rounding,
                       acc_bound=128 * np.abs(wf).sum(axis=1), per_sample=p.batches * p.out_depth)
    return exact_matmul_plan(wf.T, 128), stage


def reference(op: Operator, graph: Graph, p: FcParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    y = tensor_out(op, graph)
    n = xs[0].shape[0]
    product, stage = _reference_constants(op, graph, p, rounding)
    x = xs[0].reshape(n, p.batches, p.accum_depth)  # raw int8, |x| <= 128
    out = requantize_s8(product(x), stage)
    return [out.reshape((n,) + y.shape)]


def macs(op: Operator, graph: Graph) -> int:
    batches, depth, units = _rows(op, graph)
    return batches * depth * units


# ---- CMSIS-NN v7.0.0 ----


def uses_conv_1x1(out_rank: int, accum_depth: int) -> bool:
    """TFLM's cmsis_nn/fully_connected.cc runs arm_convolve_1x1_s8_fast when the output rank > 2 and accum_depth % 4 == 0."""
    return out_rank > 2 and accum_depth % 4 == 0


def fc_buffer_bytes(isa: str, out_depth: int) -> int:
    """arm_fully_connected_s8_get_buffer_size{_dsp,_mve}: MVE kernels want one int32 kernel sum per row."""
    return out_depth * 4 if isa == "mve" else 0


def conv_1x1_fast_buffer_bytes(isa: str, in_c: int) -> int:
    """arm_convolve_1x1_s8_fast_get_buffer_size: non-zero only for DSP under Arm Compiler 6, so 0 with GCC."""
    return 0


def cmsis_scratch_bytes(isa: str, out_rank: int, accum_depth: int, out_depth: int) -> int:
    """What the CMSIS-NN getter of the kernel TFLM picks for this layer returns (GCC build)."""
    if uses_conv_1x1(out_rank, accum_depth):
        return conv_1x1_fast_buffer_bytes(isa, accum_depth)
    return fc_buffer_bytes(isa, out_depth)


def _cmsis_ok(p: FcParams) -> bool:
    """CMSIS-NN documents filter_offset 0 and its 1x1 conv has none: asymmetric filters stay portable."""
    return p.filter_zp == 0


def scratch(op: Operator, graph: Graph, p: FcParams, target: EmitTarget) -> int:
    # The MVE kernel sums depend only on constants, so emit() stores them in flash (as TFLM does with
    # KERNELS_OPTIMIZED_FOR_SPEED): no arena scratch on any ISA.
    return 0


def emit(ctx: "EmitContext") -> "Emitted":
    op, graph, p = ctx.op, ctx.model.graph, ctx.params
    y = tensor_out(op, graph)
    d = dict(batches=p.batches, depth=p.accum_depth, units=p.out_depth)
    bias = "NULL" if ctx.input_tensor(2) is None else ctx.weights(2)  # the bias input may be absent or left out
    if ctx.target.kernels == "cmsis-nn" and _cmsis_ok(p):
        extra = (-p.out_depth) % 4  # MVE requantization loads 4 multipliers/shifts at a time
        if uses_conv_1x1(len(y.shape), p.accum_depth):
            # The 1x1 conv is per-channel only: a per-tensor multiplier is broadcast (TFLM does it in scratch at run time).
            mult_v = np.broadcast_to(p.multiplier, (p.out_depth,))
            shift_v = np.broadcast_to(p.shift, (p.out_depth,))
            pad = np.zeros(extra, np.int32)
            mult = ctx.const("mult", np.concatenate([mult_v, pad]), "int32_t", 16, f"layer {ctx.step} per-row multipliers")
            shift = ctx.const("shift", np.concatenate([shift_v, pad]), "int32_t", 16, f"layer {ctx.step} per-row shifts")
            return ctx.cmsis(d=d, path="conv_1x1", mult=mult, shift=shift, sums="NULL", bias=bias)
        mult = ctx.const("mult", p.multiplier, "int32_t", 4, f"layer {ctx.step} multipliers")
        shift = ctx.const("shift", p.shift, "int32_t", 4, f"layer {ctx.step} shifts")
        sums = "NULL"
        if ctx.target.isa == "mve":  # arm_vector_sum_s8 of constants, precomputed bit for bit
            sums = ctx.const("kernel_sums", p.fold, "int32_t", 16, f"layer {ctx.step} arm_vector_sum_s8 kernel sums")
        return ctx.cmsis(d=d, path="fc", mult=mult, shift=shift, sums=sums, bias=bias)
    mult = ctx.const("mult", p.multiplier, "int32_t", 4, f"layer {ctx.step} multipliers")
    shift = ctx.const("shift", p.shift, "int32_t", 4, f"layer {ctx.step} shifts")
    fold = ctx.const("fold", p.fold, "int32_t", 4, f"layer {ctx.step} bias + input offset * filter row sums")
    filt = ctx.const("filter_blocks", blocked_rows(ctx.input_tensor(1).data.reshape(p.out_depth, p.accum_depth)),
                     "int8_t", 4, f"layer {ctx.step} filter rows in blocks of 8 (then 4), [accum_depth][block]")
    return ctx.portable(d=d, mult=mult, shift=shift, fold=fold, filt=filt)


def blocked_rows(w: np.ndarray) -> np.ndarray:
    """Filter [units, depth] -> blocks of 8 units, each [depth][8], then blocks of 4, each [depth][4]
    (the last zero-padded): the order in which the portable kernel walks them."""
    units, depth = w.shape
    blocks = []
    u = 0
    while u < units:
        size = 8 if units - u >= 8 else 4
        block = np.zeros((size, depth), np.int8)
        block[: min(size, units - u)] = w[u : u + size]
        blocks.append(block.T.ravel())
        u += size
    return np.concatenate(blocks) if blocks else np.zeros(0, np.int8)


register(OpDef("FULLY_CONNECTED", check, reference, prepare, macs, emit, scratch, template="fully_connected"))
