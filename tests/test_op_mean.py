"""MEAN (int8): reference vs TFLM over random axis sets (hypothesis), generated C vs reference, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwsgen.errors import UnsupportedModelError
from kwsgen.fixedpoint import Rounding
from kwsgen.interpreter import run
from kwsgen.legalize import load_model
from kwsgen.testing import const_spec, int8_spec, single_op_model
from kwsgen.testing.builder import TensorSpec
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify


def out_shape(shape, axes, keep_dims):
    rank = len(shape)
    red = {a % rank for a in axes}
    if keep_dims:
        return tuple(1 if i in red else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in red)


def mean_model(shape, axes, keep_dims, in_q, out_q) -> bytes:
    x = int8_spec(shape, *in_q)
    y = int8_spec(out_shape(shape, axes, keep_dims), *out_q)
    return single_op_model("MEAN", [x, const_spec(np.asarray(axes, np.int32))], [y], dict(keep_dims=keep_dims))


def sample_inputs(shape, rng, k: int = 6) -> np.ndarray:
    rand = rng.integers(-128, 128, size=(k,) + tuple(shape), dtype=np.int8)
    extremes = np.stack([np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)])
    near = np.clip(rng.integers(-3, 4, size=(2,) + tuple(shape)) + rng.integers(-128, 128), -128, 127).astype(np.int8)
    return np.concatenate([rand, extremes, near])


def assert_reference_matches_tflm(buf: bytes, xs: np.ndarray) -> None:
    got = run(load_model(buf), [xs]).outputs[0]
    want = tflm_run(buf, [xs])[0].reshape(got.shape)
    np.testing.assert_array_equal(got, want)


scales = st.floats(-12, 3).map(lambda e: float(np.float32(2.0**e)))


@st.composite
def mean_cases(draw):
    rank = draw(st.integers(1, 5))
    shape = tuple(draw(st.integers(1, 7)) for _ in range(rank))
    # Negative and repeated axes are legal: TFLM's ResolveAxis wraps and deduplicates them.
    axes = draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank + 1))
    keep_dims = draw(st.booleans())
    in_q = (draw(scales), draw(st.integers(-128, 127)))
    same = draw(st.booleans())
    out_q = in_q if same else (draw(scales), draw(st.integers(-128, 127)))
    return shape, axes, keep_dims, in_q, out_q


@settings(max_examples=220, deadline=None)
@given(case=mean_cases(), seed=st.integers(0, 2**32 - 1))
def test_reference_matches_tflm(case, seed):
    shape, axes, keep_dims, in_q, out_q = case
    buf = mean_model(shape, axes, keep_dims, in_q, out_q)
    assert_reference_matches_tflm(buf, sample_inputs(shape, np.random.default_rng(seed)))


SPATIAL = [
    # DS-CNN / squeeze-excite heads: NHWC spatial mean
    ((1, 25, 5, 64), [1, 2], True, (0.0678, -128), (0.0678, -128)),
    ((1, 25, 5, 64), [1, 2], False, (0.0678, -128), (0.021, 3)),
    ((1, 13, 5, 276), [2, 1], False, (0.0446, -128), (0.0446, -128)),
    ((1, 1, 1, 12), [1, 2], True, (0.1, 7), (0.1, 7)),  # MEAN over 1x1: a copy when quantization matches
    ((1, 1, 1, 12), [1, 2], False, (0.1, 7), (0.37, -100)),  # ... and a requantization when it does not
    ((1, 49, 10, 3), [-3, -2], True, (0.5, 127), (0.002, -128)),  # large ratio: saturates
    ((2, 98, 40, 1), [1, 2], True, (1.0, 0), (0.004, 0)),  # 3920 values per output: folded 1/count
    ((1, 16, 16, 8), [0, 1, 2, 3], False, (0.03, -5), (0.0001, 0)),  # everything into a scalar
]


@pytest.mark.parametrize("shape,axes,keep_dims,in_q,out_q", SPATIAL)
def test_edge_cases_match_tflm(shape, axes, keep_dims, in_q, out_q):
    buf = mean_model(shape, axes, keep_dims, in_q, out_q)
    assert_reference_matches_tflm(buf, sample_inputs(shape, np.random.default_rng(len(shape) + len(axes)), 10))


def test_mean_over_1x1_with_equal_quantization_is_identity():
    buf = mean_model((1, 1, 1, 16), [1, 2], True, (0.1, 7), (0.1, 7))
    xs = sample_inputs((1, 1, 1, 16), np.random.default_rng(3))
    np.testing.assert_array_equal(run(load_model(buf), [xs]).outputs[0], xs)


def test_folded_multiplier_follows_tflm():
    """count 3920 = 2^11.9: shift 11 folded in; (mult << 11) / 3920 truncates."""
    model = load_model(mean_model((1, 98, 40, 1), [1, 2], True, (1.0, 0), (0.004, 0)))
    p = next(l for l in model.layers if l.op.kind == "MEAN").params
    assert p.count == 3920
    from kwsgen.fixedpoint import quantize_multiplier

    mult, shift = quantize_multiplier(1.0 / np.float64(np.float32(0.004)))
    assert (p.multiplier, p.shift) == ((mult << 11) // 3920, shift - 11)


# ---- generated C vs reference ----

C_CASES = [
    ((1, 25, 5, 64), [1, 2], True, (0.0678, -128), (0.021, 3), True),
    ((1, 1, 1, 12), [1, 2], False, (0.1, 7), (0.37, -100), False),
    ((2, 3, 4, 5, 3), [0, 2, -1], False, (0.05, 20), (0.03, -9), True),  # alternating kept/reduced dims
    ((3, 7, 5), [1], True, (0.2, -128), (0.2, -128), False),
    ((1, 16, 16, 8), [0, 1, 2, 3], False, (0.03, -5), (0.0001, 0), True),
]


@pytest.mark.parametrize("shape,axes,keep_dims,in_q,out_q,sanitize", C_CASES)
def test_c_matches_reference(shape, axes, keep_dims, in_q, out_q, sanitize):
    buf = mean_model(shape, axes, keep_dims, in_q, out_q)
    result = verify(load_model(buf), n=40, sanitize=sanitize, source_bytes=buf)
    assert result.inputs == 40 and result.mismatches == 0, result.first_bad_layer


def test_c_matches_reference_single_rounding():
    buf = mean_model((1, 25, 5, 64), [1, 2], False, (0.0678, -128), (0.021, 3))
    model = load_model(buf, rounding=Rounding.SINGLE)
    assert verify(model, n=40, source_bytes=buf).mismatches == 0


@settings(max_examples=6, deadline=None)
@given(case=mean_cases())
def test_c_matches_reference_random(case):
    shape, axes, keep_dims, in_q, out_q = case
    buf = mean_model(shape, axes, keep_dims, in_q, out_q)
    assert verify(load_model(buf), n=20, source_bytes=buf).mismatches == 0


def test_cmsis_build_uses_portable_mean(cmsis_nn):
    """CMSIS-NN has no MEAN (TFLM runs its reference kernel there too): the portable kernel runs."""
    buf = mean_model((1, 25, 5, 64), [1, 2], True, (0.0678, -128), (0.021, 3))
    assert verify(load_model(buf), n=20, kernels="cmsis-nn", cmsis_nn=cmsis_nn, source_bytes=buf).mismatches == 0


# ---- unsupported configurations ----


def _problems(buf: bytes) -> str:
    with pytest.raises(UnsupportedModelError) as err:
        load_model(buf)
    return str(err.value)


def test_rejects_bad_axes():
    x, y = int8_spec((1, 4, 4, 2), 0.1, 0), int8_spec((1, 2), 0.1, 0)
    buf = single_op_model("MEAN", [x, const_spec(np.array([1, 4], np.int32))], [y], dict(keep_dims=False))
    assert "axis 4 is out of range" in _problems(buf)
    buf = single_op_model("MEAN", [x, const_spec(np.array([1, 2]), "int64")], [y], dict(keep_dims=False))
    assert "axis is int64" in _problems(buf)


def test_rejects_run_time_axes_and_wrong_output_size():
    x, y = int8_spec((1, 4, 4, 2), 0.1, 0), int8_spec((1, 2), 0.1, 0)
    axis = TensorSpec((2,), "int32")  # not constant: a second model input
    buf = single_op_model("MEAN", [x, axis], [y], dict(keep_dims=False))
    assert "axis must be a constant" in _problems(buf)
    buf = single_op_model("MEAN", [x, const_spec(np.array([1], np.int32))], [y], dict(keep_dims=False))
    assert "output has 2 elements" in _problems(buf)
