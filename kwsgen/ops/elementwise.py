"""ADD, SUB, MUL: int8 binary arithmetic with TFLite broadcasting.

Semantics are TFLM's reference kernels: `reference_integer_ops::Add/BroadcastAdd4DSlow` (add.h),
`reference_ops::Sub/BroadcastQuantSubSlow` (sub.h) and `reference_integer_ops::Mul/BroadcastMul4DSlow`
(mul.h), with the multipliers computed exactly as `add_common.cc`, `sub_common.cc` and
`mul_common.cc` compute them (in double; see `_add_sub_real_multipliers` about SUB).

Broadcasting follows NumPy/TFLite rules up to rank 6 (TFLM's limit). At compile time the loop nest
is collapsed like TFLM's `BroadcastBinaryOpSimple`: adjacent dimensions that walk both inputs
contiguously (or both not at all) are fused, so the C kernel runs a short odometer with a
contiguous inner loop. Equal shapes become one flat loop, which is also the only case where TFLM
calls CMSIS-NN (`arm_elementwise_add_s8` / `arm_elementwise_mul_s8`; SUB has no CMSIS kernel).

int32/int64/float32 tensors are handled by the reference only, for compile-time folding of shape
arithmetic; `check` accepts int8 alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import KwsgenError
from ..fixedpoint import Rounding, mbqm, mbqm_smaller_than_one_exp, quantize_multiplier, wrap32
from ..ir import Graph, Operator, Tensor
from . import OpDef, register
from ._common import (
    act_range,
    check_activation,
    check_activation_bounds,
    check_arity,
    check_int8_activation,
    tensor_in,
    tensor_out,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..codegen import Emitted

MAX_RANK = 6  # TFLM's broadcast kernels (BroadcastBinaryFunction6DSlow, kMaxMulBroadcastDim)
ADD_LEFT_SHIFT = 20  # add_common.cc / sub_common.cc, int8 path


# ---- broadcasting ----


def extended(shape: tuple[int, ...], rank: int) -> tuple[int, ...]:
    """RuntimeShape::ExtendedShape: pad with leading 1s to `rank`."""
    return (1,) * (rank - len(shape)) + tuple(shape)


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """NumPy broadcast of two shapes, or None when they are incompatible."""
    try:
        return tuple(int(d) for d in np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        return None


@dataclass(frozen=True)
class LoopPlan:
    """A collapsed broadcast loop nest, outermost dimension first.

    Element strides of each input per dimension (0 = that input is broadcast along it); the output
    is written contiguously. The innermost strides are always 0 or 1.
    """

    shape: tuple[int, ...]
    stride1: tuple[int, ...]
    stride2: tuple[int, ...]

    @property
    def flat(self) -> bool:
        """No broadcasting at all: one contiguous loop over equal-sized operands."""
        return len(self.shape) == 1 and self.stride1 == (1,) and self.stride2 == (1,)


def _input_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    strides, acc = [], 1
    for d, o in zip(reversed(shape), reversed(out)):
        strides.append(0 if d == 1 and o != 1 else acc)
        acc *= d
    return strides[::-1]


def loop_plan(shape1: tuple[int, ...], shape2: tuple[int, ...], out_shape: tuple[int, ...]) -> LoopPlan:
    """Fuse the broadcast loop nest of `shape1 op shape2 -> out_shape` (extended to a common rank)."""
    rank = max(len(shape1), len(shape2), len(out_shape), 1)
    s1, s2, so = extended(shape1, rank), extended(shape2, rank), extended(out_shape, rank)
    st1, st2 = _input_strides(s1, so), _input_strides(s2, so)
    dims: list[list[int]] = []  # [extent, stride1, stride2], built innermost first
    for d in reversed(range(rank)):
        if so[d] == 1:
            continue  # an extent-1 dimension moves nothing
        if dims:
            inner = dims[-1]
            fuse1 = st1[d] == inner[1] * inner[0] if inner[1] else st1[d] == 0
            fuse2 = st2[d] == inner[2] * inner[0] if inner[2] else st2[d] == 0
            if fuse1 and fuse2:
                inner[0] *= so[d]
                continue
        dims.append([so[d], st1[d], st2[d]])
    if not dims:
        dims = [[1, 1, 1]]
    dims.reverse()
    return LoopPlan(tuple(d[0] for d in dims), tuple(d[1] for d in dims), tuple(d[2] for d in dims))


def batched_operands(x1: np.ndarray, x2: np.ndarray, shape1, shape2, out_shape) -> tuple[np.ndarray, np.ndarray]:
    """Batched inputs [N, *shape] reshaped to the common rank so NumPy broadcasting matches TFLite's."""
    rank = max(len(shape1), len(shape2), len(out_shape))
    n = x1.shape[0]
    return x1.reshape((n,) + extended(shape1, rank)), x2.reshape((n,) + extended(shape2, rank))


