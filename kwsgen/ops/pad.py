"""PAD and PADV2 with constant paddings: TFLM pad.cc / reference_ops::Pad.

int8 pads with the output zero point (PAD) or the given scalar (PADV2, whose quantization TFLM
requires to equal the output's). Values are copied without rescaling, so input and output must share
scale and zero point. Up to 5 dimensions (PadKernelMaxDimensionCount); TFLM reads the paddings as
int32 and requires them constant.

At compile time trailing unpadded dimensions are merged into their outer neighbour and unpadded
extent-1 dimensions dropped, so the C kernel fills the output and copies contiguous input rows.
CMSIS-NN's `arm_pad_s8` (what TFLM's cmsis_nn/pad.cc calls) takes 4 dimensions: it is used when the
merged shape has at most 4 (TFLM passes the last 4 of the original rank, which silently drops a
5th; kwsgen uses its portable kernel there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..fixedpoint import Rounding
from ..ir import Graph, Operator
from . import OpDef, register
from ._common import check_arity, check_const, check_int8_activation, check_same_quant, tensor_in, tensor_out

if TYPE_CHECKING:  # pragma: no cover
    from ..codegen import Emitted

MAX_RANK = 5
CMSIS_RANK = 4


@dataclass(frozen=True)
class PadParams:
    before: tuple[int, ...]  # per dimension of the input
    after: tuple[int, ...]
    value: int | float  # the pad value in the tensor's own type
    in_shape: tuple[int, ...]  # merged: see `merge_dims`
    merged_before: tuple[int, ...]
    merged_after: tuple[int, ...]


def paddings(op: Operator, graph: Graph) -> tuple[tuple[int, ...], tuple[int, ...]]:
    pads = np.asarray(tensor_in(op, graph, 1).data).reshape(-1, 2)
    return tuple(int(v) for v in pads[:, 0]), tuple(int(v) for v in pads[:, 1])


def merge_dims(shape, before, after) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """An equivalent padding of fewer dimensions (row-major layouts of input and output unchanged).

    A dimension with no padding is merged into its outer neighbour (both are contiguous in input
    and output alike, so the outer padding just scales by its extent); an unpadded extent-1
    dimension is dropped.
    """
    dims: list[list[int]] = []  # [extent, before, after], innermost first
    for d, b, a in zip(reversed(shape), reversed(before), reversed(after)):
        if dims and dims[-1][1] == 0 and dims[-1][2] == 0:
            inner = dims[-1][0]
            dims[-1] = [d * inner, b * inner, a * inner]
        elif d == 1 and b == 0 and a == 0:
            continue
        else:
            dims.append([d, b, a])
    if not dims:
        dims = [[1, 0, 0]]
    dims.reverse()
    return tuple(d[0] for d in dims), tuple(d[1] for d in dims), tuple(d[2] for d in dims)


def check(op: Operator, graph: Graph) -> list[str]:
    problems = check_arity(op, (2, 3))
    if problems:
        return problems
    x, pads, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_out(op, graph)
    value = tensor_in(op, graph, 2)
    problems = check_int8_activation(x, "input") + check_int8_activation(y, "output")
    problems += check_const(pads, "paddings", "int32")
    if value is not None:
        problems += check_const(value, "constant value", "int8")
    if problems:
        return problems
    problems = check_same_quant(x, y, "output")
    if value is not None:
        if value.size != 1:
            problems.append(f"constant value must be a scalar, has {value.size} elements")
        elif value.quant is None or value.quant.scale != y.quant.scale or value.quant.zero_point != y.quant.zero_point:
            problems.append("constant value must have the output's scale and zero point (TFLM requires it)")
    if problems:
        return problems
    if len(x.shape) > MAX_RANK:
        return [f"input has rank {len(x.shape)}; PAD supports up to {MAX_RANK} dimensions"]
    if pads.size != 2 * len(y.shape) or len(x.shape) != len(y.shape):
        return [f"paddings has {pads.size} values for a rank-{len(y.shape)} output (expects {2 * len(y.shape)})"]
    before, after = paddings(op, graph)
    if min(before + after) < 0:
        return ["negative paddings are not supported"]
    expect = tuple(d + b + a for d, b, a in zip(x.shape, before, after))
    if tuple(y.shape) != expect:
        return [f"output shape {list(y.shape)} does not match the paddings ({list(expect)})"]
    return []


def _pad_value(op: Operator, graph: Graph):
    """PADV2's scalar, else the output zero point for int8 and zero for other types (TFLM PadEval)."""
    value, y = tensor_in(op, graph, 2), tensor_out(op, graph)
    if value is not None:
        v = np.asarray(value.data).reshape(-1)[0]
        return v.item()
    if y.dtype == "int8" and y.quant is not None:
        return y.quant.zp
    return 0


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> PadParams:
    x = tensor_in(op, graph, 0)
    before, after = paddings(op, graph)
    merged = merge_dims(x.shape, before, after)
    return PadParams(before, after, _pad_value(op, graph), *merged)


def reference(op: Operator, graph: Graph, p: PadParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    y = tensor_out(op, graph)
    x = np.asarray(xs[0])
    widths = [(0, 0)] + list(zip(p.before, p.after))
    out = np.pad(x, widths, mode="constant", constant_values=np.array(p.value).astype(x.dtype))
    return [out.astype(y.dtype, copy=False)]


def emit(ctx) -> Emitted:
    p: PadParams = ctx.params
    if ctx.target.kernels == "cmsis-nn" and len(p.in_shape) <= CMSIS_RANK:
        lead = CMSIS_RANK - len(p.in_shape)
        dims = {
            "size": (1,) * lead + p.in_shape,
            "before": (0,) * lead + p.merged_before,
            "after": (0,) * lead + p.merged_after,
        }
        return ctx.cmsis(d=dims)
    return ctx.portable(d=portable_dims(p, tensor_out(ctx.op, ctx.model.graph).size))


def portable_dims(p: PadParams, out_size: int) -> dict:
    """The portable kernel's view: merged input extents, output strides, where the input starts."""
    out_shape = [d + b + a for d, b, a in zip(p.in_shape, p.merged_before, p.merged_after)]
    strides = [int(np.prod(out_shape[i + 1 :], dtype=np.int64)) for i in range(len(out_shape))]
    start = sum(b * s for b, s in zip(p.merged_before, strides))
    return {"rank": len(p.in_shape), "in_shape": p.in_shape, "out_stride": strides, "out_start": start, "out_size": out_size}


def _register() -> None:
    for kind in ("PAD", "PADV2"):
        register(OpDef(kind, check, reference, prepare, emit=emit, template="pad"))


_register()
