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
from dataclasses import dataclass, replace
from enum import Enum
from functools import lru_cache

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


# ---- exact float64 evaluation of mbqm (NumPy speed; same integers as `mbqm_int64`, tested) ----
#
# For q >= 0, mbqm(x, q, s) is floor((x * q + k0 - [x < 0] * k1) / 2^d) with per-channel integers d, k0, k1:
# - double rounding, s <= 0 (e = -s): srdhm is floor((x q + 2^30) / 2^31) (its two nudges are one floor), and
#   rdbpot's round-half-away is floor((v + 2^(e-1) - [v < 0]) / 2^e); nested floors merge, so d = 31 + e,
#   k0 = 2^30 + 2^(e-1) * 2^31, k1 = 2^31 (0 when e = 0). [v < 0] may be read as [x < 0]: when they differ
#   v = 0, and both give 0;
# - double rounding, s > 0, without int32 wrap of x << s: d = 31 - s, k0 = 2^(30-s), k1 = 0;
# - single rounding (s <= 30): d = 31 - s, k0 = 2^(30-s), k1 = 0.
# Scaled by 2^-d that is floor(x * scale + offset - [x < 0] * neg_offset), and every term is a multiple of
# 2^-d: float64 computes it exactly while |x| q + k0 + k1 (plus any integer added in units of 2^d) stays
# below 2^53. NumPy's int64 multiply is not vectorised on common CPUs; float64 is, and floor is one pass.

F64_EXACT = float(1 << 52)  # bound checks are evaluated in float64 themselves: keep a factor 2 of margin


@dataclass(frozen=True)
class MbqmAffine:
    """mbqm(x) == floor(x * scale + offset - [x < 0] * neg_offset) while exact (all per channel, float64)."""

    scale: np.ndarray  # q / 2^d
    offset: np.ndarray  # k0 / 2^d
    neg_offset: np.ndarray  # k1 / 2^d
    unit: np.ndarray  # 2^d, to express integers added before the floor in the same units
    wrap_max: np.ndarray  # largest |x| whose int32 shift x << s does not wrap (inf for s <= 0)

    def x_limit(self, extra: float = 0.0) -> np.ndarray:
        """Per channel, the largest |x| for which the form is exact with an integer of magnitude <= `extra`
        also added before the floor (negative where it never is)."""
        q = np.maximum(self.scale * self.unit, 1.0)
        free = F64_EXACT - (self.offset + self.neg_offset + abs(extra)) * self.unit
        return np.minimum(np.floor(free / q), self.wrap_max)


def mbqm_affine(multiplier, shift, rounding: Rounding = Rounding.DOUBLE) -> MbqmAffine | None:
    """The float64 form of mbqm for these (broadcastable) multipliers and shifts; None if there is none (q < 0)."""
    q, s = np.broadcast_arrays(_i64(multiplier), _i64(shift))
    return _mbqm_affine(q.tobytes(), s.tobytes(), q.shape, rounding)  # a layer's constants recur every call


@lru_cache(maxsize=1024)
def _mbqm_affine(q_bytes: bytes, s_bytes: bytes, shape: tuple[int, ...], rounding: Rounding) -> MbqmAffine | None:
    q = np.frombuffer(q_bytes, np.int64).reshape(shape)
    s = np.frombuffer(s_bytes, np.int64).reshape(shape)
    if (q < 0).any() or (s > 30).any() or (s < -62).any():
        return None
    e = np.maximum(-s, 0)
    if rounding is Rounding.DOUBLE:
        d = 31 + e - np.maximum(s, 0)
        k0 = np.where(s <= 0, (1 << 30) + ((np.int64(1) << e) >> 1).astype(np.float64) * 2.0**31, 2.0 ** (30 - s))
        k1 = np.where(s < 0, 2.0**31, 0.0)
        # x << s must not wrap in int32 (the C code wraps it; the float form cannot)
        wrap_max = np.where(s > 0, ((1 << 31) - 1) >> np.maximum(s, 0), np.inf)
    else:
        d = 31 - s
        k0 = 2.0 ** (30 - s)
        k1 = np.zeros(s.shape)
        wrap_max = np.full(s.shape, np.inf)
    unit = 2.0**d
    return MbqmAffine(q / unit, np.asarray(k0 / unit, np.float64), k1 / unit, unit, wrap_max)


def _mbqm_f64(x: np.ndarray, form: MbqmAffine) -> np.ndarray:
    """mbqm through its float64 form (the caller checked exactness): int64 result."""
    y = np.multiply(x, form.scale, dtype=np.float64)
    if form.neg_offset.any():
        # -[x < 0] * k1 as copysign(k1 / 2, x) - k1 / 2: a sign test without a mask (x = 0 counts as >= 0)
        y += np.copysign(form.neg_offset / 2, x)
        y += form.offset - form.neg_offset / 2
    else:
        y += form.offset
    return np.floor(y, out=y).astype(np.int64)


