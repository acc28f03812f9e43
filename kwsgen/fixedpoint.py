"""Integer arithmetic of TFLite quantized kernels, vectorised with NumPy.

This module is the single Python definition of the fixed-point primitives; the reference
interpreter calls them to execute, the code generator calls them to precompute constants, and
`templates/runtime/kws_fixedpoint.h` is their C twin (same names, same order). Values are carried
in int64 arrays holding int32 quantities; `wrap32` reproduces C's two's complement wrap where the
C code relies on it.

Semantics follow TFLM's `quantization_util.cc`, `common.cc` and gemmlowp's `fixedpoint.h`.
"""

from __future__ import annotations

import math
from enum import Enum

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


class Rounding(str, Enum):
    """How a requantizing multiply rounds (TFLITE_SINGLE_ROUNDING / CMSIS_NN_USE_SINGLE_ROUNDING)."""

    DOUBLE = "double"  # TFLM's and CMSIS-NN's default; the oracle
    SINGLE = "single"


def tflite_round(x: float) -> int:
    """std::round: half away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Vectorised std::round on float64 values (exact for float32 inputs)."""
    x = np.asarray(x, dtype=np.float64)
    return np.trunc(x + np.copysign(0.5, x))


def quantize_multiplier(m: float, rounding: Rounding = Rounding.DOUBLE) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: m ~= q * 2^(shift - 31) with q in [2^30, 2^31); shift > 0 is a left shift."""
    if m == 0.0:
        return 0, 0
    frac, shift = math.frexp(m)
    q = tflite_round(frac * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if rounding is Rounding.SINGLE and shift > 30:
        return INT32_MAX, 30
    return q, shift


def quantize_multipliers(ms, rounding: Rounding = Rounding.DOUBLE) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel QuantizeMultiplier: (int32 multipliers, int32 shifts)."""
    pairs = [quantize_multiplier(float(m), rounding) for m in np.ravel(ms)]
    mult = np.array([p[0] for p in pairs], dtype=np.int32)
    shift = np.array([p[1] for p in pairs], dtype=np.int32)
    return mult, shift


def quantize_multiplier_smaller_than_one_exp(m: float) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: requires m < 1, returns (q, left_shift <= 0)."""
    q, shift = quantize_multiplier(m)
    assert shift <= 0, m
    return q, shift


def wrap32(x: np.ndarray) -> np.ndarray:
    """Two's complement wrap of int64 values to the int32 range."""
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def srdhm(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul (int32)."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    neg = ab < 0
    # (ab + nudge) / 2^31 with C's truncating division, nudge = 2^30 or 1 - 2^30 by sign:
    # for ab < 0 that is -((|ab| + 2^30 - 1) >> 31).
    mag = (np.abs(ab) + ((1 << 30) - neg)) >> 31
    q = np.where(neg, -mag, mag)
    if np.any(b == INT32_MIN):
        q = np.where((a == b) & (a == INT32_MIN), INT32_MAX, q)
    return q


def rdbpot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: round-to-nearest, ties away from zero, arithmetic shift."""
    x, e = _i64(x), _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


_EXACT_F64_X = 1 << 22  # |x| * multiplier < 2^53: the product is exact in float64


def _mbqm_f64(x: np.ndarray, q: np.ndarray, s: np.ndarray, rounding: Rounding) -> np.ndarray:
    """mbqm for shift <= 0, q >= 0 and |x| < 2^22, with the 64-bit product taken in float64.

    NumPy's int64 multiply is not vectorised on common CPUs; float64 is, and with |x * q| < 2^53
    the float product is exact, so converting it back gives the exact int64 product. The rest is
    int64 adds and shifts (vectorised), done in place. Same integers as `mbqm_int64` (tested).
    """
    ab = (x.astype(np.float64) * q.astype(np.float64)).astype(np.int64)
    if rounding is Rounding.SINGLE:  # (ab + 2^(30-s)) >> (31-s)
        total = 31 - s
        ab += np.int64(1) << (total - 1)
        ab >>= total
        return ab
    neg = ab < 0
    mag = np.abs(ab, out=ab)
    # srdhm: (ab + nudge) / 2^31 truncated; for ab < 0 that is -((|ab| + 2^30 - 1) >> 31)
    mag += 1 << 30
    mag -= neg
    mag >>= 31
    # rdbpot by -s: round half away from zero is symmetric in the magnitude
    right = -s
    mag += (np.int64(1) << right) >> 1
    mag >>= right
    np.negative(mag, out=mag, where=neg)
    return mag


def mbqm(x, multiplier, shift, rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """MultiplyByQuantizedMultiplier(int32 x, q, shift); multiplier/shift broadcast (per channel)."""
    x, q, s = np.asarray(x), _i64(multiplier), _i64(shift)
    if np.all(s <= 0) and np.all(q >= 0) and x.size and np.abs(x).max() < _EXACT_F64_X:
        return _mbqm_f64(x, q, s, rounding)
    return mbqm_int64(x, q, s, rounding)


def mbqm_int64(x, multiplier, shift, rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """The integer definition of mbqm (any x in int32, any shift)."""
    x, q, s = _i64(x), _i64(multiplier), _i64(shift)
    if rounding is Rounding.SINGLE:
        total = 31 - s
        return (x * q + (np.int64(1) << (total - 1))) >> total
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    return rdbpot(srdhm(wrap32(x << left), q), right)


def mbqm_smaller_than_one_exp(x, multiplier, left_shift, rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """MultiplyByQuantizedMultiplierSmallerThanOneExp (left_shift <= 0); equals mbqm in both modes."""
    if rounding is Rounding.SINGLE:
        return mbqm(x, multiplier, left_shift, rounding)
    return rdbpot(srdhm(x, multiplier), -_i64(left_shift))


def mbqm_greater_than_one(x, multiplier, left_shift, rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """MultiplyByQuantizedMultiplierGreaterThanOne (left_shift >= 0)."""
    if rounding is Rounding.SINGLE:
        return mbqm(x, multiplier, left_shift, rounding)
    return srdhm(wrap32(_i64(x) << _i64(left_shift)), multiplier)


# ---- gemmlowp fixed-point maths (int32 raw values, `ib` = integer bits of the format) ----


def srm_by_pot(x, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT<exponent>: saturating left shift or rounding right shift."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rdbpot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    shifted = wrap32(x << exponent)
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, shifted))


def rescale(x, src_ib: int, dst_ib: int) -> np.ndarray:
    return srm_by_pot(x, src_ib - dst_ib)


def rounding_half_sum(a, b) -> np.ndarray:
    s = _i64(a) + _i64(b)
    t = s + np.where(s >= 0, 1, -1)
    return np.where(t >= 0, t // 2, -((-t) // 2))


def _add(a, b) -> np.ndarray:
    return wrap32(_i64(a) + _i64(b))


def _sub(a, b) -> np.ndarray:
    return wrap32(_i64(a) - _i64(b))


def fp_one(ib: int) -> int:
    return INT32_MAX if ib == 0 else 1 << (31 - ib)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a) -> np.ndarray:
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = _add(a, 1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = srm_by_pot(x4, -2)
    poly = srm_by_pot(_add(srdhm(_add(x4_over_4, x3), constant_1_over_3), x2), -1)
    return _add(constant_term, srdhm(constant_term, _add(x, poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a, ib: int) -> np.ndarray:
    """exp(a) for a <= 0 in Q(ib); result in Q0."""
    a = _i64(a)
    fb = 31 - ib
    quarter = 1 << (fb - 2)
    a_mod = _sub(a & (quarter - 1), quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(a_mod, ib, 0))
    remainder = _sub(a_mod, a)
    for exponent, multiplier in _EXP_BARREL:
        if ib > exponent:
            bit = np.int64(1) << (fb + exponent)
            result = np.where((remainder & bit) != 0, srdhm(result, multiplier), result)
    if ib > 5:
        result = np.where(a < -(1 << (36 - ib)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal_f2(a) -> np.ndarray:
    """Shared Newton-Raphson body of the two `..._for_x_in_0_1` functions: returns x in Q2."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = _add(1515870810, srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = _sub(fp_one(2), srdhm(half_denominator, x))
        x = _add(x, rescale(srdhm(x, one_minus), 4, 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    return rescale(_newton_reciprocal_f2(a), 1, 0)  # ExactMulByPot<-1> then Rescale<0>


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    return rescale(_sub(_newton_reciprocal_f2(a), fp_one(2)), 2, 0)


def fp_logistic(a, ib: int) -> np.ndarray:
    """gemmlowp::logistic: Q(ib) -> Q0."""
    a = _i64(a)
    positive = a > 0
    abs_in = np.where(positive, a, wrap32(-a))
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_in), ib))
    if_negative = _sub(INT32_MAX, if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def fp_tanh(a, ib: int) -> np.ndarray:
    """gemmlowp::tanh: Q(ib) -> Q0."""
    a = _i64(a)
    negative = a < 0
    n = np.where(negative, a, wrap32(-a))
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, ib + 1))  # ExactMulByPot<1>
    return np.where(a == 0, 0, np.where(negative, wrap32(-t), t))


