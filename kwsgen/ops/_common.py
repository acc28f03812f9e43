"""Helpers shared by operator modules: checks, TF padding arithmetic, per-channel requantization."""

from __future__ import annotations

import numpy as np

from ..fixedpoint import SUPPORTED_ACTIVATIONS, Rounding, activation_range, quantize_multipliers
from ..ir import ABSENT, Graph, Operator, Tensor


def tensor_in(op: Operator, graph: Graph, i: int) -> Tensor | None:
    if i >= len(op.inputs) or op.inputs[i] == ABSENT:
        return None
    return graph.tensors[op.inputs[i]]


def tensor_out(op: Operator, graph: Graph, i: int = 0) -> Tensor:
    return graph.tensors[op.outputs[i]]


def check_arity(op: Operator, n_in: tuple[int, int], n_out: int = 1) -> list[str]:
    lo, hi = n_in
    present = len(op.inputs)
    if not lo <= present <= hi:
        return [f"expects {lo}..{hi} inputs, has {present}"]
    if len(op.outputs) != n_out:
        return [f"expects {n_out} output(s), has {len(op.outputs)}"]
    return []


def check_int8_activation(t: Tensor | None, what: str) -> list[str]:
    """int8 with a per-tensor scale: what every activation tensor of a compiled layer must be."""
    if t is None:
        return [f"{what} is missing"]
    if t.dtype != "int8":
        return [f"{what} is {t.dtype}; kwsgen compiles int8 activations only (convert with full-integer quantization)"]
    if t.quant is None:
        return [f"{what} has no quantization parameters"]
    if t.quant.per_channel:
        return [f"{what} is quantized per channel; activations must be per-tensor"]
    return []


def check_const(t: Tensor | None, what: str, dtype: str | tuple[str, ...] | None = None) -> list[str]:
    if t is None:
        return [f"{what} is missing"]
    if not t.is_const:
        return [f"{what} must be a constant (it is computed at run time)"]
    dtypes = (dtype,) if isinstance(dtype, str) else dtype
    if dtypes and t.dtype not in dtypes:
        return [f"{what} is {t.dtype}, expected {' or '.join(dtypes)}"]
    return []


def check_weighted_layer(op: Operator, graph: Graph) -> list[str]:
    """What CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED all require: int8 activations, a supported
    fused activation, constant int8 weights and an optional constant int32 bias."""
    problems = check_arity(op, (2, 3))
    if problems:
        return problems
    x, w, b, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_in(op, graph, 2), tensor_out(op, graph)
    problems += check_int8_activation(x, "input") + check_int8_activation(y, "output") + check_activation(op, y)
    problems += check_const(w, "filter", "int8")
    if b is not None:
        problems += check_const(b, "bias", "int32")
    return problems


def check_activation(op: Operator, out: Tensor | None = None) -> list[str]:
    """A supported fused activation whose bounds TFLM can quantize at the output's scale."""
    act = op.opt("fused_activation_function", "NONE")
    if act not in SUPPORTED_ACTIVATIONS:
        return [f"fused activation {act} is not supported (NONE, RELU, RELU6, RELU_N1_TO_1 are)"]
    if out is not None and out.quant is not None and not out.quant.per_channel:
        return check_activation_bounds(op, out)
    return []


def check_same_quant(a: Tensor, b: Tensor, what: str) -> list[str]:
    if a.quant is None or b.quant is None or a.quant.scale != b.quant.scale or a.quant.zero_point != b.quant.zero_point:
        return [f"{what} must have the same scale and zero point as its input (TFLM copies bytes without rescaling)"]
    return []


def act_range(op: Operator, out: Tensor) -> tuple[int, int]:
    """Fused activation as an int8 clamp range on the output."""
    return activation_range(op.opt("fused_activation_function", "NONE"), out.quant.s, out.quant.zp)


def out_size(padding: str, in_size: int, filter_size: int, stride: int, dilation: int = 1) -> int:
    """TFLite ComputeOutSize."""
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - effective) // stride


