"""STRIDED_SLICE: reference vs TFLM (hypothesis), the compile-time copy plan vs reference, C vs reference, rejections."""

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

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def python_slice_shape(shape, begin, end, strides, begin_mask, end_mask, shrink_mask) -> tuple[int, ...]:
    """The output shape by Python slicing rules (which TF's strided_slice follows), independent of kwsgen."""
    out = []
    for a, size in enumerate(shape):
        if shrink_mask >> a & 1:
            continue
        b = None if begin_mask >> a & 1 else begin[a]
        e = None if end_mask >> a & 1 else end[a]
        out.append(len(range(*slice(b, e, strides[a]).indices(size))))
    return tuple(out)


def slice_model(shape, begin, end, strides, out_shape=None, *, scale=0.05, zp=3, out_q=None, index_dtype="int32", **options) -> bytes:
    masks = {k: options.get(k, 0) for k in ("begin_mask", "end_mask", "shrink_axis_mask")}
    if out_shape is None:
        out_shape = python_slice_shape(shape, begin, end, strides, *masks.values())
    out_scale, out_zp = out_q or (scale, zp)
    return single_op_model(
        "STRIDED_SLICE",
        [int8_spec(shape, scale, zp), const_spec(np.array(begin), index_dtype), const_spec(np.array(end), index_dtype),
         const_spec(np.array(strides), index_dtype)],
        [int8_spec(out_shape, out_scale, out_zp)],
        options,
    )


def _index(size: int):
    return st.one_of(st.integers(-size - 2, size + 2), st.sampled_from([INT32_MIN, INT32_MAX]))


def _bounds(draw, size: int, stride: int) -> tuple[int, int]:
    """A non-empty range in the stride's direction, each bound written positive or negative at random."""
    lo = draw(st.integers(0, size - 1))
    hi = draw(st.integers(lo, size - 1))
    first, last = (lo, hi + 1) if stride > 0 else (hi, lo - 1)
    if draw(st.booleans()):
        first -= size
    if last < 0 or (last < size and draw(st.booleans())):
        last -= size  # -1 (before index 0, negative stride) is only expressible as -1 - size
    return first, last


@st.composite
def slices(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))
    begin, end, strides = [], [], []
    masks = {"begin_mask": 0, "end_mask": 0, "shrink_axis_mask": 0}
    for a, size in enumerate(shape):
        if draw(st.integers(0, 4)) == 0:  # shrink: TFLM copies one element only for an in-range index, stride > 0
            masks["shrink_axis_mask"] |= 1 << a
            begin.append(draw(st.integers(-size, size - 1)))
            end.append(draw(_index(size)))
            strides.append(1)
        else:
            stride = draw(st.sampled_from([-3, -2, -1, 1, 1, 2, 3]))
            b, e = _bounds(draw, size, stride) if draw(st.integers(0, 7)) else (draw(_index(size)), draw(_index(size)))
            begin.append(b)
            end.append(e)
            strides.append(stride)
        for mask in ("begin_mask", "end_mask"):
            if draw(st.integers(0, 3)) == 0:
                masks[mask] |= 1 << a
    scale = draw(st.floats(1e-3, 2.0))
    zp = draw(st.integers(-128, 127))
    return shape, begin, end, strides, masks, scale, zp


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=slices(), seed=st.integers(0, 2**32 - 1))
def test_reference_matches_tflm(case, seed):
    shape, begin, end, strides, masks, scale, zp = case
    out_shape = python_slice_shape(shape, begin, end, strides, *masks.values())
    buf = slice_model(shape, begin, end, strides, scale=scale, zp=zp, **masks)
    if 0 in out_shape:  # TFLM would produce an empty tensor; kwsgen refuses empty activations
        with pytest.raises(UnsupportedModelError, match="empty"):
            load_model(buf)
        return
    x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + shape, dtype=np.int8)
    want = tflm_run(buf, x)[0]
    model = load_model(buf)
    got = run_outputs(model, [x])[0]
    assert got.dtype == np.int8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    # The C kernel's compile-time plan moves exactly these bytes.
    plan = model.layers[0].params.plan
    src, dst = copy_plan_indices(plan)
    emulated = np.zeros((3, int(np.prod(out_shape))), dtype=np.int8)
    emulated[:, dst] = x.reshape(3, -1)[:, src]
    np.testing.assert_array_equal(emulated, want.reshape(3, -1))
    assert len(plan.count) <= len(shape)


