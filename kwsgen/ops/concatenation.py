"""CONCATENATION: TFLM concatenation.cc / reference_ops::Concatenation.

TFLM's int8 kernel copies bytes without rescaling and its Prepare requires every input to have the
output's scale and zero point, and no fused activation; kwsgen checks the same. Any axis, negative
ones counted from the output rank. Constant inputs (e.g. a learned token) are copied from flash.

Viewed as [outer, axis * inner] per input, the output is, for each outer index, the inputs' rows
one after another: the C kernel is one memcpy per input per outer index. TFLM does not call
CMSIS-NN for it (there is no cmsis_nn/concatenation.cc), so neither does kwsgen.
int32/int64/float32/bool inputs are handled by the reference for compile-time folding only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..fixedpoint import Rounding
from ..ir import Graph, Operator
from . import OpDef, register
from ._common import check_int8_activation, tensor_in, tensor_out

if TYPE_CHECKING:  # pragma: no cover
    from ..codegen import Emitted


@dataclass(frozen=True)
class ConcatParams:
    axis: int  # non-negative
    outer: int  # product of the dimensions before the axis
    rows: tuple[int, ...]  # per input: elements copied per outer index


def _axis(op: Operator, rank: int) -> int:
    axis = int(op.opt("axis", 0))
    return axis + rank if axis < 0 else axis


def check(op: Operator, graph: Graph) -> list[str]:
    if not op.inputs or len(op.outputs) != 1:
        return ["expects at least one input and one output"]
    y = tensor_out(op, graph)
    xs = [tensor_in(op, graph, i) for i in range(len(op.inputs))]
    problems = check_int8_activation(y, "output")
    for i, x in enumerate(xs):
        problems += check_int8_activation(x, f"input {i}")
    if op.opt("fused_activation_function", "NONE") != "NONE":
        problems.append("fused activation must be NONE (TFLM requires it)")
    if problems:
        return problems
    for i, x in enumerate(xs):
        if x.quant.scale != y.quant.scale or x.quant.zero_point != y.quant.zero_point:
            problems.append(
                f"input {i} (scale {x.quant.s:g}, zero point {x.quant.zp}) must have the output's scale {y.quant.s:g} "
                f"and zero point {y.quant.zp}: TFLM's int8 concatenation copies without rescaling"
            )
    if problems:
        return problems
    rank = len(y.shape)
    axis = _axis(op, rank)
    if not 0 <= axis < rank:
        return [f"axis {op.opt('axis', 0)} is out of range for a rank-{rank} output"]
    for i, x in enumerate(xs):
        if len(x.shape) != rank or any(a != b for k, (a, b) in enumerate(zip(x.shape, y.shape)) if k != axis):
            return [f"input {i} shape {list(x.shape)} does not match output shape {list(y.shape)} off axis {axis}"]
    if sum(x.shape[axis] for x in xs) != y.shape[axis]:
        return [f"inputs' extents along axis {axis} do not add up to the output's {y.shape[axis]}"]
    return []


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> ConcatParams:
    y = tensor_out(op, graph)
    axis = _axis(op, len(y.shape))
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    rows = tuple(int(np.prod(tensor_in(op, graph, i).shape[axis:], dtype=np.int64)) for i in range(len(op.inputs)))
    return ConcatParams(axis, outer, rows)


def reference(op: Operator, graph: Graph, p: ConcatParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    y = tensor_out(op, graph)
    parts = [np.asarray(x).astype(y.dtype, copy=False) for x in xs]
    return [np.concatenate(parts, axis=p.axis + 1)]  # +1: the leading batch axis


def emit(ctx) -> Emitted:
    return ctx.portable(inputs=[ctx.inp(i) for i in range(len(ctx.op.inputs))])


register(OpDef("CONCATENATION", check, reference, prepare, emit=emit, template="concatenation"))
