"""Fixed-point primitives: fast paths equal the integer definitions; QuantizeMultiplier facts."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
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
