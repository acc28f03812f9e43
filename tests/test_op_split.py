"""SPLIT and SPLIT_V: reference vs TFLM (hypothesis, every output), copy plans vs reference, C vs reference, rejections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwsgen.errors import UnsupportedModelError
from kwsgen.interpreter import run_outputs
from kwsgen.legalize import load_model
from kwsgen.ops._common import copy_plan_indices
from kwsgen.testing.builder import TensorSpec, const_spec, int8_spec, single_op_model
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify


def split_model(shape, axis, sizes, *, v: bool, size_splits=None, scale=0.05, zp=3, axis_shape=(), out_q=None,
                num_splits=None) -> bytes:
    """SPLIT (v=False) or SPLIT_V (v=True) of an int8 input into outputs of `sizes` along `axis`."""
    a = axis % len(shape)
    outs = []
    for i, size in enumerate(sizes):
        s, z = out_q if (out_q and i == len(sizes) - 1) else (scale, zp)
        outs.append(int8_spec(shape[:a] + (size,) + shape[a + 1 :], s, z))
    x = int8_spec(shape, scale, zp)
    axis_t = const_spec(np.array(axis).reshape(axis_shape))
    options = {"num_splits": len(sizes) if num_splits is None else num_splits}
    if v:
        splits = const_spec(np.array(sizes if size_splits is None else size_splits))
        return single_op_model("SPLIT_V", [x, splits, axis_t], outs, options)
    return single_op_model("SPLIT", [axis_t, x], outs, options)


@st.composite
def splits(draw, v: bool):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))
    axis = draw(st.integers(-rank, rank - 1))
    dim = shape[axis]
    if v:
        cuts = sorted(draw(st.sets(st.integers(1, dim - 1), max_size=dim - 1))) if dim > 1 else []
        sizes = [b - a for a, b in zip([0] + cuts, cuts + [dim])]
        size_splits = list(sizes)
        if draw(st.booleans()):
            size_splits[draw(st.integers(0, len(sizes) - 1))] = -1
    else:
        n = draw(st.sampled_from([d for d in range(1, dim + 1) if dim % d == 0]))
        sizes, size_splits = [dim // n] * n, None
    scale, zp = draw(st.floats(1e-3, 2.0)), draw(st.integers(-128, 127))
    return shape, axis, sizes, size_splits, scale, zp, draw(st.sampled_from([(), (1,)]))


def _check_against_tflm(buf: bytes, shape, seed: int) -> None:
    x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + shape, dtype=np.int8)
    want = tflm_run(buf, x)
    model = load_model(buf)
    got = run_outputs(model, [x])
    assert len(got) == len(want)
    flat = x.reshape(3, -1)
    for g, w, plan in zip(got, want, model.layers[0].params.plans):
        assert g.dtype == np.int8
        np.testing.assert_array_equal(g, w)
        src, dst = copy_plan_indices(plan)  # what kws_copy_s8 moves for this output
        emulated = np.zeros((3, w[0].size), dtype=np.int8)
        emulated[:, dst] = flat[:, src]
        np.testing.assert_array_equal(emulated, w.reshape(3, -1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=splits(v=False), seed=st.integers(0, 2**32 - 1))
def test_split_matches_tflm(case, seed):
    shape, axis, sizes, _, scale, zp, axis_shape = case
    _check_against_tflm(split_model(shape, axis, sizes, v=False, scale=scale, zp=zp, axis_shape=axis_shape), shape, seed)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=splits(v=True), seed=st.integers(0, 2**32 - 1))
def test_split_v_matches_tflm(case, seed):
    shape, axis, sizes, size_splits, scale, zp, axis_shape = case
    buf = split_model(shape, axis, sizes, v=True, size_splits=size_splits, scale=scale, zp=zp, axis_shape=axis_shape)
    _check_against_tflm(buf, shape, seed)


@pytest.mark.parametrize(
    "shape, axis, sizes, v, sanitize",
    [
        ((2, 6, 4), 1, [2, 2, 2], False, True),
        ((1, 49, 10, 8), -1, [4, 4], False, True),  # channel split (CRNN gates)
        ((3, 5), 0, [1, 1, 1], False, False),  # outermost: one memcpy per output
        ((2, 7, 3), 1, [1, 4, 2], True, True),
        ((4, 9), -1, [5, 1, 3], True, False),
        ((1, 1, 12, 3), 2, [12], True, False),  # a single output: a copy
    ],
)
def test_c_matches_reference(shape, axis, sizes, v, sanitize):
    buf = split_model(shape, axis, sizes, v=v, scale=0.1, zp=-5)
    result = verify(load_model(buf), n=12, source_bytes=buf, sanitize=sanitize)
    assert result.ok, result


def test_rejects_inconsistent_models():
    with pytest.raises(UnsupportedModelError, match="num_splits is 3"):
        load_model(split_model((2, 6), 1, [3, 3], v=False, num_splits=3))
    with pytest.raises(UnsupportedModelError, match="does not split evenly"):
        load_model(split_model((2, 6), 1, [4, 2], v=False))
    with pytest.raises(UnsupportedModelError, match="disagree with the output shapes"):
        load_model(split_model((2, 6), 1, [4, 2], v=True, size_splits=[2, 4]))
    with pytest.raises(UnsupportedModelError, match="only one -1"):
        load_model(split_model((2, 6), 1, [4, 2], v=True, size_splits=[-1, -1]))
    with pytest.raises(UnsupportedModelError, match="out of range"):
        load_model(split_model((2, 6), 2, [1, 1], v=False))
    with pytest.raises(UnsupportedModelError, match="empty"):
        load_model(split_model((2, 6), 1, [6, 0], v=True))
    with pytest.raises(UnsupportedModelError, match="same scale and zero point"):
        load_model(split_model((2, 6), 1, [3, 3], v=False, out_q=(0.05, 2)))


def test_rejects_run_time_axis():
    buf = single_op_model("SPLIT", [TensorSpec((), "int32"), int8_spec((2, 6), 0.1, 0)],
                          [int8_spec((2, 3), 0.1, 0), int8_spec((2, 3), 0.1, 0)], {"num_splits": 2})
    with pytest.raises(UnsupportedModelError, match="axis must be a constant"):
        load_model(buf)