# ---- parameters ----


@dataclass(frozen=True)
class BinaryParams:
    kind: str  # ADD, SUB or MUL
    plan: LoopPlan
    quantized: bool  # False for the int32/float folding path
    in1_zp: int = 0
    in2_zp: int = 0
    out_zp: int = 0
    left_shift: int = 0  # ADD/SUB only
    in1_mult: int = 0
    in1_shift: int = 0
    in2_mult: int = 0
    in2_shift: int = 0
    out_mult: int = 0
    out_shift: int = 0
    act_min: int = -128
    act_max: int = 127


def _add_sub_real_multipliers(s1: float, s2: float, so: float) -> tuple[float, float, float]:
    """add_common.cc (and sub_common.cc as the oracle runs it): input multipliers s/(2*max(s1, s2)) and
    output multiplier 2*max/(2^20 * so), all in double.

    The sub_common.cc in the TFLM tree read for this port evaluates the SUB formulas in float32, but
    the tflite-micro wheel used as the oracle computes them in double (measured: on scale sets where
    the two differ in output, only the double multipliers reproduce TFLM; see tests)."""
    twice_max = 2.0 * max(s1, s2)
    return s1 / twice_max, s2 / twice_max, twice_max / ((1 << ADD_LEFT_SHIFT) * so)


def _real_multipliers(kind: str, s1: float, s2: float, so: float) -> tuple[float, ...]:
    if kind in ("ADD", "SUB"):
        return _add_sub_real_multipliers(s1, s2, so)
    return (float(np.float64(s1) * np.float64(s2) / np.float64(so)),)  # mul_common.cc, double


def prepare(op: Operator, graph: Graph, rounding: Rounding) -> BinaryParams:
    x1, x2, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_out(op, graph)
    plan = loop_plan(x1.shape, x2.shape, y.shape)
    if y.dtype != "int8" or y.quant is None:
        return BinaryParams(op.kind, plan, False)
    s1, s2, so = x1.quant.s, x2.quant.s, y.quant.s
    lo, hi = act_range(op, y)
    common = {"in1_zp": x1.quant.zp, "in2_zp": x2.quant.zp, "out_zp": y.quant.zp, "act_min": lo, "act_max": hi}
    if op.kind == "MUL":
        (real,) = _real_multipliers("MUL", s1, s2, so)
        m, s = quantize_multiplier(real, rounding)
        return BinaryParams("MUL", plan, True, out_mult=m, out_shift=s, **common)
    # QuantizeMultiplierSmallerThanOneExp: TFLM aborts unless 0 < m < 1, which check() guarantees.
    (m1, sh1), (m2, sh2), (mo, sho) = (quantize_multiplier(r, rounding) for r in _real_multipliers(op.kind, s1, s2, so))
    return BinaryParams(op.kind, plan, True, left_shift=ADD_LEFT_SHIFT, in1_mult=m1, in1_shift=sh1,
                        in2_mult=m2, in2_shift=sh2, out_mult=mo, out_shift=sho, **common)


# ---- checks ----


def _check_scales(op: Operator, x1: Tensor, x2: Tensor, y: Tensor) -> list[str]:
    scales = (x1.quant.s, x2.quant.s, y.quant.s)
    if not all(np.isfinite(s) and s > 0 for s in scales):
        return ["input and output scales must be positive and finite"]
    for t, what in ((x1, "input 1"), (x2, "input 2"), (y, "output")):
        if not -128 <= t.quant.zp <= 127:
            return [f"{what} zero point {t.quant.zp} is outside the int8 range"]
    problems = check_activation_bounds(op, y)
    if problems or op.kind == "MUL":
        return problems
    reals = _real_multipliers(op.kind, *scales)
    if not all(0.0 < r < 1.0 for r in reals):
        return [(f"output scale {y.quant.s:g} is too small for input scales {x1.quant.s:g} and {x2.quant.s:g} "
                 "(TFLM requires 2*max(input scales) < 2^20 * output scale)")]
    return []


def check(op: Operator, graph: Graph) -> list[str]:
    problems = check_arity(op, (2, 2))
    if problems:
        return problems
    x1, x2, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_out(op, graph)
    problems = check_int8_activation(x1, "input 1") + check_int8_activation(x2, "input 2")
    problems += check_int8_activation(y, "output") + check_activation(op)
    if problems:
        return problems
    if max(len(x1.shape), len(x2.shape), len(y.shape)) > MAX_RANK:
        return [f"tensors of rank above {MAX_RANK} are not supported (TFLM's broadcast limit)"]
    bshape = broadcast_shape(x1.shape, x2.shape)
    if bshape is None:
        return [f"input shapes {list(x1.shape)} and {list(x2.shape)} do not broadcast"]
    rank = max(len(bshape), len(y.shape))
    if extended(bshape, rank) != extended(y.shape, rank):
        return [f"output shape {list(y.shape)} is not the broadcast shape {list(bshape)}"]
    return _check_scales(op, x1, x2, y)