@pytest.mark.parametrize(
    "shape, begin, end, strides, masks",
    [
        ((3, 5, 4), [2, -1, 0], [0, 0, 4], [-1, -2, 1], {}),  # negative strides on the outer axes
        ((2, 7, 6), [0, 1, -1], [2, 7, 0], [1, 3, -2], {"end_mask": 1}),  # negative innermost stride
        ((1, 9, 5, 3), [0, 2, 0, 1], [1, 9, 5, 3], [1, 2, 1, 1], {"shrink_axis_mask": 1}),  # KWS time-step slicing
        ((4, 6, 2, 5), [1, -1, 0, 0], [3, 0, 2, 5], [1, -1, 1, 2], {"begin_mask": 4, "shrink_axis_mask": 0}),
        ((5, 8), [-3, 0], [INT32_MAX, 8], [1, 1], {"shrink_axis_mask": 1}),  # shrink with a negative index
        ((6,), [0], [6], [1], {}),  # identity: a single memcpy
    ],
)
def test_c_matches_reference(shape, begin, end, strides, masks):
    buf = slice_model(shape, begin, end, strides, scale=0.02, zp=-128, **masks)
    result = verify(load_model(buf), n=16, source_bytes=buf, sanitize=True)
    assert result.ok, result


def test_c_matches_tflm_end_to_end():
    shape = (2, 6, 5, 3)
    buf = slice_model(shape, [1, -1, 4, 0], [2, 0, -9, 3], [1, -2, -2, 2], shrink_axis_mask=1)
    model = load_model(buf)
    result = verify(model, n=8, source_bytes=buf)
    assert result.ok, result
    x = np.random.default_rng(7).integers(-128, 128, size=(8,) + shape, dtype=np.int8)
    np.testing.assert_array_equal(run_outputs(model, [x])[0], tflm_run(buf, x)[0])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"ellipsis_mask": 1}, "ellipsis_mask"),
        ({"new_axis_mask": 2}, "new_axis_mask"),
        ({"offset": True}, "offset=true"),
    ],
)
def test_rejects_options_tflm_ignores(options, message):
    buf = slice_model((4, 5), [0, 0], [2, 5], [1, 1], **options)
    with pytest.raises(UnsupportedModelError, match=message):
        load_model(buf)


def test_rejects_shrink_tflm_would_not_fill():
    with pytest.raises(UnsupportedModelError, match="negative stride"):
        load_model(slice_model((4, 5), [1, 0], [2, 5], [-1, 1], (5,), shrink_axis_mask=1))
    with pytest.raises(UnsupportedModelError, match="out of range"):
        load_model(slice_model((4, 5), [4, 0], [5, 5], [1, 1], (5,), shrink_axis_mask=1))


def test_rejects_what_tflm_rejects():
    rank5 = slice_model((2, 1, 2, 1, 2), [0] * 5, [2, 1, 2, 1, 2], [1] * 5)
    with pytest.raises(Exception):
        tflm_run(rank5, np.zeros((1, 2, 1, 2, 1, 2), np.int8))
    with pytest.raises(UnsupportedModelError, match="rank 5"):
        load_model(rank5)
    with pytest.raises(UnsupportedModelError, match="non-zero"):
        load_model(slice_model((4, 5), [0, 0], [2, 5], [1, 0], (2, 1)))
    with pytest.raises(UnsupportedModelError, match="does not match the slice"):
        load_model(slice_model((4, 5), [0, 0], [2, 5], [1, 1], (2, 4)))


def test_rejects_bad_index_tensors_and_quantization():
    with pytest.raises(UnsupportedModelError, match="begin is int64"):
        load_model(slice_model((4, 5), [0, 0], [2, 5], [1, 1], index_dtype="int64"))
    with pytest.raises(UnsupportedModelError, match="same scale and zero point"):
        load_model(slice_model((4, 5), [0, 0], [2, 5], [1, 1], out_q=(0.05, 4)))
    run_time_begin = single_op_model(
        "STRIDED_SLICE",
        [int8_spec((4, 5), 0.1, 0), TensorSpec((2,), "int32"), const_spec(np.array([2, 5])), const_spec(np.array([1, 1]))],
        [int8_spec((2, 5), 0.1, 0)],
    )
    with pytest.raises(UnsupportedModelError, match="begin must be a constant"):
        load_model(run_time_begin)
