"""SOFTMAX: int8 in, int8 out (scale 1/256, zero point -128) over the last axis (TFLM reference_ops::Softmax).

Per row: the difference to the row maximum is scaled by beta * input_scale into Q5.26
(PreprocessSoftmaxScaling), differences below `diff_min` are dropped, exp() comes from gemmlowp's
exp_on_negative_values, the sum of exps (Q12.19) is inverted with GetReciprocal, and each output is
exp * reciprocal shifted down to 8 bits. TFLM aborts when that final shift leaves [0, 31], which a row
of 512 or more equal values reaches; kwsgen rejects such row lengths at compile time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..fixedpoint import (
    Rounding,
    exp_on_negative_values,
    get_reciprocal,
    mbqm_greater_than_one,
    quantize_multiplier,
    rdbpot,
    rescale,
    srdhm,
    wrap32,
)
from ..ir import Graph, Operator
from . import OpDef, register
from ._common import check_arity, check_int8_activation, tensor_in, tensor_out
from ._conv_math import per_layer

SCALED_DIFF_INTEGER_BITS = 5  # Q5.26 input to exp()
ACCUMULATION_INTEGER_BITS = 12  # Q12.19 sum of exps
MAX_DEPTH = 511  # rows of up to 511 sum below 2^28: the output shift stays <= 31 for every input


@dataclass(frozen=True)
class SoftmaxParams:
    multiplier: int
    left_shift: int
    diff_min: int
    depth: int  # row length (last axis)
    rows: int


def _real_multiplier(op: Operator, in_scale: float, rounding: Rounding) -> float:
    """PreprocessSoftmaxScaling: beta * s_in * 2^26 in double, capped at the largest int32 multiplier."""
    cap = float((1 << 30) - 1) if rounding is Rounding.SINGLE else float((1 << 31) - 1)
    real = float(np.float64(op.opt("beta", 1.0)) * np.float64(in_scale)) * float(1 << (31 - SCALED_DIFF_INTEGER_BITS))
    return min(real, cap)


def check(op: Operator, graph: Graph) -> list[str]:
    problems = check_arity(op, (1, 1))
    if problems:
        return problems
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    problems = check_int8_activation(x, "input")
    if y.dtype != "int8":
        return problems + [f"output is {y.dtype}; kwsgen supports int8 softmax output only"]
    problems += check_int8_activation(y, "output")
    if problems:
        return problems
    if y.quant.zp != -128 or np.float32(y.quant.s) != np.float32(1.0 / 256):
        return ["output must be quantized with scale 1/256 and zero point -128 (TFLM requires it)"]
    if len(x.shape) < 1 or x.shape != y.shape:
        return [f"input {list(x.shape)} and output {list(y.shape)} must have the same shape, rank >= 1"]
    if x.shape[-1] > MAX_DEPTH:
        return [f"rows of {x.shape[-1]} values: TFLM's int8 softmax overflows (aborts) for rows above {MAX_DEPTH}"]
    if not _real_multiplier(op, x.quant.s, Rounding.DOUBLE) > 1.0:
        return ["beta * input scale is at most 2^-26: TFLM cannot quantize the softmax input multiplier"]
    return []


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> SoftmaxParams:
    x = tensor_in(op, graph, 0)
    mult, shift = quantize_multiplier(_real_multiplier(op, x.quant.s, rounding), rounding)
    # CalculateInputRadius(5, left_shift): the largest |diff| whose scaled value still fits Q5.26.
    radius = math.floor((2**SCALED_DIFF_INTEGER_BITS - 1) * 2.0 ** (31 - SCALED_DIFF_INTEGER_BITS) / 2.0**shift)
    depth = x.shape[-1]
    return SoftmaxParams(mult, shift, -radius, depth, x.size // depth)


@per_layer
def _exp_table(op: Operator, graph: Graph, p: SoftmaxParams, rounding: Rounding) -> tuple[np.ndarray, np.ndarray]:
    """exp() in Q0 and its Q12.19 share of the sum (0 when dropped) for every int8 difference max - x (0..255).

    Per element, everything up to the sum depends on that difference alone, so it is computed once per layer.
    """
    diff = -np.arange(256, dtype=np.int64)
    exps = exp_on_negative_values(mbqm_greater_than_one(diff, p.multiplier, p.left_shift, rounding), SCALED_DIFF_INTEGER_BITS)
    shares = np.where(diff >= p.diff_min, rescale(exps, 0, ACCUMULATION_INTEGER_BITS), 0)
    return exps, shares


def reference(op: Operator, graph: Graph, p: SoftmaxParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    y = tensor_out(op, graph)
    if xs[0].dtype != np.int8:  # constant folding of another dtype: int8 semantics would be wrong
        raise ValueError(f"{op}: int8 input expected, got {xs[0].dtype}")
    v = xs[0].reshape(-1, p.depth)
    below_max = v.max(axis=1, keepdims=True).astype(np.int16) - v  # 0..255
    table_exps, table_shares = _exp_table(op, graph, p, rounding)
    exps = table_exps[below_max]
    sums = wrap32(table_shares[below_max].sum(axis=1, keepdims=True))
    scale, bits_over_unit = get_reciprocal(sums, ACCUMULATION_INTEGER_BITS)
    exponent = bits_over_unit + 31 - 8
    assert ((exponent >= 0) & (exponent <= 31)).all(), "softmax output shift out of range (row too long)"
    out = rdbpot(srdhm(scale, exps), exponent) - 128
    out = np.where(-below_max >= p.diff_min, np.clip(out, -128, 127), -128).astype(np.int8)
    return [out.reshape((xs[0].shape[0],) + y.shape)]


def macs(op: Operator, graph: Graph) -> int:
    return tensor_out(op, graph).size


def emit(ctx) -> "Emitted":
    if ctx.target.kernels == "cmsis-nn":  # TFLM's cmsis_nn/softmax.cc: arm_softmax_s8 for int8 -> int8
        return ctx.cmsis()
    return ctx.portable()


register(OpDef("SOFTMAX", check, reference, prepare, macs, emit, template="softmax"))