def padding_before(stride: int, dilation: int, in_size: int, filter_size: int, out: int) -> int:
    """TFLite ComputePadding: top/left padding (any odd extra goes bottom/right)."""
    effective = (filter_size - 1) * dilation + 1
    total = (out - 1) * stride + effective - in_size
    return max(total // 2, 0) if total >= 0 else 0


def per_channel_multipliers(
    in_scale: float, w_scales: np.ndarray, out_scale: float, rounding: Rounding
) -> tuple[np.ndarray, np.ndarray]:
    """Conv/depthwise/FC requantization: m_i = in_s * w_s[i] / out_s in double, as TFLM computes it."""
    effective = [float(np.float64(in_scale) * np.float64(ws) / np.float64(out_scale)) for ws in w_scales]
    return quantize_multipliers(effective, rounding)


# ---- data movement (STRIDED_SLICE, SPLIT, PACK, TRANSPOSE, ...) ----

from dataclasses import dataclass  # noqa: E402  (appended section; the module head is shared)

COPY_MAX_DIMS = 5  # loop depth of the C strided copy kernel (kws_copy_s8); TFLM's data-movement ops stop at rank 5


@dataclass(frozen=True)
class CopyPlan:
    """One strided block copy: for every index vector i < count,
    out[out_offset + sum(i_k * out_step_k)] = in[in_offset + sum(i_k * in_step_k)] (element units).

    Every data-movement operator lowers each of its (input, output) pairs to such a plan at compile
    time, so one small C kernel (kws_copy_s8) serves them all.
    """

    count: tuple[int, ...]
    in_step: tuple[int, ...]
    out_step: tuple[int, ...]
    in_offset: int = 0
    out_offset: int = 0


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major element strides of a dense tensor."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def copy_plan(count, in_step, out_step, in_offset: int = 0, out_offset: int = 0) -> CopyPlan:
    """Canonical plan: extent-1 axes dropped and neighbours that are contiguous in both operands merged,
    so the C loop nest is as shallow as possible (a plain slice or split becomes one memcpy per run)."""
    axes = [(int(c), int(i), int(o)) for c, i, o in zip(count, in_step, out_step) if c != 1]
    if any(c == 0 for c, _, _ in axes):
        return CopyPlan((0,), (1,), (1,), int(in_offset), int(out_offset))
    merged: list[tuple[int, int, int]] = []
    for c, i, o in axes:
        if merged and merged[-1][1] == i * c and merged[-1][2] == o * c:
            merged[-1] = (merged[-1][0] * c, i, o)
        else:
            merged.append((c, i, o))
    if not merged:
        merged = [(1, 1, 1)]
    count_, in_, out_ = zip(*merged)
    return CopyPlan(tuple(count_), tuple(in_), tuple(out_), int(in_offset), int(out_offset))


def copy_plan_indices(plan: CopyPlan) -> tuple[np.ndarray, np.ndarray]:
    """Flat (source, destination) element indices a plan touches, in the C kernel's order (for tests/tools)."""
    grids = np.indices(plan.count).reshape(len(plan.count), -1).astype(np.int64)
    src = plan.in_offset + np.asarray(plan.in_step, dtype=np.int64) @ grids
    dst = plan.out_offset + np.asarray(plan.out_step, dtype=np.int64) @ grids
    return src, dst


def check_copy_plan(plan: CopyPlan) -> list[str]:
    """The C kernel's loop depth (offsets fit int32: the importer caps tensors at 2^28 elements)."""
    if len(plan.count) > COPY_MAX_DIMS:
        return [f"needs a {len(plan.count)}-deep copy loop; at most {COPY_MAX_DIMS} are supported"]
    return []


def data_tensor_problems(x: Tensor | None, y: Tensor | None, what_x: str = "input", what_y: str = "output") -> list[str]:
    """A run-time data-movement layer: int8 per-tensor activations, identical quantization on both sides.

    TFLM's data-movement kernels copy bytes and never rescale, so a different output scale or zero point
    would silently change the meaning of the values: such a model is rejected rather than miscompiled.
    """
    problems = check_int8_activation(x, what_x) + check_int8_activation(y, what_y)
    if problems:
        return problems
    if y.size == 0:
        return [f"{what_y} is empty (shape {list(y.shape)})"]
    return check_same_quant(x, y, what_y)


def const_ints(t: Tensor | None, what: str, length: int | None = None) -> tuple[list[str], tuple[int, ...]]:
    """A constant int32 index vector (TFLM reads index inputs as int32), or the reasons it is not one."""
    problems = check_const(t, what, "int32")
    if problems:
        return problems, ()
    values = tuple(int(v) for v in np.asarray(t.data).ravel())
    if length is not None and len(values) != length:
        return [f"{what} has {len(values)} values, expected {length}"], ()
    return [], values


def normalize_axis(axis: int, rank: int, what: str = "axis") -> tuple[list[str], int]:
    """Python-style negative axis -> [0, rank), or a reason."""
    if not -rank <= axis < rank:
        return [f"{what} {axis} is out of range for rank {rank}"], 0
    return [], axis + rank if axis < 0 else axis


COPY_KERNEL_TEMPLATE = "ops/strided_slice.j2"  # holds kws_copy_s8 (header() and kernel())


def use_copy_kernel(ctx) -> None:
    """Make the code generator include the shared strided copy kernel once (ops whose own template has none)."""
    ctx.require_kernel(COPY_KERNEL_TEMPLATE)


@dataclass(frozen=True)
class CopyCall:
    """One kws_copy_s8 call of a multi-part layer: which shared plan, and the pointer offsets at the call site."""

    plan: int
    in_offset: int
    out_offset: int


def share_plans(plans) -> tuple[tuple[CopyPlan, ...], tuple[CopyCall, ...]]:
    """Plans that differ only in their offsets share one const struct (an UNPACK over 49 time steps needs one,
    not 49); the offsets move to the call sites as pointer arithmetic."""
    unique: list[CopyPlan] = []
    calls = []
    for p in plans:
        base = CopyPlan(p.count, p.in_step, p.out_step)
        if base not in unique:
            unique.append(base)
        calls.append(CopyCall(unique.index(base), p.in_offset, p.out_offset))
    return tuple(unique), tuple(calls)


# ---- fused activation bounds that TFLM refuses ----

_ACTIVATION_BOUNDS = {"RELU": (0.0,), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def check_activation_bounds(op: Operator, out: Tensor) -> list[str]:
    """TFLM's CalculateActivationRangeQuantized refuses a bound whose round(bound / scale), in float32,
    lies outside the int32 range (kernel_util.cc Quantize, `no_integer_overflow_from_quantization`)."""
    act = op.opt("fused_activation_function", "NONE")
    for bound in _ACTIVATION_BOUNDS.get(act, ()):
        with np.errstate(over="ignore"):
            tmp = float(np.round(np.float32(bound) / np.float32(out.quant.s)))
        if not -(2.0**31) <= tmp <= 2.0**31:
            return [f"fused {act} bound {bound:g} is not representable at output scale {out.quant.s:g} (TFLM refuses it)"]
    return []
