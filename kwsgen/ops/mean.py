"""MEAN: int8 reduction over any constant set of axes (TFLM reduce_common.cc EvalMeanHelper, int8 path).

TFLM runs every int8 MEAN through reference_ops::QuantizedMeanOrSum: an int32 sum per output, the
input zero point times the element count subtracted, then one MultiplyByQuantizedMultiplier whose
multiplier `in_s / out_s` (double) has 1/count folded in as TFLM folds it:

    shift = min(floor(log2(count)), 32, 31 + out_shift)
    mult' = (mult << shift) / count        (int64, truncating)
    shift' = out_shift - shift

Everything but the sums is a compile-time constant. For the C kernel the axes are canonicalised
into at most four kept and four reduced (size, stride) loops, so one loop nest serves the spatial
DS-CNN head, keep_dims or not, and any other axis set TFLM accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoint import INT32_MAX, Rounding, mbqm, quantize_multiplier, wrap32
from ..ir import Graph, Operator
from . import OpDef, register
from ._common import check_arity, check_const, check_int8_activation, tensor_in, tensor_out

MAX_LOOPS = 4  # kept and reduced loop depth of the C kernel (enough for rank 8 after merging)
MAX_COUNT = 1 << 24  # int8 sums of up to 2^24 elements cannot overflow int32


@dataclass(frozen=True)
class MeanParams:
    axes: tuple[int, ...]  # resolved, deduplicated, in the order given (TFLM ResolveAxis)
    count: int  # elements averaged into each output
    multiplier: int  # 1/count folded in
    shift: int
    zp_sum: int  # int32 wrap of in_zp * count, subtracted from each sum
    out_zp: int
    outer: tuple[tuple[int, int], ...]  # kept (size, stride) loops, outermost first, padded to MAX_LOOPS
    inner: tuple[tuple[int, int], ...]  # reduced (size, stride) loops


def _axes(op: Operator, graph: Graph) -> tuple[list[str], tuple[int, ...]]:
    """The axis input resolved like TFLM's ResolveAxis (negative axes wrap, duplicates dropped)."""
    x, a = tensor_in(op, graph, 0), tensor_in(op, graph, 1)
    problems = check_const(a, "axis", "int32")  # TFLM: TF_LITE_ENSURE_TYPES_EQ(axis, kTfLiteInt32)
    if problems:
        return problems, ()
    rank = len(x.shape)
    resolved: list[int] = []
    for v in (int(v) for v in np.asarray(a.data).ravel()):
        if not -rank <= v < rank:
            return [f"axis {v} is out of range for a rank-{rank} input"], ()
        v = v + rank if v < 0 else v
        if v not in resolved:
            resolved.append(v)
    return [], tuple(resolved)


def check(op: Operator, graph: Graph) -> list[str]:
    problems = check_arity(op, (2, 2))
    if problems:
        return problems
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    problems = check_int8_activation(x, "input") + check_int8_activation(y, "output")
    if problems:
        return problems
    problems, axes = _axes(op, graph)
    if problems:
        return problems
    if len(x.shape) > 2 * MAX_LOOPS:
        return [f"input rank {len(x.shape)} is above {2 * MAX_LOOPS}"]
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    kept = int(np.prod([d for i, d in enumerate(x.shape) if i not in axes], dtype=np.int64))
    if x.size == 0:
        return ["input is empty"]
    if y.size != kept:
        return [f"output has {y.size} elements; reducing axes {list(axes)} of {list(x.shape)} gives {kept}"]
    if count > MAX_COUNT:
        return [f"averages {count} elements per output; at most {MAX_COUNT} are supported"]
    mult, shift = _folded_multiplier(x.quant.s, y.quant.s, count, Rounding.DOUBLE)
    if shift > 30:
        return [f"input/output scale ratio {x.quant.s / y.quant.s:.3g} is too large for a 32-bit requantization"]
    return []


def _folded_multiplier(in_s: float, out_s: float, count: int, rounding: Rounding) -> tuple[int, int]:
    """PrepareMeanOrSumHelper's multiplier, then QuantizedMeanOrSum's 1/count folding."""
    mult, shift = quantize_multiplier(float(np.float64(in_s) / np.float64(out_s)), rounding)
    s = min(count.bit_length() - 1, 32, 31 + shift)  # 63 - CountLeadingZeros(uint64 count)
    return (mult << s) // count, shift - s


def _loops(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[tuple, tuple]:
    """Kept and reduced (size, stride) loops: size-1 dims dropped, neighbours of one kind merged."""
    strides = [int(np.prod(shape[i + 1 :], dtype=np.int64)) for i in range(len(shape))]
    groups: list[list] = []  # [reduced?, size, stride]
    for i, d in enumerate(shape):
        if d == 1:
            continue
        red = i in axes
        if groups and groups[-1][0] == red:  # row-major neighbours: the outer one's stride is d * inner's
            groups[-1][1] *= d
            groups[-1][2] = strides[i]
        else:
            groups.append([red, d, strides[i]])
    outer = tuple((g[1], g[2]) for g in groups if not g[0])
    inner = tuple((g[1], g[2]) for g in groups if g[0])
    pad = ((1, 0),)  # unused loops go outermost, so the kernel's innermost loop is a real (long) one
    return pad * (MAX_LOOPS - len(outer)) + outer, pad * (MAX_LOOPS - len(inner)) + inner


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> MeanParams:
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    problems, axes = _axes(op, graph)
    if problems:
        raise ValueError(f"{op}: {problems[0]}")
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    mult, shift = _folded_multiplier(x.quant.s, y.quant.s, count, rounding)
    zp_sum = int(wrap32(np.int64(x.quant.zp) * count))
    outer, inner = _loops(x.shape, axes)
    assert mult <= INT32_MAX
    return MeanParams(axes, count, mult, shift, zp_sum, y.quant.zp, outer, inner)


def reference(op: Operator, graph: Graph, p: MeanParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    if xs[0].dtype != np.int8:  # constant folding of another dtype: int8 semantics would be wrong
        raise ValueError(f"{op}: int8 input expected, got {xs[0].dtype}")
    v = xs[0].reshape((-1,) + x.shape)
    sums = v.sum(axis=tuple(a + 1 for a in p.axes), dtype=np.int64)
    shifted = wrap32(sums - p.zp_sum)
    out = wrap32(mbqm(shifted, p.multiplier, p.shift, rounding) + p.out_zp)  # int32 add, as in C
    return [np.clip(out, -128, 127).astype(np.int8).reshape((xs[0].shape[0],) + y.shape)]


def macs(op: Operator, graph: Graph) -> int:
    """One accumulate per input element."""
    return tensor_in(op, graph, 0).size


def emit(ctx) -> "Emitted":
    return ctx.portable()  # CMSIS-NN has no MEAN; TFLM's cmsis_nn build runs the reference kernel too


register(OpDef("MEAN", check, reference, prepare, macs, emit, template="mean"))
