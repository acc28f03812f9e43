"""Fixed-point primitives: fast paths equal the integer definitions; QuantizeMultiplier facts."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from kwsgen.fixedpoint import INT32_MAX, INT32_MIN, Rounding, mbqm, mbqm_int64, quantize_multiplier, srdhm


def _srdhm_scalar(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    v = a * b + ((1 << 30) if a * b >= 0 else 1 - (1 << 30))
    return v // (1 << 31) if v >= 0 else -((-v) // (1 << 31))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(INT32_MIN, INT32_MAX), st.integers(INT32_MIN, INT32_MAX)), min_size=1, max_size=50))
def test_srdhm_matches_scalar_definition(pairs):
    a, b = np.array(pairs).T
    assert srdhm(a, b).tolist() == [_srdhm_scalar(int(x), int(y)) for x, y in pairs]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-(1 << 22) + 1, (1 << 22) - 1),
    st.integers(0, INT32_MAX),
    st.integers(-31, 0),
    st.sampled_from(list(Rounding)),
)
def test_float64_fast_path_equals_integer_definition(x0, q, shift, rounding):
    x = np.arange(x0 - 300, x0 + 300).clip(-(1 << 22) + 1, (1 << 22) - 1)
    assert np.array_equal(mbqm(x, q, shift, rounding), mbqm_int64(x, q, shift, rounding))


def test_ties_and_per_channel():
    x = np.arange(-(1 << 15), 1 << 15).reshape(-1, 4)
    q = np.array([1 << 30, (1 << 30) + 1, INT32_MAX, 3 << 28])
    s = np.array([-1, -5, 0, -12])
    for r in Rounding:
        assert np.array_equal(mbqm(x, q, s, r), mbqm_int64(x, q, s, r))


def test_quantize_multiplier_facts():
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)  # shift below -31 flushes to zero
    q, s = quantize_multiplier(0.999999999999)  # rounds up to 2^31: halved, shift + 1
    assert (q, s) == (1 << 30, 1)
    assert quantize_multiplier(2.0 ** 40, Rounding.SINGLE) == (INT32_MAX, 30)


# ---- float64 forms used by the reference interpreter, against the integer definitions ----

from kwsgen.fixedpoint import mbqm_affine, requant_s8, requantize_s8, wrap32  # noqa: E402
from kwsgen.ops._conv_math import FLOAT32_EXACT, exact_matmul_plan  # noqa: E402
from kwsgen.ops.quantize import affine_quantize  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, INT32_MAX),
    st.integers(-31, 30),
    st.sampled_from(list(Rounding)),
    st.floats(0, 1),
)
def test_affine_form_equals_integer_definition_up_to_its_limit(q, shift, rounding, where):
    """mbqm's float64 form, at and around the largest |x| it claims (x_limit) and anywhere below."""
    if rounding is Rounding.SINGLE and shift > 30:
        shift = 30
    form = mbqm_affine(q, shift, rounding)
    limit = int(min(form.x_limit().min(), INT32_MAX))
    event("exact form" if limit >= 0 else "no exact form")
    if limit < 0:  # mbqm falls back to the integer definition
        return
    centre = int(where * limit)
    x = np.unique(np.concatenate([np.arange(-300, 300), np.arange(centre - 300, centre + 300), [limit, limit - 1]]))
    x = np.concatenate([x, -x]).clip(-limit, limit)
    assert np.array_equal(mbqm(x, q, shift, rounding), mbqm_int64(x, q, shift, rounding))


def test_affine_form_ties_and_shift_zero():
    """Values landing exactly on the two roundings' ties, per channel with shifts 0, -1, -13 and a left shift."""
    q = np.array([1 << 30, 1 << 30, 3 << 29, 1 << 30, 1 << 30])
    s = np.array([0, -1, -13, 2, -30])
    x = np.array([k * (1 << j) + d for k in (-3, -1, 1, 3) for j in (0, 1, 12, 13, 14, 20) for d in (-1, 0, 1)])
    x = np.broadcast_to(x[:, None], (x.size, q.size))
    for r in Rounding:
        assert np.array_equal(mbqm(x, q, s, r), mbqm_int64(x, q, s, r))


