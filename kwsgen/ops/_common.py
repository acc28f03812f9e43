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


def check_activation(op: Operator) -> list[str]:
    act = op.opt("fused_activation_function", "NONE")
    if act not in SUPPORTED_ACTIVATIONS:
        return [f"fused activation {act} is not supported (NONE, RELU, RELU6, RELU_N1_TO_1 are)"]
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


def batch_leading(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """View a batched value [N, *shape] (constants arrive broadcast)."""
    return x.reshape((x.shape[0],) + tuple(shape))


def saturate_int8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -128, 127).astype(np.int8)
