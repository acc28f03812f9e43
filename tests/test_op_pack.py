"""PACK and UNPACK: reference vs TFLM (hypothesis, negative axes, constant inputs), copy plans, C vs reference, rejections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwsgen.errors import UnsupportedModelError
from kwsgen.interpreter import run_outputs
from kwsgen.legalize import load_model
from kwsgen.ops._common import copy_plan_indices
from kwsgen.testing.builder import OpSpec, TensorSpec, build_model, const_spec, int8_spec, single_op_model
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify


def pack_model(shape, n, axis, *, scale=0.05, zp=3, consts=None, out_q=None, values_count=None) -> bytes:
    """PACK of n int8 tensors of `shape`; consts maps input position -> constant data."""
    consts = consts or {}
    ins = [TensorSpec(shape, "int8", scale, zp, data=consts[i]) if i in consts else int8_spec(shape, scale, zp) for i in range(n)]
    a = axis % (len(shape) + 1)
    out_scale, out_zp = out_q or (scale, zp)
    out = int8_spec(shape[:a] + (n,) + shape[a:], out_scale, out_zp)
    return single_op_model("PACK", ins, [out], {"values_count": n if values_count is None else values_count, "axis": axis})


def unpack_model(shape, axis, *, scale=0.05, zp=3, num=None, out_shape=None) -> bytes:
    a = axis % len(shape)
    n = shape[a]
    y = out_shape or shape[:a] + shape[a + 1 :]
    return single_op_model("UNPACK", [int8_spec(shape, scale, zp)], [int8_spec(y, scale, zp) for _ in range(n)],
                           {"num": n if num is None else num, "axis": axis})


def _emulate(plan, src_flat: np.ndarray, dst_flat: np.ndarray) -> None:
    src, dst = copy_plan_indices(plan)  # what kws_copy_s8 moves
    dst_flat[:, dst] = src_flat[:, src]


@st.composite
def packs(draw):
    rank = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    n = draw(st.integers(1, 4))
    axis = draw(st.integers(-(rank + 1), rank))
    const_at = draw(st.sets(st.integers(0, n - 1), max_size=n - 1))  # at least one run-time input
    return shape, n, axis, const_at, draw(st.floats(1e-3, 2.0)), draw(st.integers(-128, 127))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=packs(), seed=st.integers(0, 2**32 - 1))
def test_pack_matches_tflm(case, seed):
    shape, n, axis, const_at, scale, zp = case
    rng = np.random.default_rng(seed)
    consts = {i: rng.integers(-128, 128, size=shape, dtype=np.int8) for i in const_at}
    buf = pack_model(shape, n, axis, scale=scale, zp=zp, consts=consts)
    xs = [rng.integers(-128, 128, size=(3,) + shape, dtype=np.int8) for i in range(n) if i not in const_at]
    want = tflm_run(buf, xs)[0]
    model = load_model(buf)
    got = run_outputs(model, xs)[0]
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)
    emulated = np.zeros((3, want[0].size), dtype=np.int8)
    run_time = iter(xs)
    for i, plan in enumerate(model.layers[0].params.plans):
        src = np.broadcast_to(consts[i], (3,) + shape) if i in const_at else next(run_time)
        _emulate(plan, src.reshape(3, -1), emulated)
    np.testing.assert_array_equal(emulated, want.reshape(3, -1))


@st.composite
def unpacks(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    return shape, draw(st.integers(-rank, rank - 1)), draw(st.floats(1e-3, 2.0)), draw(st.integers(-128, 127))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=unpacks(), seed=st.integers(0, 2**32 - 1))
def test_unpack_matches_tflm(case, seed):
    shape, axis, scale, zp = case
    buf = unpack_model(shape, axis, scale=scale, zp=zp)
    x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + shape, dtype=np.int8)
    want = tflm_run(buf, x)
    model = load_model(buf)
    got = run_outputs(model, [x])
    assert len(got) == len(want) == shape[axis]
    for g, w, plan in zip(got, want, model.layers[0].params.plans):
        np.testing.assert_array_equal(g, w)
        emulated = np.zeros((3, w[0].size), dtype=np.int8)
        _emulate(plan, x.reshape(3, -1), emulated)
        np.testing.assert_array_equal(emulated, w.reshape(3, -1))


@pytest.mark.parametrize(
    "shape, n, axis, sanitize",
    [((3, 4), 2, 1, True), ((2, 5), 3, -1, True), ((), 4, 0, False), ((1, 6, 3), 2, 0, False)],
)
def test_pack_c_matches_reference(shape, n, axis, sanitize):
    buf = pack_model(shape, n, axis, scale=0.3, zp=127)
    result = verify(load_model(buf), n=12, source_bytes=buf, sanitize=sanitize)
    assert result.ok, result


def test_pack_with_constant_input_c_matches_reference():
    const = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    buf = pack_model((3, 4), 3, -2, consts={1: const})
    result = verify(load_model(buf), n=12, source_bytes=buf, sanitize=True)
    assert result.ok, result


@pytest.mark.parametrize("shape, axis, sanitize", [((4, 3), 0, True), ((2, 5, 3), -1, True), ((6,), 0, False), ((1, 3, 2, 4), 2, False)])
def test_unpack_c_matches_reference(shape, axis, sanitize):
    """Every UNPACK output is a graph output, so the harness checks each one."""
    buf = unpack_model(shape, axis, scale=0.01, zp=-128)
    result = verify(load_model(buf), n=12, source_bytes=buf, sanitize=sanitize)
    assert result.ok, result


def test_split_unpack_pack_chain_matches_tflm_and_c():
    """Multi-output layers feeding each other and the graph outputs; the C shares one plan per layer."""
    q = (0.1, 2)
    tensors = [int8_spec((2, 7, 3), *q), const_spec(np.array([3, -1, 1])), const_spec(np.array(1)),
               int8_spec((2, 3, 3), *q), int8_spec((2, 3, 3), *q), int8_spec((2, 1, 3), *q),
               int8_spec((2, 3), *q), int8_spec((2, 3), *q), int8_spec((2, 3), *q), int8_spec((3, 2, 3), *q)]
    ops = [OpSpec("SPLIT_V", (0, 1, 2), (3, 4, 5), {"num_splits": 3}),
           OpSpec("UNPACK", (3,), (6, 7, 8), {"num": 3, "axis": 1}),
           OpSpec("PACK", (6, 7, 8), (9,), {"values_count": 3, "axis": 0})]
    buf = build_model(tensors, ops, [0], [4, 5, 9])
    model = load_model(buf)
    x = np.random.default_rng(2).integers(-128, 128, size=(5, 2, 7, 3), dtype=np.int8)
    for got, want in zip(run_outputs(model, [x]), tflm_run(buf, x), strict=True):
        np.testing.assert_array_equal(got, want)
    result = verify(model, n=12, source_bytes=buf, sanitize=True)
    assert result.ok, result


def test_rejects_inconsistent_models():
    with pytest.raises(UnsupportedModelError, match="values_count is 3"):
        load_model(pack_model((2, 3), 2, 0, values_count=3))
    with pytest.raises(UnsupportedModelError, match="same scale and zero point"):
        load_model(pack_model((2, 3), 2, 0, out_q=(0.05, 4)))
    with pytest.raises(UnsupportedModelError, match="out of range"):
        load_model(pack_model((2, 3), 2, 3))
    with pytest.raises(UnsupportedModelError, match="num is 5"):
        load_model(unpack_model((2, 3), 1, num=5))
    with pytest.raises(UnsupportedModelError, match="do not match unpacking"):
        load_model(unpack_model((2, 3), 1, out_shape=(3,)))
    mixed = single_op_model("PACK", [int8_spec((2, 3), 0.1, 0), int8_spec((3, 2), 0.1, 0)], [int8_spec((2, 2, 3), 0.1, 0)],
                            {"values_count": 2, "axis": 0})
    with pytest.raises(UnsupportedModelError, match="same shape"):
        load_model(mixed)
