"""QUANTIZE and DEQUANTIZE: the model's float edges, and int8 -> int8 requantization.

- QUANTIZE float32 -> int8 is TFLM's `reference_ops::AffineQuantize`: the float32 input divided by
  the float32 scale, rounded half away from zero (TfLiteRound = std::round on a float), plus the
  zero point, clamped. It only runs as a model input edge (`legalize.Model.input_edges`): the device
  program starts at the int8 tensor and the float wrapper `kws_model_invoke_f32` does this step.
- QUANTIZE int8 -> int8 runs on the device: `reference_ops::Requantize` with the multiplier
  QuantizeMultiplier(double(in_scale) / double(out_scale)) from quantize_common.cc. Its equal-scale
  fast path only exists for int8 <-> uint8, so int8 -> int8 always takes the general path (which is
  exact for equal scales: multiplier 2^30, shift 1).
- DEQUANTIZE int8 -> float32 is `reference_ops::Dequantize`: float(double(scale) * (q - zero_point)).
  It only runs as a model output edge.

Where TFLM's float -> int conversion is undefined behaviour (NaN, |x / scale| >= 2^31), kwsgen
defines it: out-of-range values saturate, NaN gives -128 (see `affine_quantize`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import KwsgenError
from ..fixedpoint import Rounding, mbqm, quantize_multiplier
from ..ir import Graph, Operator
from . import OpDef, register
from ._common import check_arity, check_int8_activation, tensor_in, tensor_out

if TYPE_CHECKING:  # pragma: no cover
    from ..codegen import Emitted


# ---- float edges (NumPy twins of the C wrapper kws_model_invoke_f32) ----


def affine_quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLM AffineQuantize float32 -> int8, with saturation where TFLM's int conversion is undefined.

    round(x / scale) is computed in float32 as TFLM does; adding the zero point in float is exact
    wherever the result is in range, and out-of-range or NaN values go to the clamp bounds
    (NaN -> -128), which is what the UB-free C `v >= 127 ? 127 : (v > -128 ? (int32_t)v : -128)` gives.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.asarray(x, dtype=np.float32) / np.float32(scale)
        # round half away from zero is trunc(q +- 1/2) (float64: exact for float32 q); truncation is monotone,
        # so clamping before it to the integer bounds (fmax sends NaN to the lower one) gives the same integer
        u = q.astype(np.float64)
        u += np.copysign(0.5, q)
        np.fmax(u, -128 - zero_point, out=u)
        np.minimum(u, 127 - zero_point, out=u)
        out = u.astype(np.int16)  # truncates
    out += zero_point
    return out.astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLM Dequantize: the product in double (exact for int8 inputs), rounded once to float32."""
    return (np.float64(scale) * (np.asarray(q, dtype=np.int64) - zero_point)).astype(np.float32)


# ---- QUANTIZE ----


@dataclass(frozen=True)
class QuantizeParams:
    mode: str  # "affine" (float32 -> int8 edge) or "requantize" (int8 -> int8 on device)
    in_zp: int
    out_zp: int
    out_scale: float
    multiplier: int = 0
    shift: int = 0


def quantize_check(op: Operator, graph: Graph) -> list[str]:
    problems = check_arity(op, (1, 1))
    if problems:
        return problems
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    problems = check_int8_activation(y, "output")
    if x is None:
        return problems + ["input is missing"]
    if x.dtype not in ("float32", "int8"):
        problems.append(f"input is {x.dtype}; QUANTIZE supports float32 -> int8 (model input) and int8 -> int8")
    elif x.dtype == "int8":
        problems += check_int8_activation(x, "input")
    if problems:
        return problems
    if x.shape != y.shape:
        return [f"output shape {list(y.shape)} differs from input shape {list(x.shape)}"]
    scales = [y.quant.s] + ([x.quant.s] if x.dtype == "int8" else [])
    if not all(np.isfinite(s) and s > 0 for s in scales):
        return ["scales must be positive and finite"]
    if not all(-128 <= z <= 127 for z in [y.quant.zp] + ([x.quant.zp] if x.dtype == "int8" else [])):
        return ["zero points must be in the int8 range"]
    return []


