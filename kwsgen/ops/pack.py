"""PACK (stack N equal-shaped tensors along a new axis) and UNPACK (its inverse, N outputs).

TFLM semantics that matter (pack.cc, unpack.cc):
- A negative axis wraps once: PACK by the *output* rank, UNPACK by the input rank.
- PACK loops over `values_count` inputs and UNPACK over `num` outputs, taking sizes from the output
  (PACK) or input (UNPACK) shape; nothing is validated at run time, so kwsgen checks the counts and shapes.
- Bytes are copied without rescaling and TFLM never compares quantization: kwsgen requires equal scale and
  zero point on every packed/unpacked tensor (a mismatch would silently change the values' meaning).
- PACK also runs at compile time on int32/int64 shape vectors (dynamic-batch exports: SHAPE ->
  STRIDED_SLICE -> PACK -> RESHAPE), which legalize folds with this reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoint import Rounding
from ..ir import Graph, Operator
from . import OpDef, register
from ._common import (
    CopyPlan,
    copy_plan,
    data_tensor_problems,
    normalize_axis,
    share_plans,
    tensor_in,
    tensor_out,
    use_copy_kernel,
)


@dataclass(frozen=True)
class PackParams:
    axis: int  # normalised axis of the packed (higher-rank) tensor, without the batch axis
    count: int  # tensors packed / unpacked
    plans: tuple[CopyPlan, ...]  # PACK: one per input; UNPACK: one per output


def _stack_plans(packed: tuple[int, ...], axis: int, pack: bool) -> tuple[CopyPlan, ...]:
    """Slice i of the packed tensor along `axis` <-> the i-th unpacked tensor: `outer` runs of `inner` elements."""
    outer = int(np.prod(packed[:axis], dtype=np.int64))
    inner = int(np.prod(packed[axis + 1 :], dtype=np.int64))
    n = packed[axis]
    plans = []
    for i in range(n):
        if pack:
            plans.append(copy_plan((outer, inner), (inner, 1), (n * inner, 1), out_offset=i * inner))
        else:
            plans.append(copy_plan((outer, inner), (n * inner, 1), (inner, 1), in_offset=i * inner))
    return tuple(plans)


def check_pack(op: Operator, graph: Graph) -> list[str]:
    if not op.inputs or len(op.outputs) != 1:
        return [f"expects at least one input and 1 output, has {len(op.inputs)} and {len(op.outputs)}"]
    xs = [tensor_in(op, graph, i) for i in range(len(op.inputs))]
    y = tensor_out(op, graph)
    problems = []
    for i, x in enumerate(xs):
        problems += data_tensor_problems(x, y, f"input {i}", "output")
    n = op.opt("values_count", len(xs))
    if n != len(xs):
        problems.append(f"values_count is {n} but the operator has {len(xs)} inputs")
    if problems:
        return problems
    if any(x.shape != xs[0].shape for x in xs):
        return [f"inputs must all have the same shape, got {[list(x.shape) for x in xs]}"]
    bad, axis = normalize_axis(op.opt("axis", 0), len(xs[0].shape) + 1)
    if bad:
        return bad
    expect = xs[0].shape[:axis] + (len(xs),) + xs[0].shape[axis:]
    if tuple(y.shape) != expect:
        return [f"output shape {list(y.shape)} does not match packing along axis {axis} ({list(expect)})"]
    return []


def check_unpack(op: Operator, graph: Graph) -> list[str]:
    if len(op.inputs) != 1 or not op.outputs:
        return [f"expects 1 input and at least one output, has {len(op.inputs)} and {len(op.outputs)}"]
    x = tensor_in(op, graph, 0)
    outs = [tensor_out(op, graph, i) for i in range(len(op.outputs))]
    problems = []
    for i, y in enumerate(outs):
        problems += data_tensor_problems(x, y, "input", f"output {i}")
    if problems:
        return problems
    bad, axis = normalize_axis(op.opt("axis", 0), len(x.shape))
    if bad:
        return bad
    n = op.opt("num", len(outs))
    if not n == len(outs) == x.shape[axis]:
        return [f"num is {n}, the operator has {len(outs)} outputs and axis {axis} has size {x.shape[axis]}: they must agree"]
    expect = x.shape[:axis] + x.shape[axis + 1 :]
    if any(tuple(y.shape) != expect for y in outs):
        return [f"outputs {[list(y.shape) for y in outs]} do not match unpacking along axis {axis} ({list(expect)})"]
    return []


def prepare_pack(op: Operator, graph: Graph, rounding: Rounding) -> PackParams:
    shape = tensor_in(op, graph, 0).shape
    n = len(op.inputs)
    axis = op.opt("axis", 0)
    axis = axis + len(shape) + 1 if axis < 0 else axis
    packed = shape[:axis] + (n,) + shape[axis:]
    return PackParams(axis, n, _stack_plans(packed, axis, pack=True))


def prepare_unpack(op: Operator, graph: Graph, rounding: Rounding) -> PackParams:
    shape = tensor_in(op, graph, 0).shape
    axis = op.opt("axis", 0)
    axis = axis + len(shape) if axis < 0 else axis
    return PackParams(axis, shape[axis], _stack_plans(shape, axis, pack=False))


def reference_pack(op: Operator, graph: Graph, p: PackParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    return [np.stack(xs, axis=1 + p.axis)]


def reference_unpack(op: Operator, graph: Graph, p: PackParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    return [np.ascontiguousarray(np.take(xs[0], i, axis=1 + p.axis)) for i in range(p.count)]


def emit(ctx) -> "Emitted":
    use_copy_kernel(ctx)
    plans, calls = share_plans(ctx.params.plans)
    return ctx.portable(plans=plans, calls=calls)


register(OpDef("PACK", check_pack, reference_pack, prepare_pack, emit=emit, template="pack"))
register(OpDef("UNPACK", check_unpack, reference_unpack, prepare_unpack, emit=emit, template="pack"))