def count_leading_zeros(x) -> np.ndarray:
    """CountLeadingZeros of uint32 values (32 for 0), `x` holding int32 or uint32 bit patterns."""
    u = _i64(x) & 0xFFFFFFFF
    _, bits = np.frexp(u.astype(np.float64))  # exact: every uint32 is a float64; bits = bit length
    return 32 - bits.astype(np.int64)


def get_reciprocal(x, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite GetReciprocal: 1/x for x > 0 in Q(x_integer_digits) as (Q0 shifted scale, num_bits_over_unit).

    x is normalised to [1, 2) by its headroom, and 1/(1 + (x' - 1)) comes from gemmlowp's Newton-Raphson.
    """
    headroom = count_leading_zeros(x)
    shifted = ((_i64(x) & 0xFFFFFFFF) << headroom) & 0xFFFFFFFF
    shifted_minus_one = wrap32(shifted - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), x_integer_digits - headroom


# ---- quantized activation ranges ----

_INT_RANGE = {"int8": (-128, 127), "int16": (-32768, 32767), "uint8": (0, 255), "int32": (INT32_MIN, INT32_MAX)}


def dtype_range(dtype: str) -> tuple[int, int]:
    return _INT_RANGE[dtype]


def quantize_value(real: float, scale: float, zero_point: int) -> int:
    """TFLM's CalculateActivationRangeQuantized quantize step: zp + TfLiteRound(real / scale) in float32."""
    return zero_point + tflite_round(float(np.float32(real) / np.float32(scale)))


def activation_range(activation: str, scale: float, zero_point: int, dtype: str = "int8") -> tuple[int, int]:
    """CalculateActivationRangeQuantized for a fused activation."""
    qmin, qmax = dtype_range(dtype)
    if activation in ("NONE", None):
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, quantize_value(0.0, scale, zero_point)), qmax
    if activation == "RELU6":
        return max(qmin, quantize_value(0.0, scale, zero_point)), min(qmax, quantize_value(6.0, scale, zero_point))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize_value(-1.0, scale, zero_point)), min(qmax, quantize_value(1.0, scale, zero_point))
    raise ValueError(f"unsupported fused activation {activation}")


SUPPORTED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