def quantize_prepare(op: Operator, graph: Graph, rounding: Rounding) -> QuantizeParams:
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    if y.dtype != "int8" or y.quant is None or x.dtype not in ("int8", "float32"):
        raise KwsgenError(f"{op}: QUANTIZE {x.dtype} -> {y.dtype} is not supported")
    if x.dtype == "int8":
        if x.quant is None:
            raise KwsgenError(f"{op}: int8 input has no quantization parameters")
        # quantize_common.cc: double(input scale) / double(output scale), QuantizeMultiplier.
        m, s = quantize_multiplier(float(np.float64(x.quant.s) / np.float64(y.quant.s)), rounding)
        return QuantizeParams("requantize", x.quant.zp, y.quant.zp, y.quant.s, m, s)
    return QuantizeParams("affine", 0, y.quant.zp, y.quant.s)


def requantize(x: np.ndarray, p: QuantizeParams, rounding: Rounding) -> np.ndarray:
    """reference_ops::Requantize int8 -> int8."""
    out = mbqm(np.asarray(x, dtype=np.int64) - p.in_zp, p.multiplier, p.shift, rounding) + p.out_zp
    return np.clip(out, -128, 127).astype(np.int8)


def quantize_reference(op: Operator, graph: Graph, p: QuantizeParams, xs: list, rounding: Rounding) -> list[np.ndarray]:
    if p.mode == "requantize":
        return [requantize(xs[0], p, rounding)]
    return [affine_quantize(xs[0], p.out_scale, p.out_zp)]


def quantize_macs(op: Operator, graph: Graph) -> int:
    return tensor_out(op, graph).size


def quantize_emit(ctx) -> Emitted:
    p: QuantizeParams = ctx.params
    if p.mode != "requantize":
        raise KwsgenError(f"{ctx.op}: a float QUANTIZE runs only as the model's input edge (kws_model_invoke_f32)")
    return ctx.portable(size=tensor_out(ctx.op, ctx.model.graph).size)


# ---- DEQUANTIZE ----


def dequantize_check(op: Operator, graph: Graph) -> list[str]:
    problems = check_arity(op, (1, 1))
    if problems:
        return problems
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    problems = check_int8_activation(x, "input")
    if y.dtype != "float32":
        problems.append(f"output is {y.dtype}; DEQUANTIZE supports int8 -> float32 (model output)")
    if problems:
        return problems
    if x.shape != y.shape:
        return [f"output shape {list(y.shape)} differs from input shape {list(x.shape)}"]
    if not (np.isfinite(x.quant.s) and x.quant.s > 0):
        return ["input scale must be positive and finite"]
    return []


def dequantize_reference(op: Operator, graph: Graph, params, xs: list, rounding: Rounding) -> list[np.ndarray]:
    x = tensor_in(op, graph, 0)
    if x.dtype == "float16":  # fp16 weight models: constant float16 -> float32, folded at compile time
        return [np.asarray(xs[0]).astype(np.float32)]
    if x.quant is None:
        raise KwsgenError(f"{op}: input has no quantization parameters")
    if x.quant.per_channel:  # PerChannelDequantize, only ever folded on constants
        axis = x.quant.axis + 1
        shape = [1] * np.ndim(xs[0])
        shape[axis] = -1
        scale = np.asarray(x.quant.scale, dtype=np.float32).astype(np.float64).reshape(shape)
        zp = np.asarray(x.quant.zero_point, dtype=np.int64).reshape(shape)
        return [(scale * (np.asarray(xs[0], dtype=np.int64) - zp)).astype(np.float32)]
    return [dequantize(xs[0], x.quant.s, x.quant.zp)]


def dequantize_emit(ctx) -> Emitted:
    raise KwsgenError(f"{ctx.op}: DEQUANTIZE runs only as the model's output edge (kws_model_invoke_f32)")


register(OpDef("QUANTIZE", quantize_check, quantize_reference, quantize_prepare, quantize_macs, quantize_emit,
               template="quantize"))
register(OpDef("DEQUANTIZE", dequantize_check, dequantize_reference, emit=dequantize_emit))
