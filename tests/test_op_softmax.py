"""SOFTMAX (int8 -> int8): reference vs TFLM (hypothesis), generated C and CMSIS-NN vs reference, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from kwsgen.errors import UnsupportedModelError
from kwsgen.fixedpoint import Rounding
from kwsgen.importer import load
from kwsgen.interpreter import run
from kwsgen.legalize import load_model
from kwsgen.ops import lookup
from kwsgen.ops.softmax import MAX_DEPTH
from kwsgen.testing import TensorSpec, int8_spec, single_op_model
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify

OUT_Q = (1.0 / 256, -128)


def softmax_model(shape, scale, zp, beta=1.0, out_q=OUT_Q) -> bytes:
    return single_op_model("SOFTMAX", [int8_spec(shape, scale, zp)], [int8_spec(shape, *out_q)], dict(beta=beta))


def sample_inputs(shape, rng, k: int = 6) -> np.ndarray:
    """Uniform rows, rows of equal values (every exp is 1), narrow rows (every value survives diff_min)
    and one-hot rows (one survivor)."""
    shape = tuple(shape)
    rand = rng.integers(-128, 128, size=(k,) + shape, dtype=np.int8)
    equal = np.stack([np.full(shape, v, np.int8) for v in (-128, 0, 127)])
    narrow = np.clip(rng.integers(-2, 3, size=(2,) + shape) + rng.integers(-126, 126), -128, 127).astype(np.int8)
    hot = np.full((1,) + shape, -128, np.int8)
    hot[..., 0] = 127
    return np.concatenate([rand, equal, narrow, hot])


def assert_reference_matches_tflm(buf: bytes, xs: np.ndarray) -> None:
    got = run(load_model(buf), [xs]).outputs[0]
    want = tflm_run(buf, [xs])[0].reshape(got.shape)
    np.testing.assert_array_equal(got, want)


@st.composite
def softmax_cases(draw):
    depth = draw(st.one_of(st.integers(1, 16), st.integers(17, MAX_DEPTH)))
    outer = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    shape = outer + (depth,)
    beta = float(np.float32(draw(st.floats(0.05, 8.0))))
    scale = float(np.float32(2.0 ** draw(st.floats(-12, 3))))  # large scales cap the Q5.26 multiplier
    return shape, scale, draw(st.integers(-128, 127)), beta


@settings(max_examples=200, deadline=None)
@given(case=softmax_cases(), seed=st.integers(0, 2**32 - 1))
def test_reference_matches_tflm(case, seed):
    shape, scale, zp, beta = case
    buf = softmax_model(shape, scale, zp, beta)
    assert_reference_matches_tflm(buf, sample_inputs(shape, np.random.default_rng(seed)))


EDGES = [
    ((1, 12), 0.22083087265491486, 44, 1.0),  # Arm DS-CNN S head
    ((1, 12), 0.25297248363494873, 37, 1.0),  # DS-CNN L
    ((2, 12), 0.2, 44, 0.3),  # beta != 1
    ((2, 12), 0.2, 44, 7.5),
    ((1, 4), 16.0, 0, 4.0),  # beta * scale * 2^26 above 2^31: the multiplier is capped
    ((3, 1), 0.1, -128, 1.0),  # depth 1: always probability 1
    ((1, MAX_DEPTH), 0.05, 0, 1.0),  # the longest row kwsgen accepts; all-equal rows hit the largest sum
    ((1, 10), 2.0**-20, 0, 1.0),  # tiny scale: every difference survives, exps close to 1
]


@pytest.mark.parametrize("shape,scale,zp,beta", EDGES)
def test_edge_cases_match_tflm(shape, scale, zp, beta):
    buf = softmax_model(shape, scale, zp, beta)
    assert_reference_matches_tflm(buf, sample_inputs(shape, np.random.default_rng(shape[-1]), 12))


def test_all_equal_inputs_give_uniform_probabilities():
    buf = softmax_model((1, 8), 0.1, 0)
    out = run(load_model(buf), [np.full((3, 1, 8), 5, np.int8)]).outputs[0]
    assert (out == 32 - 128).all()  # 1/8 = 32/256


# ---- generated C vs reference ----

C_CASES = [
    ((1, 12), 0.22083087265491486, 44, 1.0, True),
    ((3, 2, 33), 0.05, -3, 0.6, True),
    ((1, MAX_DEPTH), 0.05, 0, 1.0, False),
    ((1, 4), 16.0, 0, 4.0, False),
    ((5, 1), 0.1, 17, 1.0, False),
]


@pytest.mark.parametrize("shape,scale,zp,beta,sanitize", C_CASES)
def test_c_matches_reference(shape, scale, zp, beta, sanitize):
    buf = softmax_model(shape, scale, zp, beta)
    model = load_model(buf)
    xs = sample_inputs(shape, np.random.default_rng(7))
    result = verify(model, n=30, given=xs, sanitize=sanitize, source_bytes=buf)
    assert result.mismatches == 0, result.first_bad_layer


def test_c_matches_reference_single_rounding():
    buf = softmax_model((2, 12), 0.2, 44, 0.3)
    xs = sample_inputs((2, 12), np.random.default_rng(8))
    assert verify(load_model(buf, rounding=Rounding.SINGLE), n=30, given=xs, source_bytes=buf).mismatches == 0


@settings(max_examples=5, deadline=None)
@given(case=softmax_cases())
def test_c_matches_reference_random(case):
    shape, scale, zp, beta = case
    buf = softmax_model(shape, scale, zp, beta)
    xs = sample_inputs(shape, np.random.default_rng(9), 2)
    assert verify(load_model(buf), n=20, given=xs, source_bytes=buf).mismatches == 0


def test_cmsis_nn_matches_reference(cmsis_nn):
    """TFLM's cmsis_nn/softmax.cc runs arm_softmax_s8 for int8 -> int8 (host: the scalar path)."""
    for shape, scale, zp, beta in (((1, 12), 0.22083087265491486, 44, 1.0), ((3, 2, 33), 0.05, -3, 0.6),
                                   ((1, MAX_DEPTH), 0.05, 0, 1.0), ((1, 4), 16.0, 0, 4.0)):
        buf = softmax_model(shape, scale, zp, beta)
        xs = sample_inputs(shape, np.random.default_rng(10))
        result = verify(load_model(buf), n=30, given=xs, kernels="cmsis-nn", cmsis_nn=cmsis_nn, source_bytes=buf)
        assert result.mismatches == 0, result.first_bad_layer


