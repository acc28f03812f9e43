"""TRANSPOSE: reference vs TFLM (hypothesis, ranks 1-5), copy plan vs reference, C (portable and CMSIS-NN) vs reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwsgen.errors import UnsupportedModelError
from kwsgen.interpreter import run_outputs
from kwsgen.legalize import load_model
from kwsgen.ops._common import copy_plan, copy_plan_indices
from kwsgen.ops.transpose import cmsis_ok
from kwsgen.testing.builder import const_spec, int8_spec, single_op_model
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify


def transpose_model(shape, perm, *, scale=0.05, zp=3, out_shape=None, out_q=None) -> bytes:
    y = out_shape or tuple(shape[p] for p in perm)
    out_scale, out_zp = out_q or (scale, zp)
    return single_op_model("TRANSPOSE", [int8_spec(shape, scale, zp), const_spec(np.array(perm))], [int8_spec(y, out_scale, out_zp)])


@st.composite
def transposes(draw):
    rank = draw(st.integers(1, 5))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    perm = tuple(draw(st.permutations(range(rank))))
    return shape, perm, draw(st.floats(1e-3, 2.0)), draw(st.integers(-128, 127))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=transposes(), seed=st.integers(0, 2**32 - 1))
def test_reference_matches_tflm(case, seed):
    shape, perm, scale, zp = case
    buf = transpose_model(shape, perm, scale=scale, zp=zp)
    x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + shape, dtype=np.int8)
    want = tflm_run(buf, x)[0]
    model = load_model(buf)
    got = run_outputs(model, [x])[0]
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)
    src, dst = copy_plan_indices(model.layers[0].params.plan)  # what kws_copy_s8 moves
    emulated = np.zeros((3, x[0].size), dtype=np.int8)
    emulated[:, dst] = x.reshape(3, -1)[:, src]
    np.testing.assert_array_equal(emulated, want.reshape(3, -1))


def test_plan_is_canonical():
    """Unit axes vanish and axes that stay neighbours merge: NHWC -> NWHC of a 1-row image is one memcpy."""
    plan = load_model(transpose_model((1, 1, 7, 3), (0, 2, 1, 3))).layers[0].params.plan
    assert plan == copy_plan((21,), (1,), (1,))
    plan = load_model(transpose_model((2, 3, 4, 5), (0, 1, 3, 2))).layers[0].params.plan
    assert plan.count == (6, 5, 4) and plan.in_step == (20, 1, 5) and plan.out_step == (20, 4, 1)


CASES = [
    ((2, 3, 4, 5), (2, 0, 3, 1), True),
    ((1, 49, 10), (0, 2, 1), True),  # CRNN: [N, T, F] -> [N, F, T]
    ((6, 7), (1, 0), False),
    ((3, 4), (0, 1), False),  # identity
    ((2, 1, 3, 2, 4), (4, 3, 2, 1, 0), True),  # rank 5
    ((2, 3, 4, 5), (0, 1, 3, 2), False),  # arm_transpose_s8's MVE fast path shape
    ((5,), (0,), False),
]


@pytest.mark.parametrize("shape, perm, sanitize", CASES)
def test_c_matches_reference(shape, perm, sanitize):
    buf = transpose_model(shape, perm, scale=0.5, zp=-128)
    result = verify(load_model(buf), n=12, source_bytes=buf, sanitize=sanitize)
    assert result.ok, result


@pytest.mark.cmsis
@pytest.mark.parametrize("shape, perm, sanitize", CASES)
def test_cmsis_matches_reference(cmsis_nn, shape, perm, sanitize):
    buf = transpose_model(shape, perm)
    result = verify(load_model(buf), kernels="cmsis-nn", cmsis_nn=cmsis_nn, n=12, source_bytes=buf)
    assert result.ok, result


def test_cmsis_only_where_exact():
    assert cmsis_ok((2, 3, 4, 5), (0, 1, 3, 2)) and cmsis_ok((6, 7), (1, 0)) and cmsis_ok((1, 2, 3), (2, 1, 0))
    assert not cmsis_ok((3, 4), (0, 1))  # its rank-2 path always swaps
    assert not cmsis_ok((2, 3, 4, 5), (0, 1, 2, 3))  # its MVE path would swap the inner axes
    assert not cmsis_ok((2, 1, 3, 2, 4), (4, 3, 2, 1, 0))  # TFLM calls it up to rank 4 only
    assert not cmsis_ok((5,), (0,)) and not cmsis_ok((9000, 2), (1, 0))


def test_rejects_inconsistent_models():
    with pytest.raises(UnsupportedModelError, match="not a permutation"):
        load_model(transpose_model((2, 3), (0, 0), out_shape=(2, 2)))
    with pytest.raises(UnsupportedModelError, match="perm has 3 values"):
        load_model(transpose_model((2, 3), (0, 1, 2), out_shape=(2, 3)))
    with pytest.raises(UnsupportedModelError, match="does not match perm"):
        load_model(transpose_model((2, 3), (1, 0), out_shape=(2, 3)))
    with pytest.raises(UnsupportedModelError, match="same scale and zero point"):
        load_model(transpose_model((2, 3), (1, 0), out_q=(0.1, 3)))
    with pytest.raises(UnsupportedModelError, match="rank 6"):
        load_model(transpose_model((1,) * 6, tuple(range(6))))
