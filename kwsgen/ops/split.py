"""SPLIT (inputs: axis, data) and SPLIT_V (inputs: data, size_splits, axis): several outputs.

TFLM semantics that matter (split.cc, split_v.cc):
- The axis must be a constant; it is read as int32 and wrapped once if negative.
- The run each output receives comes from the *output tensors' shapes* (SPLIT uses output 0's shape for
  every output; SPLIT_V ignores size_splits entirely). TFLM checks none of this at run time, so kwsgen
  checks that the declared shapes tile the input exactly and, for SPLIT_V, agree with a constant size_splits.
- Bytes are copied without rescaling and TFLM never compares quantization: kwsgen requires every output to
  carry the input's scale and zero point (a mismatch would silently change the values' meaning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoint import Rounding
from ..ir import Graph, Operator
from . import OpDef, register
from ._common import (
    CopyPlan,
    const_ints,
    copy_plan,
    data_tensor_problems,
    normalize_axis,
    share_plans,
    tensor_in,
    tensor_out,
    use_copy_kernel,
)


@dataclass(frozen=True)
class SplitParams:
    data_input: int  # which op input holds the data (SPLIT: 1, SPLIT_V: 0)
    axis: int  # normalised, in the tensor's own dims (no batch axis)
    sizes: tuple[int, ...]  # extent of each output along the axis
    plans: tuple[CopyPlan, ...]  # one per output


def _layout(op: Operator) -> tuple[int, int]:
    """(data input, axis input) positions."""
    return (1, 0) if op.kind == "SPLIT" else (0, 2)


def _axis_value(op: Operator, graph: Graph) -> int:
    return int(np.asarray(tensor_in(op, graph, _layout(op)[1]).data).ravel()[0])


def split_plans(shape: tuple[int, ...], axis: int, sizes: tuple[int, ...]) -> tuple[CopyPlan, ...]:
    """Output i = input[..., off_i : off_i + size_i, ...]: `outer` runs of size_i * inner contiguous elements."""
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    plans, offset = [], 0
    for size in sizes:
        plans.append(copy_plan((outer, size * inner), (shape[axis] * inner, 1), (size * inner, 1), in_offset=offset * inner))
        offset += size
    return tuple(plans)


def _resolve_size_splits(values: tuple[int, ...], dim: int) -> tuple[list[str], tuple[int, ...]]:
    """size_splits with at most one -1 (the remainder), as TFLite defines it."""
    unknown = [i for i, v in enumerate(values) if v == -1]
    if len(unknown) > 1 or any(v < -1 for v in values):
        return [f"size_splits {list(values)} may hold only one -1 and no other negative value"], ()
    if unknown:
        rest = dim - sum(v for v in values if v != -1)
        if rest < 0:
            return [f"size_splits {list(values)} exceed the axis size {dim}"], ()
        values = values[: unknown[0]] + (rest,) + values[unknown[0] + 1 :]
    if sum(values) != dim:
        return [f"size_splits {list(values)} do not add up to the axis size {dim}"], ()
    return [], values


def check(op: Operator, graph: Graph) -> list[str]:
    n_in = 2 if op.kind == "SPLIT" else 3
    if len(op.inputs) != n_in or not op.outputs:
        return [f"expects {n_in} inputs and at least one output, has {len(op.inputs)} and {len(op.outputs)}"]
    data_i, axis_i = _layout(op)
    x = tensor_in(op, graph, data_i)
    outs = [tensor_out(op, graph, i) for i in range(len(op.outputs))]
    problems = []
    for i, y in enumerate(outs):
        problems += data_tensor_problems(x, y, "input", f"output {i}")
    axis_problems, axis_values = const_ints(tensor_in(op, graph, axis_i), "axis", 1)
    problems += axis_problems
    n = op.opt("num_splits")
    if n is not None and n != len(outs):
        problems.append(f"num_splits is {n} but the operator has {len(outs)} outputs")
    if problems:
        return problems
    bad, axis = normalize_axis(axis_values[0], len(x.shape))
    if bad:
        return bad
    if any(len(y.shape) != len(x.shape) or any(y.shape[a] != x.shape[a] for a in range(len(x.shape)) if a != axis) for y in outs):
        return [f"outputs {[list(y.shape) for y in outs]} must match the input {list(x.shape)} except along axis {axis}"]
    sizes = tuple(y.shape[axis] for y in outs)
    dim = x.shape[axis]
    if op.kind == "SPLIT":
        if dim % len(outs) or any(s != dim // len(outs) for s in sizes):
            return [f"axis {axis} of size {dim} does not split evenly into the {len(outs)} outputs {[list(y.shape) for y in outs]}"]
        return []
    if sum(sizes) != dim:
        return [f"output sizes {list(sizes)} along axis {axis} do not add up to the input's {dim}"]
    splits = tensor_in(op, graph, 1)
    if splits is not None and splits.is_const:  # TFLM never reads it; a constant one must still agree
        values = tuple(int(v) for v in np.asarray(splits.data).ravel())
        bad = [] if len(values) == len(outs) else [f"size_splits has {len(values)} values for {len(outs)} outputs"]
        if not bad:
            bad, values = _resolve_size_splits(values, dim)
        if bad:
            return bad
        if values != sizes:
            return [f"size_splits {list(values)} disagree with the output shapes ({list(sizes)} along axis {axis})"]
    return []


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> SplitParams:
    data_i, _ = _layout(op)
    shape = tensor_in(op, graph, data_i).shape
    axis = _axis_value(op, graph)
    axis = axis + len(shape) if axis < 0 else axis
    if op.kind == "SPLIT":  # TFLM: every output gets output 0's extent
        sizes = (tensor_out(op, graph, 0).shape[axis],) * len(op.outputs)
    else:
        sizes = tuple(tensor_out(op, graph, i).shape[axis] for i in range(len(op.outputs)))
    return SplitParams(data_i, axis, sizes, split_plans(shape, axis, sizes))


def reference(op: Operator, graph: Graph, p: SplitParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    x = xs[p.data_input]
    cuts = np.cumsum(p.sizes)[:-1]
    return [np.ascontiguousarray(part) for part in np.split(x, cuts, axis=1 + p.axis)]


def emit(ctx) -> "Emitted":
    use_copy_kernel(ctx)
    plans, calls = share_plans(ctx.params.plans)
    return ctx.portable(plans=plans, calls=calls)


for _kind in ("SPLIT", "SPLIT_V"):
    register(OpDef(_kind, check, reference, prepare, emit=emit, template="split"))
