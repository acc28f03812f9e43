"""RESIZE_NEAREST_NEIGHBOR: reference vs TFLM (hypothesis over sizes and align_corners/half_pixel_centers), C vs reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwsgen.errors import UnsupportedModelError
from kwsgen.interpreter import run_outputs
from kwsgen.legalize import load_model
from kwsgen.ops.resize_nearest_neighbor import nearest_indices
from kwsgen.testing.builder import const_spec, int8_spec, single_op_model
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify


def resize_model(shape, size, *, align=False, half=False, scale=0.05, zp=3, out_shape=None, out_q=None) -> bytes:
    y = out_shape or (shape[0], size[0], size[1], shape[3])
    out_scale, out_zp = out_q or (scale, zp)
    return single_op_model(
        "RESIZE_NEAREST_NEIGHBOR",
        [int8_spec(shape, scale, zp), const_spec(np.array(size))],
        [int8_spec(y, out_scale, out_zp)],
        {"align_corners": align, "half_pixel_centers": half},
    )


@st.composite
def resizes(draw):
    if draw(st.integers(0, 3)) == 0:  # one long row: many source indices, where float32 rounding could bite
        shape = (1, 1, draw(st.integers(1, 300)), 1)
        size = (1, draw(st.integers(1, 700)))
    else:
        shape = (draw(st.integers(1, 2)), draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 4)))
        size = (draw(st.integers(1, 20)), draw(st.integers(1, 20)))
    return shape, size, draw(st.booleans()), draw(st.booleans()), draw(st.floats(1e-3, 2.0)), draw(st.integers(-128, 127))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=resizes(), seed=st.integers(0, 2**32 - 1))
def test_reference_matches_tflm(case, seed):
    shape, size, align, half, scale, zp = case
    buf = resize_model(shape, size, align=align, half=half, scale=scale, zp=zp)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(3,) + shape, dtype=np.int8)
    if shape[1] == 1:  # make every column distinct so each source index is visible in the output
        x = np.broadcast_to((np.arange(shape[2]) % 251 - 125).astype(np.int8).reshape(1, 1, 1, -1, 1), (3,) + shape).copy()
    want = tflm_run(buf, x)[0]
    got = run_outputs(load_model(buf), [x])[0]
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)


def test_index_formula_examples():
    """Hand-checked values of TFLM's GetNearestNeighbor."""
    assert nearest_indices(3, 7, False, False).tolist() == [0, 0, 0, 1, 1, 2, 2]  # floor(i * 3/7)
    assert nearest_indices(3, 7, True, False).tolist() == [0, 0, 1, 1, 1, 2, 2]  # round(i * 2/6), half away from 0
    assert nearest_indices(4, 2, False, True).tolist() == [1, 3]  # floor((i + 0.5) * 2)
    assert nearest_indices(5, 1, True, False).tolist() == [0]  # out == 1: in/out scale even with align_corners
    assert nearest_indices(2, 5, True, True).tolist() == [0, 0, 1, 1, 1]  # both flags: round((i + 0.5) * 0.25)
    assert nearest_indices(3, 5, True, False).tolist() == [0, 1, 1, 2, 2]  # i * 0.5: halves round away from zero


@pytest.mark.parametrize("in_w, out_w, align, half", [(2, 82, False, False), (2, 41, False, True), (2, 83, True, False), (2, 42, True, True)])
def test_float32_index_rounding_matches_tflm(in_w, out_w, align, half):
    """Sizes where the same formula evaluated in float64 picks a different source pixel: TFLM computes in float32."""
    x = np.arange(in_w, dtype=np.int8).reshape(1, 1, 1, in_w, 1)
    buf = resize_model((1, 1, in_w, 1), (1, out_w), align=align, half=half)
    got = run_outputs(load_model(buf), [x])[0]
    np.testing.assert_array_equal(got, tflm_run(buf, x)[0])
    assert got.ravel().tolist() == nearest_indices(in_w, out_w, align, half).tolist()


@pytest.mark.parametrize(
    "shape, size, align, half, sanitize",
    [
        ((1, 4, 5, 3), (8, 10), False, False, True),  # 2x upscale: repeated rows are copied from the output
        ((2, 7, 3, 1), (3, 9), True, False, True),  # depth 1 path
        ((1, 6, 6, 8), (4, 5), False, True, False),  # downscale
        ((1, 1, 1, 2), (3, 1), True, True, False),
    ],
)
def test_c_matches_reference(shape, size, align, half, sanitize):
    buf = resize_model(shape, size, align=align, half=half, scale=0.2, zp=-1)
    result = verify(load_model(buf), n=10, source_bytes=buf, sanitize=sanitize)
    assert result.ok, result


def test_rejects_inconsistent_models():
    with pytest.raises(UnsupportedModelError, match="4-D"):
        load_model(single_op_model("RESIZE_NEAREST_NEIGHBOR", [int8_spec((4, 5, 3), 0.1, 0), const_spec(np.array([8, 10]))],
                                   [int8_spec((8, 10, 3), 0.1, 0)]))
    with pytest.raises(UnsupportedModelError, match="does not match size"):
        load_model(resize_model((1, 4, 5, 3), (8, 10), out_shape=(1, 8, 9, 3)))
    with pytest.raises(UnsupportedModelError, match="size has 3 values"):
        load_model(resize_model((1, 4, 5, 3), (8, 10, 1), out_shape=(1, 8, 10, 3)))
    with pytest.raises(UnsupportedModelError, match="same scale and zero point"):
        load_model(resize_model((1, 4, 5, 3), (8, 10), out_q=(0.05, 4)))
