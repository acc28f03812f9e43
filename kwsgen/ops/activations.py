"""LOGISTIC, TANH, RELU, RELU6: int8 standalone activations (TFLM logistic.cc, tanh.cc, activations.cc).

The NumPy reference follows TFLM's arithmetic step by step (gemmlowp fixed point for LOGISTIC and
TANH, a requantizing multiply for RELU, a clamp in the input's quantization for RELU6). LOGISTIC,
TANH and RELU map each int8 input to one int8 output through constants only, so the device gets the
256 results of that arithmetic as a table, computed here at compile time: one load per element
instead of a few hundred fixed-point instructions, bit-exact by construction.

TFLM details reproduced:
- LOGISTIC/TANH Prepare: `multiplier = round(frexp(double(s_in) * 2^27) * 2^31)` with frexp's exponent
  as the left shift, and `input_range_radius = floor(15 * 2^27 / 2^left_shift)` (double); inputs with
  |x - zp| at or beyond the radius saturate. The output quantization is not read: LOGISTIC writes
  probability * 256 - 128 (TFLM only checks zero point -128), TANH writes tanh * 128.
- RELU: `m = float(s_in / s_out)` (a float32 quotient) requantizes, then clamps at the output's zero point.
- RELU6: clamps to [zp_in, zp_in + round(6 / s_in)] in the *input's* quantization and copies the bytes.
  TFLM's RELU6 never rescales while TFLite's does, so when input and output quantization differ the
  two interpreters disagree; kwsgen rejects that case rather than silently pick one meaning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..fixedpoint import Rounding, fp_logistic, fp_tanh, mbqm, quantize_multiplier, rdbpot, tflite_round, wrap32
from ..ir import Graph, Operator
from . import OpDef, register
from ._common import check_arity, check_int8_activation, tensor_in, tensor_out

INPUT_INTEGER_BITS = 4  # LOGISTIC and TANH scale the input into Q4.27
ALL_INT8 = np.arange(256, dtype=np.int32).astype(np.uint8).view(np.int8)  # table order: index = (uint8)x


@dataclass(frozen=True)
class FixedPointActParams:
    """LOGISTIC / TANH: TFLM's Prepare constants, and the resulting int8 -> int8 table."""

    input_zp: int
    multiplier: int
    left_shift: int
    range_radius: int
    table: np.ndarray  # int8[256], indexed by the input byte read as uint8


@dataclass(frozen=True)
class ReluParams:
    input_zp: int
    output_zp: int
    multiplier: int
    shift: int
    act_min: int
    act_max: int
    table: np.ndarray


@dataclass(frozen=True)
class Relu6Params:
    lower: int  # input zero point
    upper: int  # 6.0 in the input's quantization, clamped to int8


def _check_unary(op: Operator, graph: Graph) -> list[str]:
    problems = check_arity(op, (1, 1))
    if problems:
        return problems
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    problems = check_int8_activation(x, "input") + check_int8_activation(y, "output")
    if problems:
        return problems
    if x.size != y.size:
        return [f"input has {x.size} elements, output {y.size}"]
    return []


def _int8_input(op: Operator, xs: list) -> np.ndarray:
    if xs[0].dtype != np.int8:  # constant folding of another dtype: int8 semantics would be wrong
        raise ValueError(f"{op}: int8 input expected, got {xs[0].dtype}")
    return xs[0]


def _apply_table(op: Operator, graph: Graph, table: np.ndarray, xs: list) -> list[np.ndarray]:
    x = _int8_input(op, xs)
    y = tensor_out(op, graph)
    return [table[x.view(np.uint8)].reshape((x.shape[0],) + y.shape)]


# ---- LOGISTIC and TANH ----


def _q4_prepare(in_scale: float) -> tuple[int, int, int]:
    """CalculateArithmeticOpDataLogistic / tanh Prepare (int8): multiplier, left shift, input range radius."""
    real = float(np.float64(in_scale) * np.float64(1 << (31 - INPUT_INTEGER_BITS)))
    q, left_shift = math.frexp(real)
    multiplier = tflite_round(q * (1 << 31))  # exact: q is a float32 mantissa, never rounds up to 2^31
    radius = math.floor(((1 << INPUT_INTEGER_BITS) - 1) * 2.0 ** (31 - INPUT_INTEGER_BITS) / 2.0**left_shift)
    return multiplier, left_shift, radius


def _check_q4(op: Operator, graph: Graph) -> list[str]:
    problems = _check_unary(op, graph)
    if problems:
        return problems
    _, left_shift, _ = _q4_prepare(tensor_in(op, graph, 0).quant.s)
    if not 0 <= left_shift <= 62:  # TFLM shifts 1LL by it: outside this range its behaviour is undefined
        return [f"input scale {tensor_in(op, graph, 0).quant.s:.3g} is outside the range TFLM's fixed-point path handles"]
    return []


def check_logistic(op: Operator, graph: Graph) -> list[str]:
    problems = _check_q4(op, graph)
    if not problems and tensor_out(op, graph).quant.zp != -128:
        problems.append("output zero point must be -128 (TFLM requires it)")
    return problems


