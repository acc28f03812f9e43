"""PAD / PADV2: reference vs TFLM (hypothesis), generated C (portable and CMSIS-NN) vs reference, checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwsgen.errors import UnsupportedModelError
from kwsgen.importer import load
from kwsgen.interpreter import run
from kwsgen.legalize import fold_constants, load_model
from kwsgen.ops.pad import merge_dims
from kwsgen.testing.builder import TensorSpec, const_spec, int8_spec, single_op_model
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify


def pad_model(shape, pads, scale=0.05, zp=-7, value=None) -> bytes:
    """PAD, or PADV2 when a constant `value` is given (quantized like the output, as TFLM requires)."""
    out = tuple(d + b + a for d, (b, a) in zip(shape, pads))
    inputs = [int8_spec(shape, scale, zp), const_spec(np.asarray(pads, dtype=np.int32).reshape(len(shape), 2))]
    if value is not None:
        inputs.append(TensorSpec((), "int8", scale, zp, data=np.array(value, np.int8)))
    return single_op_model("PADV2" if value is not None else "PAD", inputs, [int8_spec(out, scale, zp)])


@st.composite
def pad_cases(draw):
    rank = draw(st.integers(1, 5))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    pads = tuple(
        (draw(st.integers(0, 3)), draw(st.integers(0, 3))) if draw(st.booleans()) else (0, 0) for _ in range(rank)
    )
    zp = draw(st.integers(-128, 127))
    value = draw(st.none() | st.integers(-128, 127))
    return shape, pads, zp, value, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=200, deadline=None)
@given(pad_cases())
def test_reference_matches_tflm(case):
    shape, pads, zp, value, seed = case
    buf = pad_model(shape, pads, zp=zp, value=value)
    x = np.random.default_rng(seed).integers(-128, 128, size=(5, *shape), dtype=np.int8)
    want = tflm_run(buf, [x])[0]
    got = run(load_model(buf), [x]).outputs[0]
    assert np.array_equal(got, want)


@settings(max_examples=150, deadline=None)
@given(pad_cases())
def test_merged_dims_are_equivalent(case):
    """The merged padding the C kernels run produces the same bytes as the original one."""
    shape, pads, _, _, seed = case
    before, after = [p[0] for p in pads], [p[1] for p in pads]
    m_shape, m_before, m_after = merge_dims(shape, before, after)
    assert len(m_shape) <= len(shape)
    x = np.random.default_rng(seed).integers(-128, 128, size=shape, dtype=np.int8)
    want = np.pad(x, list(pads), constant_values=99)
    got = np.pad(x.reshape(m_shape), list(zip(m_before, m_after)), constant_values=99)
    assert np.array_equal(got.ravel(), want.ravel())


C_CASES = [
    # shape, pads, zp, value, sanitize
    ((1, 49, 10, 1), ((0, 0), (4, 5), (1, 2), (0, 0)), -128, None, True),  # DS-CNN style spatial pad
    ((1, 7, 5, 3), ((0, 0), (1, 1), (2, 0), (0, 0)), 127, 5, False),
    ((2, 3, 4), ((1, 0), (0, 2), (3, 1)), 0, None, True),  # every dimension padded, incl. the innermost
    ((1, 2, 3, 2, 3), ((0, 1), (1, 0), (0, 0), (2, 1), (1, 1)), -3, -100, True),  # rank 5: portable only
    ((6,), ((2, 3),), 12, None, False),
    ((1, 4, 4, 8), ((0, 0), (0, 0), (0, 0), (0, 0)), 9, None, False),  # no padding at all
]


@pytest.mark.parametrize("case", C_CASES, ids=lambda c: f"{len(c[0])}d")
def test_portable_c_matches_reference(case):
    shape, pads, zp, value, sanitize = case
    buf = pad_model(shape, pads, zp=zp, value=value)
    result = verify(load_model(buf), n=20, source_bytes=buf, sanitize=sanitize)
    assert result.mismatches == 0, result.first_bad_layer


@pytest.mark.parametrize("case", C_CASES, ids=lambda c: f"{len(c[0])}d")
def test_cmsis_nn_c_matches_reference(case, cmsis_nn):
    shape, pads, zp, value, _ = case
    buf = pad_model(shape, pads, zp=zp, value=value)
    result = verify(load_model(buf), n=20, source_bytes=buf, kernels="cmsis-nn", cmsis_nn=cmsis_nn)
    assert result.mismatches == 0, result.first_bad_layer


def test_int32_and_float_fold():
    """Constant PADs of other dtypes fold at compile time (zero padding, as TFLM)."""
    for dtype in ("int32", "float32"):
        data = np.arange(6).reshape(2, 3).astype(dtype)
        buf = single_op_model("PAD", [TensorSpec((2, 3), dtype, data=data), const_spec([[1, 0], [0, 2]])],
                              [TensorSpec((3, 5), dtype)])
        g = fold_constants(load(buf))
        assert not g.operators
        assert np.array_equal(g.tensors[g.outputs[0]].data, np.pad(data, ((1, 0), (0, 2))))


def _problems(buf: bytes) -> str:
    with pytest.raises(UnsupportedModelError) as err:
        load_model(buf)
    return str(err.value)


def test_check_rejects_unsupported():
    base = {"shape": (1, 4, 4, 2), "pads": ((0, 0), (1, 1), (1, 1), (0, 0))}
    assert "same scale and zero point" in _problems(single_op_model(
        "PAD", [int8_spec(base["shape"], 0.1, 0), const_spec(np.array(base["pads"], np.int32))], [int8_spec((1, 6, 6, 2), 0.2, 0)]))
    assert "negative paddings" in _problems(single_op_model(
        "PAD", [int8_spec((4,), 0.1, 0), const_spec(np.array([[-1, 1]], np.int32))], [int8_spec((4,), 0.1, 0)]))
    assert "does not match the paddings" in _problems(single_op_model(
        "PAD", [int8_spec((4,), 0.1, 0), const_spec(np.array([[1, 1]], np.int32))], [int8_spec((5,), 0.1, 0)]))
    assert "up to 5 dimensions" in _problems(pad_model((1,) * 6, ((0, 0),) * 6))
    assert "paddings is int64" in _problems(single_op_model(
        "PAD", [int8_spec((4,), 0.1, 0), const_spec(np.array([[1, 1]], np.int64), "int64")], [int8_spec((6,), 0.1, 0)]))
    assert "paddings must be a constant" in _problems(single_op_model(
        "PAD", [int8_spec((4,), 0.1, 0), TensorSpec((1, 2), "int32")], [int8_spec((6,), 0.1, 0)]))
    assert "output's scale and zero point" in _problems(single_op_model(
        "PADV2", [int8_spec((4,), 0.1, 0), const_spec(np.array([[1, 1]], np.int32)),
                  TensorSpec((), "int8", 0.1, 3, data=np.array(1, np.int8))], [int8_spec((6,), 0.1, 0)]))