@st.composite
def output_stages(draw):
    c = draw(st.integers(1, 5))
    ints = lambda lo, hi: np.array(draw(st.lists(st.integers(lo, hi), min_size=c, max_size=c)), np.int64)  # noqa: E731
    q = ints(0, INT32_MAX)
    shift = ints(-20, 3)
    acc_max = 1 << draw(st.integers(0, 26))
    fold = ints(-(1 << 30), 1 << 30) if draw(st.booleans()) else ints(-1000, 1000)
    out_zp = draw(st.integers(-128, 127))
    act_min = draw(st.sampled_from((-128, out_zp, draw(st.integers(-128, 127)))))
    act_max = draw(st.integers(act_min, 127))
    rounding = draw(st.sampled_from(list(Rounding)))
    bound = acc_max if draw(st.booleans()) else acc_max << 20  # a loose bound takes the checked path
    return fold, q, shift, out_zp, act_min, act_max, rounding, acc_max, bound


@settings(max_examples=300, deadline=None)
@given(stage=output_stages(), seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from((np.float32, np.float64, np.int32)))
def test_output_stage_equals_integer_definition(stage, seed, dtype):
    """requantize_s8 (tiled, checked or integer path) == clamp(mbqm(wrap32(acc + fold)) + zp) for any acc."""
    fold, q, shift, out_zp, act_min, act_max, rounding, acc_max, bound = stage
    rng = np.random.default_rng(seed)
    c = fold.size
    acc = rng.integers(-acc_max, acc_max, (4, 6, c), endpoint=True)
    acc[0, 0] = np.clip(-fold, -acc_max, acc_max)  # x = 0 where reachable
    acc[0, 1] = np.clip(-fold - 1, -acc_max, acc_max)
    if dtype is np.float32 and acc_max >= FLOAT32_EXACT:
        return  # not integer-valued in float32: callers never pass such sums
    plan = requant_s8(fold, q, shift, out_zp, act_min, act_max, rounding, bound, per_sample=6 * c)
    event("tiled" if plan.tiled_scale is not None else "checked" if plan.x_limit >= 0 else "integer")
    event("sign term" if plan.neg_half is not None else "no sign term")
    expect = np.clip(mbqm_int64(wrap32(acc + fold), q, shift, rounding) + out_zp, act_min, act_max).astype(np.int8)
    assert np.array_equal(requantize_s8(acc.astype(dtype), plan), expect)
    work = np.empty(acc.size)
    assert np.array_equal(requantize_s8(acc.astype(dtype), plan, work), expect)


def test_output_stage_takes_the_fast_paths_for_real_layers():
    """A typical conv layer is exact by its static bound; an FC layer's loose bound is checked per call."""
    conv = requant_s8(np.full(64, -5000), np.full(64, 1 << 30), np.full(64, -8), -128, -128, 127, Rounding.DOUBLE,
                      np.full(64, 128 * 2000), per_sample=8000)
    assert conv.tiled_scale is not None and conv.tiled_fold is None  # act_min == out_zp: no sign term
    fc = requant_s8(np.full(4, 1 << 22), np.full(4, 1 << 30), np.full(4, -10), 14, -128, 127, Rounding.DOUBLE,
                    np.full(4, 128 * 127 * 4000), per_sample=4)
    assert fc.tiled_scale is None and fc.x_limit > 0


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 3000), m=st.integers(1, 6), a_max=st.sampled_from((1, 128, 255, 1 << 15)),
       seed=st.integers(0, 2**32 - 1))
def test_exact_matmul_equals_integer_product(k, m, a_max, seed):
    """One float32 product, float32 chunks summed in float64, or float64 products: always the exact integers."""
    rng = np.random.default_rng(seed)
    b = rng.integers(-255, 256, (k, m))
    a = rng.integers(-a_max, a_max, (7, k), endpoint=True)
    a[0] = a_max * np.sign(b[:, 0])  # the largest possible sum
    plan = exact_matmul_plan(b, a_max)
    assert np.array_equal(plan(a.astype(np.float32 if a_max < FLOAT32_EXACT else np.float64)), a @ b)


def test_affine_quantize_rounds_half_away_and_saturates():
    zp = 5
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 122.49, 122.5, -133.5, -133.51, 1e9, -1e9, np.inf, -np.inf, np.nan],
                 np.float32)
    expect = [6, 7, 8, 4, 3, 2, 127, 127, -128, -128, 127, -128, 127, -128, -128]
    assert affine_quantize(x, 1.0, zp).tolist() == expect
    rng = np.random.default_rng(0)
    v = (rng.normal(0, 200, 20000)).astype(np.float32)
    slow = [max(-128, min(127, int(float(t) + math.copysign(0.5, t)) + zp)) for t in (v / np.float32(0.75))]
    assert affine_quantize(v, 0.75, zp).tolist() == slow
