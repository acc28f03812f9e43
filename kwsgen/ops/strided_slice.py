"""STRIDED_SLICE with constant begin/end/strides (TFLM strided_slice.cc + strided_slice_logic.h).

TFLM semantics that matter:
- Prepare accepts ranks up to 4 and needs constant int32 begin/end/strides; it builds its parameters with
  ellipsis_mask = new_axis_mask = 0 and offset = false whatever the model says. A model using those options
  would get a different slice from TFLM than from TensorFlow, so kwsgen rejects them instead of guessing.
- The kernel's per-axis bounds (StridedSliceStartForAxis/EndForAxis): negative indices wrap once, then clamp
  to [0, size] (stride > 0) or [-1, size - 1] (stride < 0); begin_mask/end_mask override after clamping.
- A shrunk axis copies [start, start + 1) only when start < size and the stride is positive; otherwise
  TFLM writes nothing and leaves the output uninitialised, so kwsgen rejects those cases.
- Bytes are copied without rescaling; TFLM never compares quantization (see `data_tensor_problems`).
The reference also runs at compile time on int32/int64/float32 shape arithmetic (legalize folding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoint import Rounding
from ..ir import Graph, Operator
from . import OpDef, register
from ._common import (
    CopyPlan,
    check_copy_plan,
    const_ints,
    contiguous_strides,
    copy_plan,
    data_tensor_problems,
    tensor_in,
    tensor_out,
)

TFLM_MAX_RANK = 4  # strided_slice_common.cc kMaxDim


@dataclass(frozen=True)
class SliceParams:
    starts: tuple[int, ...]  # per input axis: first index read
    stops: tuple[int, ...]  # exclusive bound in the stride's direction
    strides: tuple[int, ...]
    counts: tuple[int, ...]  # elements taken per input axis (shrunk axes: 1)
    out_shape: tuple[int, ...]  # counts without the shrunk axes
    plan: CopyPlan


def _bit(mask: int, axis: int) -> bool:
    return bool(mask >> axis & 1)


def axis_start(size: int, begin: int, stride: int, begin_masked: bool) -> int:
    """TFLM StridedSliceStartForAxis."""
    start = begin + size if begin < 0 else begin
    start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
    if begin_masked:
        start = 0 if stride > 0 else size - 1
    return start


def axis_stop(size: int, start: int, end: int, stride: int, end_masked: bool, shrink: bool) -> int:
    """TFLM StridedSliceEndForAxis (offset is always false in TFLM)."""
    if shrink:
        return start if start >= size else start + 1
    stop = end + size if end < 0 else end
    stop = min(max(stop, 0), size) if stride > 0 else min(max(stop, -1), size - 1)
    if end_masked:
        stop = size if stride > 0 else -1
    return stop


def _masks(op: Operator) -> tuple[int, int, int]:
    return op.opt("begin_mask", 0) or 0, op.opt("end_mask", 0) or 0, op.opt("shrink_axis_mask", 0) or 0


def _indices(graph: Graph, op: Operator) -> tuple[list[int], list[int], list[int]]:
    return [[int(v) for v in np.asarray(tensor_in(op, graph, i).data).ravel()] for i in (1, 2, 3)]


def slice_bounds(shape: tuple[int, ...], begin, end, strides, begin_mask: int, end_mask: int, shrink_mask: int):
    """Per axis (start, stop, stride, count, shrink) exactly as TFLM's kernel iterates."""
    axes = []
    for a, size in enumerate(shape):
        shrink = _bit(shrink_mask, a)
        start = axis_start(size, begin[a], strides[a], _bit(begin_mask, a))
        stop = axis_stop(size, start, end[a], strides[a], _bit(end_mask, a), shrink)
        axes.append((start, stop, strides[a], len(range(start, stop, strides[a])), shrink))
    return axes


def check(op: Operator, graph: Graph) -> list[str]:
    if len(op.inputs) != 4 or len(op.outputs) != 1:
        return [f"expects 4 inputs (input, begin, end, strides) and 1 output, has {len(op.inputs)} and {len(op.outputs)}"]
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    problems = data_tensor_problems(x, y)
    if problems:
        return problems
    rank = len(x.shape)
    if not 1 <= rank <= TFLM_MAX_RANK:
        return [f"input rank {rank} is not supported (TFLM slices ranks 1..{TFLM_MAX_RANK})"]
    for i, name in ((1, "begin"), (2, "end"), (3, "strides")):
        problems += const_ints(tensor_in(op, graph, i), name, rank)[0]
    for name in ("ellipsis_mask", "new_axis_mask"):
        if op.opt(name, 0):
            problems.append(f"{name} {op.opt(name)} is not supported (TFLM ignores it and would compute a different slice)")
    if op.opt("offset", False):
        problems.append("offset=true is not supported (TFLM ignores it and would compute a different slice)")
    if problems:
        return problems
    begin, end, strides = _indices(graph, op)
    if any(s == 0 for s in strides):
        return ["stride value has to be non-zero"]
    expect = []
    for a, (start, _, stride, count, shrink) in enumerate(slice_bounds(x.shape, begin, end, strides, *_masks(op))):
        if shrink and stride < 0:
            problems.append(f"axis {a}: shrink_axis_mask with a negative stride (TFLM copies nothing)")
        elif shrink and count != 1:
            problems.append(f"axis {a}: shrink index {begin[a]} is out of range for size {x.shape[a]} (TFLM copies nothing)")
        elif not shrink:
            expect.append(count)
    if problems:
        return problems
    if tuple(y.shape) != tuple(expect):
        return [f"output shape {list(y.shape)} does not match the slice ({expect})"]
    return check_copy_plan(prepare(op, graph, Rounding.DOUBLE).plan)


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> SliceParams:
    shape = tensor_in(op, graph, 0).shape
    begin, end, strides = _indices(graph, op)
    axes = slice_bounds(shape, begin, end, strides, *_masks(op))
    starts, stops, steps, counts, shrinks = (tuple(v) for v in zip(*axes)) if axes else ((),) * 5
    in_strides = contiguous_strides(shape)
    plan = copy_plan(
        counts,
        [s * st for s, st in zip(steps, in_strides)],
        contiguous_strides(counts),
        in_offset=sum(s * st for s, st in zip(starts, in_strides)),
    )
    out_shape = tuple(c for c, shrink in zip(counts, shrinks) if not shrink)
    return SliceParams(starts, stops, steps, counts, out_shape, plan)


def reference(op: Operator, graph: Graph, p: SliceParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    x = xs[0]
    picks = [np.arange(s, e, st) for s, e, st in zip(p.starts, p.stops, p.strides)]
    out = x[(slice(None),) + np.ix_(*picks)] if picks else np.array(x)
    return [np.ascontiguousarray(out).reshape((x.shape[0],) + p.out_shape)]


def emit(ctx) -> "Emitted":
    return ctx.portable(plan=ctx.params.plan)


register(OpDef("STRIDED_SLICE", check, reference, prepare, emit=emit, template="strided_slice"))