def mbqm(x, multiplier, shift, rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """MultiplyByQuantizedMultiplier(int32 x, q, shift); multiplier/shift broadcast (per channel)."""
    x = np.asarray(x)
    if x.size and x.dtype.kind in "iu":
        form = mbqm_affine(multiplier, shift, rounding)
        if form is not None and max(int(x.max()), -int(x.min())) <= form.x_limit().min():
            return _mbqm_f64(x, form)
    return mbqm_int64(x, multiplier, shift, rounding)


@dataclass(frozen=True)
class RequantS8:
    """A kernel's output stage, int8 clamp(mbqm(wrap32(acc + fold), q, s) + out_zp, act_min, act_max), prepared.

    fold carries what the C kernels precompute per channel (bias, input offset times filter sums), so acc can
    be a plain dot product of raw int8 values. With the float64 form, y = x * scale is computed, then the
    sign term (only where negative x can survive the clamp) and the offsets, including out_zp - act_min so
    that the clamp range is [0, act_max - act_min] and the truncating cast to uint8 is the floor.
    """

    fold: np.ndarray  # int64 [C]
    multiplier: np.ndarray  # int64 [C]
    shift: np.ndarray  # int64 [C]
    out_zp: int
    act_min: int
    act_max: int
    rounding: Rounding
    x_limit: float  # the float64 form is exact while |acc + fold| <= x_limit (-1: there is no such form)
    scale: np.ndarray | None = None  # [C] float64
    neg_half: np.ndarray | None = None  # [C] k1 / 2^d / 2, where the sign term matters
    offset: np.ndarray | None = None  # [C] added last
    # When the caller's bound on |acc| makes every partial sum of acc * scale + fold * scale + ... exact, the
    # same constants tiled over one sample (channel last), so that NumPy's inner loops run over whole samples:
    tiled_scale: np.ndarray | None = None
    tiled_fold: np.ndarray | None = None  # fold * scale, where the sign term matters
    tiled_neg_half: np.ndarray | None = None
    tiled_offset: np.ndarray | None = None  # offset (plus fold * scale where the sign term does not matter)


def requant_s8(fold, multiplier, shift, out_zp: int, act_min: int, act_max: int, rounding: Rounding,
               acc_bound, per_sample: int) -> RequantS8:
    """Prepare `requantize_s8` for accumulators [N, per_sample] (channel last) with |acc| <= acc_bound.

    fold, multiplier, shift and acc_bound are per channel or scalars (C = 1).
    """
    fold, q, s, bound = np.broadcast_arrays(*(np.atleast_1d(_i64(v)) for v in (fold, multiplier, shift, acc_bound)))
    form = mbqm_affine(q, s, rounding)
    if form is None or act_min > act_max:
        return RequantS8(fold, q, s, out_zp, act_min, act_max, rounding, -1.0)
    lift = out_zp - act_min
    x_limit = form.x_limit(lift)
    # every x < 0 gives mbqm <= 0, an output <= out_zp: the sign term matters only if act_min < out_zp
    signed = act_min < out_zp and bool(form.neg_offset.any())
    neg_half = form.neg_offset / 2 if signed else None
    offset = form.offset + lift - (neg_half if signed else 0.0)
    plain = RequantS8(fold, q, s, out_zp, act_min, act_max, rounding, float(x_limit.min()), form.scale, neg_half,
                      offset)
    if (bound + np.abs(fold) > x_limit).any():
        return plain

    def tiled(v: np.ndarray) -> np.ndarray:
        return np.tile(v, per_sample // fold.size)

    if signed:
        return replace(plain, tiled_scale=tiled(form.scale), tiled_fold=tiled(fold * form.scale),
                       tiled_neg_half=tiled(neg_half), tiled_offset=tiled(offset))
    return replace(plain, tiled_scale=tiled(form.scale), tiled_offset=tiled(fold * form.scale + offset))


def requantize_s8(acc: np.ndarray, r: RequantS8, work: np.ndarray | None = None) -> np.ndarray:
    """Apply a prepared output stage to integer-valued acc [N, ..., C] (float32/float64 exact sums or ints).

    `work`, a float64 array of acc's size, holds the intermediate values if given.
    """
    out = None if work is None else work.reshape(acc.shape)
    if r.tiled_scale is not None:  # exact by the caller's bound, and fast: acc * scale + fold * scale + ...
        sample = acc.shape[1:]  # the tiled constants, laid out like one sample; acc may be a strided view
        y = np.multiply(acc, r.tiled_scale.reshape(sample), out=out, dtype=np.float64)
        if r.tiled_fold is not None:
            y += r.tiled_fold.reshape(sample)  # y = x * scale: the sign of x (or a zero, where it is irrelevant)
            y += np.copysign(r.tiled_neg_half.reshape(sample), y)  # see _clamp_s8
        return _clamp_s8(y, None, r.tiled_offset.reshape(sample), r)
    if r.x_limit >= 0 and acc.size:  # accumulators are usually far below the bound: check the actual ones
        x = np.add(acc, r.fold, out=out, dtype=np.float64)  # exact
        if max(x.max(), -x.min()) <= r.x_limit:
            return _clamp_s8(np.multiply(x, r.scale, out=x), r.neg_half, r.offset, r)
    out = mbqm_int64(wrap32(acc.astype(np.int64) + r.fold), r.multiplier, r.shift, r.rounding) + r.out_zp
    return np.clip(out, r.act_min, r.act_max).astype(np.int8)


def _clamp_s8(y: np.ndarray, neg_half: np.ndarray | None, offset: np.ndarray, r: RequantS8) -> np.ndarray:
    """The rest of the float64 form, in place on y = x * scale: sign term, offsets, clamp, floor, int8."""
    if neg_half is not None:
        y += np.copysign(neg_half, y)  # -[x < 0] * k1 / 2^d, as copysign(k1 / 2^(d+1), x) - k1 / 2^(d+1)
    y += offset
    np.clip(y, 0, r.act_max - r.act_min, out=y)
    out = y.astype(np.uint8)  # y >= 0: the truncating cast is the floor
    out += np.uint8(r.act_min & 0xFF)  # back to [act_min, act_max] in two's complement
    return out.view(np.int8).reshape(y.shape)


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