# ---- reference ----


def _add_sub_int8(p: BinaryParams, a: np.ndarray, b: np.ndarray, rounding: Rounding) -> np.ndarray:
    """AddFunc / BroadcastQuantSubSlow: per-input rescale via 256-entry tables, then output rescale."""
    q = np.arange(-128, 128, dtype=np.int64)
    lut1 = mbqm_smaller_than_one_exp((q - p.in1_zp) << p.left_shift, p.in1_mult, p.in1_shift, rounding)
    lut2 = mbqm_smaller_than_one_exp((q - p.in2_zp) << p.left_shift, p.in2_mult, p.in2_shift, rounding)
    v1 = lut1[a.astype(np.int16) + 128]
    v2 = lut2[b.astype(np.int16) + 128]
    raw = v1 + v2 if p.kind == "ADD" else v1 - v2  # |v| < 2^28: no int32 overflow
    out = mbqm_smaller_than_one_exp(raw, p.out_mult, p.out_shift, rounding) + p.out_zp
    return np.clip(out, p.act_min, p.act_max).astype(np.int8)


def _mul_int8(p: BinaryParams, a: np.ndarray, b: np.ndarray, rounding: Rounding) -> np.ndarray:
    prod = (a.astype(np.int32) - p.in1_zp) * (b.astype(np.int32) - p.in2_zp)  # |prod| <= 65536
    out = mbqm(prod, p.out_mult, p.out_shift, rounding) + p.out_zp
    return np.clip(out, p.act_min, p.act_max).astype(np.int8)


def _int_activation(op: Operator, dtype: np.dtype) -> tuple[int, int]:
    """CalculateActivationRange<T> for unquantized integers."""
    info = np.iinfo(dtype)
    act = op.opt("fused_activation_function", "NONE")
    return {"RELU": (0, info.max), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}.get(act, (info.min, info.max))


def _unquantized(op: Operator, a: np.ndarray, b: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """int32/int64/float32 arithmetic as TFLM's unquantized kernels (integers wrap; ADD int32 ignores activation)."""
    if dtype.kind == "f":
        f = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply}[op.kind]
        r = f(a.astype(dtype), b.astype(dtype)).astype(dtype)
        act = op.opt("fused_activation_function", "NONE")
        lo, hi = {"RELU": (0.0, np.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}.get(act, (-np.inf, np.inf))
        return np.minimum(np.maximum(r, dtype.type(lo)), dtype.type(hi)).astype(dtype)
    if dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise KwsgenError(f"{op.kind} on {dtype} tensors is not supported")
    ua, ub = a.astype(np.uint64), b.astype(np.uint64)  # modular arithmetic, no overflow warnings
    r = {"ADD": ua + ub, "SUB": ua - ub, "MUL": ua * ub}[op.kind].view(np.int64)
    if dtype == np.int32:
        r = wrap32(r)
    if op.kind == "ADD" and dtype == np.int32:
        return r.astype(dtype)  # TFLM's int32 ADD clamps to the full int32 range only
    lo, hi = _int_activation(op, dtype)
    return np.clip(r, lo, hi).astype(dtype)


def reference(op: Operator, graph: Graph, p: BinaryParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    x1, x2, y = tensor_in(op, graph, 0), tensor_in(op, graph, 1), tensor_out(op, graph)
    a, b = batched_operands(np.asarray(xs[0]), np.asarray(xs[1]), x1.shape, x2.shape, y.shape)
    n = a.shape[0]
    if p.quantized:
        out = _add_sub_int8(p, a, b, rounding) if p.kind != "MUL" else _mul_int8(p, a, b, rounding)
    else:
        out = _unquantized(op, a, b, np.dtype(y.dtype))
    return [np.ascontiguousarray(out).reshape((n,) + y.shape)]


def macs(op: Operator, graph: Graph) -> int:
    return tensor_out(op, graph).size


# ---- emission ----


def emit(ctx) -> Emitted:
    p: BinaryParams = ctx.params
    if ctx.target.kernels == "cmsis-nn" and p.plan.flat and p.kind in ("ADD", "MUL"):
        return ctx.cmsis(size=tensor_out(ctx.op, ctx.model.graph).size)
    return ctx.portable(fn={"ADD": "kws_add_s8", "SUB": "kws_sub_s8", "MUL": "kws_mul_s8"}[p.kind])


def _register() -> None:
    for kind in ("ADD", "SUB", "MUL"):
        register(OpDef(kind, check, reference, prepare, macs, emit, template="elementwise"))


_register()
