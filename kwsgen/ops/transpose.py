"""TRANSPOSE with a constant permutation (TFLM transpose.cc / transpose_common.cc, reference/transpose.h).

TFLM semantics that matter:
- Prepare: rank <= 5, perm constant int32 of length rank with every entry in [0, rank). It does not require a
  true permutation nor an output shape matching it; kwsgen does (anything else is a malformed model).
- The kernel walks the output shape, reading the input with strides permuted by perm: a pure byte copy,
  no rescaling and no quantization check; kwsgen requires equal scale and zero point on both sides.
- TFLM built with CMSIS-NN calls arm_transpose_s8 for int8 ranks <= 4. That kernel is correct only for
  non-identity permutations (its rank-2 path always swaps, and its MVE 4-D fast path always swaps the two
  inner axes when perm starts 0, 1) and keeps some extents in uint16 gather offsets; kwsgen calls it
  exactly where it computes the same bytes (`cmsis_ok`) and uses its portable strided copy otherwise.
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
    use_copy_kernel,
)

TFLM_MAX_RANK = 5  # transpose_common.cc
CMSIS_MAX_RANK = 4  # TFLM's cmsis_nn/transpose.cc TransposeEvalInt8
CMSIS_MAX_EXTENT = 8191  # arm_transpose_s8 keeps extents (and 8 x extent MVE gather offsets) in uint16


@dataclass(frozen=True)
class TransposeParams:
    perm: tuple[int, ...]
    out_shape: tuple[int, ...]
    plan: CopyPlan


def _perm(op: Operator, graph: Graph) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(tensor_in(op, graph, 1).data).ravel())


def transpose_plan(shape: tuple[int, ...], perm: tuple[int, ...]) -> CopyPlan:
    """Walk the output densely; output axis k reads input axis perm[k]."""
    in_strides = contiguous_strides(shape)
    out_shape = tuple(shape[p] for p in perm)
    return copy_plan(out_shape, [in_strides[p] for p in perm], contiguous_strides(out_shape))


def check(op: Operator, graph: Graph) -> list[str]:
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        return [f"expects 2 inputs (input, perm) and 1 output, has {len(op.inputs)} and {len(op.outputs)}"]
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    problems = data_tensor_problems(x, y)
    if problems:
        return problems
    rank = len(x.shape)
    if not 1 <= rank <= TFLM_MAX_RANK:
        return [f"input rank {rank} is not supported (TFLM transposes ranks 1..{TFLM_MAX_RANK})"]
    problems, perm = const_ints(tensor_in(op, graph, 1), "perm", rank)
    if problems:
        return problems
    if sorted(perm) != list(range(rank)):
        return [f"perm {list(perm)} is not a permutation of 0..{rank - 1}"]
    expect = tuple(x.shape[p] for p in perm)
    if tuple(y.shape) != expect:
        return [f"output shape {list(y.shape)} does not match perm {list(perm)} ({list(expect)})"]
    return check_copy_plan(transpose_plan(x.shape, perm))


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> TransposeParams:
    shape = tensor_in(op, graph, 0).shape
    perm = _perm(op, graph)
    return TransposeParams(perm, tuple(shape[p] for p in perm), transpose_plan(shape, perm))


def reference(op: Operator, graph: Graph, p: TransposeParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    x = xs[0]
    return [np.ascontiguousarray(np.transpose(x, (0,) + tuple(1 + a for a in p.perm)))]


def cmsis_ok(shape: tuple[int, ...], perm: tuple[int, ...]) -> bool:
    """Where arm_transpose_s8 (v7.0.0) computes exactly the permutation, on every ISA path."""
    rank = len(shape)
    return 2 <= rank <= CMSIS_MAX_RANK and perm != tuple(range(rank)) and max(shape) <= CMSIS_MAX_EXTENT


def cmsis_dims(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """TFLM passes DimsData()[0..3] as {n, h, w, c}; unused trailing slots are 1 here."""
    return tuple(shape) + (1,) * (4 - len(shape))


def emit(ctx) -> "Emitted":
    p = ctx.params
    x = ctx.input_tensor(0)
    if ctx.target.kernels == "cmsis-nn" and cmsis_ok(x.shape, p.perm):
        perm = ctx.const("perm", np.array(p.perm, dtype=np.uint32), "uint32_t", 4, f"layer {ctx.step} permutation")
        return ctx.cmsis(in_dims=cmsis_dims(x.shape), out_dims=cmsis_dims(p.out_shape), perm=perm, rank=len(p.perm))
    use_copy_kernel(ctx)
    return ctx.portable(plan=p.plan)


register(OpDef("TRANSPOSE", check, reference, prepare, emit=emit, template="transpose"))