# ---- unsupported configurations ----


def _problems(buf: bytes) -> str:
    with pytest.raises(UnsupportedModelError) as err:
        load_model(buf)
    return str(err.value)


def test_rejects_output_quantization_other_than_1_256():
    assert "scale 1/256 and zero point -128" in _problems(softmax_model((1, 12), 0.1, 0, out_q=(1 / 255, -128)))
    assert "scale 1/256 and zero point -128" in _problems(softmax_model((1, 12), 0.1, 0, out_q=(1 / 256, 0)))


def test_rejects_int16_output_and_long_rows_and_tiny_beta():
    buf = single_op_model("SOFTMAX", [int8_spec((1, 12), 0.1, 0)], [TensorSpec((1, 12), "int16", 1 / 65536, -32768)],
                          dict(beta=1.0))
    assert "int8 softmax output only" in _problems(buf)
    assert f"rows above {MAX_DEPTH}" in _problems(softmax_model((1, MAX_DEPTH + 1), 0.1, 0))
    assert "at most 2^-26" in _problems(softmax_model((1, 12), 2.0**-20, 0, beta=2.0**-7))


# ---- the real Arm DS-CNN models ----


@pytest.mark.parametrize("name", ("ds_cnn_s", "ds_cnn_l"))
def test_ds_cnn_softmax_layer(name):
    """The reference and the C kernel reproduce TFLM's SOFTMAX on the logits TFLM computed."""
    buf = shared_path("models", "arm-ds-cnn", f"{name}_quantized.tflite").read_bytes()
    graph = load(buf)
    op = next(o for o in graph.operators if o.kind == "SOFTMAX")
    q = graph.tensors[graph.operators[0].outputs[0]].quant  # the QUANTIZE edge: draw inputs on its grid
    raw = np.random.default_rng(6).integers(-128, 128, size=(12, 1, 490))
    _, inter = tflm_run(buf, [(q.s * (raw - q.zp)).astype(np.float32)], intermediates=True)
    x, y = inter[op.inputs[0]], inter[op.outputs[0]]
    opdef = lookup("SOFTMAX")
    assert opdef.check(op, graph) == []
    params = opdef.prepare(op, graph, Rounding.DOUBLE)
    np.testing.assert_array_equal(opdef.reference(op, graph, params, [x], Rounding.DOUBLE)[0], y)
    xt = graph.tensors[op.inputs[0]]
    replica = softmax_model(xt.shape, xt.quant.s, xt.quant.zp, op.opt("beta"))
    assert verify(load_model(replica), n=2, given=x, source_bytes=replica).mismatches == 0