def _q4_table(op: Operator, graph: Graph, rounding: Rounding, fn, out_shift: int, out_zp: int) -> FixedPointActParams:
    """reference_integer_ops::Logistic / Tanh over all 256 inputs."""
    zp = tensor_in(op, graph, 0).quant.zp
    multiplier, left_shift, radius = _q4_prepare(tensor_in(op, graph, 0).quant.s)
    inp = ALL_INT8.astype(np.int64) - zp
    low, high = inp <= -radius, inp >= radius
    inside = ~(low | high)
    safe = np.where(inside, inp, 0)  # saturated inputs never reach the multiply (its shift may exceed 31 then)
    if inside.any():
        q4 = mbqm(safe, multiplier, left_shift, rounding)
        body = np.clip(rdbpot(fn(q4, INPUT_INTEGER_BITS), out_shift) + out_zp, -128, 127)
    else:
        body = np.zeros_like(inp)
    table = np.where(low, -128, np.where(high, 127, body)).astype(np.int8)
    return FixedPointActParams(zp, multiplier, left_shift, radius, table)


def prepare_logistic(op: Operator, graph: Graph, rounding: Rounding) -> FixedPointActParams:
    return _q4_table(op, graph, rounding, fp_logistic, 31 - 8, -128)  # Q0 -> Q23 -> probability * 256 - 128


def prepare_tanh(op: Operator, graph: Graph, rounding: Rounding) -> FixedPointActParams:
    return _q4_table(op, graph, rounding, fp_tanh, 31 - 7, 0)  # Q0 -> Q24 -> tanh * 128


def reference_table(op: Operator, graph: Graph, p, xs: list, rounding: Rounding) -> list[np.ndarray]:
    return _apply_table(op, graph, p.table, xs)


# ---- RELU ----


def _relu_multiplier(op: Operator, graph: Graph, rounding: Rounding) -> tuple[int, int]:
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    return quantize_multiplier(float(np.float32(x.quant.s) / np.float32(y.quant.s)), rounding)


def check_relu(op: Operator, graph: Graph) -> list[str]:
    problems = _check_unary(op, graph)
    if problems:
        return problems
    _, shift = _relu_multiplier(op, graph, Rounding.DOUBLE)
    if shift > 30:
        return ["input/output scale ratio is too large for a 32-bit requantization"]
    return []


def prepare_relu(op: Operator, graph: Graph, rounding: Rounding) -> ReluParams:
    """CalculateReluOpData then ReluQuantized over all 256 inputs."""
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    mult, shift = _relu_multiplier(op, graph, rounding)
    act_min = max(-128, y.quant.zp + tflite_round(float(np.float32(0.0) / np.float32(y.quant.s))))
    act_max = 127
    out = wrap32(y.quant.zp + mbqm(ALL_INT8.astype(np.int64) - x.quant.zp, mult, shift, rounding))
    table = np.clip(out, act_min, act_max).astype(np.int8)
    return ReluParams(x.quant.zp, y.quant.zp, mult, shift, act_min, act_max, table)


# ---- RELU6 ----


def _six(in_scale: float, zp: int) -> int | None:
    """FloatToQuantizedType<int8_t>(6.0f, s, zp): round(6.0f / s) + zp, clamped; None where TFLM's
    float -> int32 conversion would overflow (undefined behaviour)."""
    q = tflite_round(float(np.float32(6.0) / np.float32(in_scale)))
    if abs(q) >= 1 << 31:
        return None
    return min(127, max(-128, q + zp))


def check_relu6(op: Operator, graph: Graph) -> list[str]:
    problems = _check_unary(op, graph)
    if problems:
        return problems
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    if _six(x.quant.s, x.quant.zp) is None:
        problems.append("input scale is too small: 6.0 does not fit an int32 in it")
    if (x.quant.s, x.quant.zp) != (y.quant.s, y.quant.zp):
        problems.append("output quantization differs from the input's: TFLM clamps without rescaling while "
                        "TFLite rescales, so the model has no single meaning (re-export with equal quantization)")
    return problems


def prepare_relu6(op: Operator, graph: Graph, rounding: Rounding) -> Relu6Params:
    x = tensor_in(op, graph, 0)
    return Relu6Params(x.quant.zp, _six(x.quant.s, x.quant.zp))


def reference_relu6(op: Operator, graph: Graph, p: Relu6Params, xs: list, rounding: Rounding) -> list[np.ndarray]:
    x = _int8_input(op, xs)
    y = tensor_out(op, graph)
    return [np.clip(x, p.lower, p.upper).astype(np.int8).reshape((x.shape[0],) + y.shape)]


# ---- cost and emission ----


def macs(op: Operator, graph: Graph) -> int:
    return tensor_out(op, graph).size


def emit_table(ctx) -> "Emitted":
    """Every table op runs the same C kernel; identical tables (same quantization) are stored once."""
    table = ctx.const("lut", ctx.params.table, "int8_t", 4, f"layer {ctx.step} {ctx.op.kind} table, index = (uint8_t)input")
    return ctx.portable(lut=table, size=ctx.output_tensor().size)


def emit_relu6(ctx) -> "Emitted":
    p = ctx.params
    size = ctx.output_tensor().size
    # arm_relu6_s8 clamps raw values to [0, 6]: TFLM's RELU6 exactly when zp_in is 0 and 6.0 quantizes to 6.
    if ctx.target.kernels == "cmsis-nn" and (p.lower, p.upper) == (0, 6):
        return ctx.cmsis(size=size)
    return ctx.portable(size=size)


for _kind, _check, _prepare in (
    ("LOGISTIC", check_logistic, prepare_logistic),
    ("TANH", _check_q4, prepare_tanh),
    ("RELU", check_relu, prepare_relu),
):
    register(OpDef(_kind, _check, reference_table, _prepare, macs, emit_table, template="activations"))
register(OpDef("RELU6", check_relu6, reference_relu6, prepare_relu6, macs, emit_relu6, template="relu6"))
