"""AVERAGE_POOL_2D and MAX_POOL_2D: reference vs TFLM (hypothesis), generated C vs reference, edge cases."""

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
from kwsgen.ops import EmitTarget, lookup
from kwsgen.ops.pooling import cmsis_scratch_bytes, valid_taps
from kwsgen.testing import int8_spec, single_op_model
from kwsgen.testing.builder import conv_output_size
from kwsgen.testing.oracle import TflmError, tflm_run
from kwsgen.verify import verify

KINDS = ("AVERAGE_POOL_2D", "MAX_POOL_2D")
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def pool_model(kind, shape, filt, stride, padding, scale, zp, act="NONE", out_scale=None) -> bytes:
    n, h, w, c = shape
    oh = conv_output_size(h, filt[0], stride[0], 1, padding)
    ow = conv_output_size(w, filt[1], stride[1], 1, padding)
    options = dict(padding=padding, stride_h=stride[0], stride_w=stride[1], filter_height=filt[0],
                   filter_width=filt[1], fused_activation_function=act)
    x = int8_spec(shape, scale, zp)
    y = int8_spec((n, oh, ow, c), scale if out_scale is None else out_scale, zp)
    return single_op_model(kind, [x], [y], options)


def sample_inputs(shape, rng, k: int = 6) -> np.ndarray:
    """Uniform samples plus the saturating extremes (all -128, all 127) and a ramp."""
    rand = rng.integers(-128, 128, size=(k,) + tuple(shape), dtype=np.int8)
    ramp = (np.arange(int(np.prod(shape))) % 256 - 128).astype(np.int8).reshape((1,) + tuple(shape))
    extremes = np.stack([np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)])
    return np.concatenate([rand, extremes, ramp])


def assert_reference_matches_tflm(buf: bytes, xs: np.ndarray) -> None:
    got = run(load_model(buf), [xs]).outputs[0]
    want = tflm_run(buf, [xs])[0].reshape(got.shape)
    np.testing.assert_array_equal(got, want)


@st.composite
def pool_cases(draw):
    kind = draw(st.sampled_from(KINDS))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    shape = (draw(st.integers(1, 2)), h, w, draw(st.integers(1, 20)))
    padding = draw(st.sampled_from(("SAME", "VALID")))
    # SAME lets the window hang over every edge (even exceed the input); VALID needs it to fit.
    limit = (h + 3, w + 3) if padding == "SAME" else (h, w)
    filt = (draw(st.integers(1, min(limit[0], 7))), draw(st.integers(1, min(limit[1], 7))))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    scale = float(np.float32(2.0 ** draw(st.floats(-12, 3))))
    zp = draw(st.integers(-128, 127))
    act = draw(st.sampled_from(ACTIVATIONS))
    # TFLM accepts an output scale within 1e-6 of the input's (the clamp then uses the output's) and
    # refuses anything further off: a few float32 ulps land on either side, depending on the scale.
    out_scale = np.float32(scale)
    for _ in range(draw(st.sampled_from((0, 0, 0, 1, 3, 12)))):
        out_scale = np.nextafter(out_scale, np.float32(np.inf))
    return kind, shape, filt, stride, padding, scale, zp, act, float(out_scale)


@settings(max_examples=220, deadline=None)
@given(case=pool_cases(), seed=st.integers(0, 2**32 - 1))
def test_reference_matches_tflm(case, seed):
    kind, shape, filt, stride, padding, scale, zp, act, out_scale = case
    buf = pool_model(kind, shape, filt, stride, padding, scale, zp, act, out_scale)
    xs = sample_inputs(shape, np.random.default_rng(seed))
    try:
        want = tflm_run(buf, [xs])[0]
    except TflmError:  # kwsgen must reject exactly what TFLM's Prepare rejects
        with pytest.raises(UnsupportedModelError, match="scale and zero point"):
            load_model(buf)
        return
    got = run(load_model(buf), [xs]).outputs[0]
    np.testing.assert_array_equal(got, want.reshape(got.shape))


@pytest.mark.parametrize("kind", KINDS)
def test_same_padding_counts_only_valid_taps(kind):
    """A 3x3 SAME average at a corner divides by 4 taps, not 9: zeros are not averaged in."""
    x = np.full((1, 1, 4, 4, 1), 100, np.int8)
    buf = pool_model(kind, (1, 4, 4, 1), (3, 3), (1, 1), "SAME", 0.5, 0)
    got = run(load_model(buf), [x]).outputs[0]
    assert (got == 100).all()  # the average of valid taps only; the max ignores the border as well
    np.testing.assert_array_equal(valid_taps(4, 1, 1, 3, 4), [2, 3, 3, 2])
    assert_reference_matches_tflm(buf, x)


def test_average_rounds_half_away_from_zero():
    """Sums of +-1 over 2 taps: 0.5 -> 1, -0.5 -> -1 (TFLM's (acc +- count/2) / count)."""
    buf = pool_model("AVERAGE_POOL_2D", (1, 1, 2, 2), (1, 2), (1, 2), "VALID", 0.1, 0)
    xs = np.array([[[[[1, -1], [0, 0]]]], [[[[127, -128], [126, -127]]]]], np.int8)
    got = run(load_model(buf), [xs]).outputs[0]
    np.testing.assert_array_equal(got.reshape(2, 2), [[1, -1], [127, -128]])
    assert_reference_matches_tflm(buf, xs)


def test_activation_clamps_with_zero_point_extremes():
    rng = np.random.default_rng(1)
    for kind in KINDS:
        for zp, act in ((-128, "RELU6"), (127, "RELU"), (0, "RELU_N1_TO_1"), (-128, "RELU_N1_TO_1")):
            buf = pool_model(kind, (1, 5, 6, 7), (2, 3), (2, 2), "SAME", 0.02, zp, act)
            assert_reference_matches_tflm(buf, sample_inputs((1, 5, 6, 7), rng))


def test_ds_cnn_global_average_pool():
    """The Arm DS-CNN head: a VALID 25x5 window over the whole map, 64 channels."""
    buf = pool_model("AVERAGE_POOL_2D", (1, 25, 5, 64), (25, 5), (25, 5), "VALID", 0.06783758103847504, -128)
    assert_reference_matches_tflm(buf, sample_inputs((1, 25, 5, 64), np.random.default_rng(2), 20))


# ---- generated C vs reference ----

C_CASES = [
    # kind, shape, filter, stride, padding, activation, sanitize
    ("AVERAGE_POOL_2D", (1, 25, 5, 64), (25, 5), (25, 5), "VALID", "NONE", True),
    ("AVERAGE_POOL_2D", (2, 7, 9, 21), (3, 4), (2, 3), "SAME", "RELU", True),  # channels > block, not % 4
    ("AVERAGE_POOL_2D", (1, 3, 2, 5), (6, 5), (1, 1), "SAME", "RELU6", False),  # window larger than input
    ("MAX_POOL_2D", (1, 9, 7, 3), (2, 2), (2, 2), "SAME", "NONE", True),
    ("MAX_POOL_2D", (2, 6, 11, 17), (3, 5), (1, 3), "SAME", "RELU_N1_TO_1", True),
    ("MAX_POOL_2D", (1, 1, 1, 1), (1, 1), (1, 1), "VALID", "RELU", False),
]


@pytest.mark.parametrize("kind,shape,filt,stride,padding,act,sanitize", C_CASES)
def test_c_matches_reference(kind, shape, filt, stride, padding, act, sanitize):
    buf = pool_model(kind, shape, filt, stride, padding, 0.03, -7, act)
    result = verify(load_model(buf), n=40, sanitize=sanitize, source_bytes=buf)
    assert result.inputs == 40 and result.mismatches == 0, result.first_bad_layer


@settings(max_examples=5, deadline=None)
@given(case=pool_cases())
def test_c_matches_reference_random(case):
    kind, shape, filt, stride, padding, scale, zp, act, _ = case
    buf = pool_model(kind, shape, filt, stride, padding, scale, zp, act)
    result = verify(load_model(buf), n=20, source_bytes=buf)
    assert result.mismatches == 0, result.first_bad_layer


@pytest.mark.parametrize("kind", KINDS)
def test_cmsis_nn_matches_reference(kind, cmsis_nn):
    """TFLM's cmsis_nn/pooling.cc calls arm_avgpool_s8 / arm_max_pool_s8 for every int8 pool (host: scalar path)."""
    for shape, filt, stride, padding, act in (((1, 25, 5, 64), (25, 5), (25, 5), "VALID", "NONE"),
                                              ((2, 7, 9, 21), (3, 4), (2, 3), "SAME", "RELU6")):
        buf = pool_model(kind, shape, filt, stride, padding, 0.05, 11, act)
        result = verify(load_model(buf), n=30, kernels="cmsis-nn", cmsis_nn=cmsis_nn, source_bytes=buf)
        assert result.mismatches == 0, result.first_bad_layer


def test_cmsis_scratch_sizes():
    """arm_avgpool_s8_get_buffer_size: int32 per channel on DSP only (measured: C64 -> 0/256/0)."""
    assert [cmsis_scratch_bytes(isa, 1, 64) for isa in ("scalar", "dsp", "mve")] == [0, 256, 0]
    assert cmsis_scratch_bytes("dsp", 7, 21) == 84
    model = load_model(pool_model("AVERAGE_POOL_2D", (1, 4, 4, 10), (2, 2), (2, 2), "VALID", 0.1, 0))
    layer = next(l for l in model.layers if l.op.kind == "AVERAGE_POOL_2D")
    scratch = [layer.opdef.scratch(layer.op, model.graph, layer.params, EmitTarget(k, isa))
               for k, isa in (("portable", "dsp"), ("cmsis-nn", "scalar"), ("cmsis-nn", "dsp"), ("cmsis-nn", "mve"))]
    assert scratch == [0, 0, 40, 0]
    model = load_model(pool_model("MAX_POOL_2D", (1, 4, 4, 10), (2, 2), (2, 2), "VALID", 0.1, 0))
    layer = next(l for l in model.layers if l.op.kind == "MAX_POOL_2D")
    assert layer.opdef.scratch(layer.op, model.graph, layer.params, EmitTarget("cmsis-nn", "dsp")) == 0


# ---- unsupported configurations ----


def _problems(buf: bytes) -> str:
    with pytest.raises(UnsupportedModelError) as err:
        load_model(buf)
    return str(err.value)


def test_rejects_rescaling_pool():
    x, y = int8_spec((1, 4, 4, 2), 0.1, 0), int8_spec((1, 2, 2, 2), 0.2, 0)
    buf = single_op_model("AVERAGE_POOL_2D", [x], [y], dict(padding="VALID", stride_h=2, stride_w=2, filter_height=2, filter_width=2))
    assert "scale and zero point" in _problems(buf)
    y = int8_spec((1, 2, 2, 2), 0.1, 5)
    buf = single_op_model("MAX_POOL_2D", [x], [y], dict(padding="VALID", stride_h=2, stride_w=2, filter_height=2, filter_width=2))
    assert "scale and zero point" in _problems(buf)


def test_rejects_inconsistent_output_shape():
    x, y = int8_spec((1, 4, 4, 2), 0.1, 0), int8_spec((1, 3, 3, 2), 0.1, 0)
    buf = single_op_model("MAX_POOL_2D", [x], [y], dict(padding="VALID", stride_h=2, stride_w=2, filter_height=2, filter_width=2))
    assert "does not match VALID padding" in _problems(buf)


def test_rejects_float_pool():
    from kwsgen.testing import float_spec

    buf = single_op_model("AVERAGE_POOL_2D", [float_spec((1, 4, 4, 2))], [float_spec((1, 2, 2, 2))],
                          dict(padding="VALID", stride_h=2, stride_w=2, filter_height=2, filter_width=2))
    graph = load(buf)
    problems = lookup("AVERAGE_POOL_2D").check(graph.operators[0], graph)
    assert problems and "float32" in problems[0]


# ---- the real Arm DS-CNN models ----


def real_layer_io(path, kind: str, n: int, seed: int):
    """The model's `kind` operator and TFLM's own input and output of it on N random inputs (intermediates)."""
    buf = path.read_bytes()
    graph = load(buf)
    op = next(o for o in graph.operators if o.kind == kind)
    q = graph.tensors[graph.operators[0].outputs[0]].quant  # the QUANTIZE edge: draw inputs on its grid
    raw = np.random.default_rng(seed).integers(-128, 128, size=(n,) + graph.tensors[graph.inputs[0]].shape)
    _, inter = tflm_run(buf, [(q.s * (raw - q.zp)).astype(np.float32)], intermediates=True)
    return graph, op, inter[op.inputs[0]], inter[op.outputs[0]]


@pytest.mark.parametrize("name", ("ds_cnn_s", "ds_cnn_l"))
def test_ds_cnn_average_pool_layer(name):
    """The reference and the C kernel reproduce TFLM's AVERAGE_POOL_2D on the activations TFLM computed."""
    graph, op, x, y = real_layer_io(shared_path("models", "arm-ds-cnn", f"{name}_quantized.tflite"), "AVERAGE_POOL_2D", 12, 4)
    opdef = lookup(op.kind)
    assert opdef.check(op, graph) == []
    params = opdef.prepare(op, graph, Rounding.DOUBLE)
    np.testing.assert_array_equal(opdef.reference(op, graph, params, [x], Rounding.DOUBLE)[0], y)
    xt, yt = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    replica = single_op_model(op.kind, [int8_spec(xt.shape, xt.quant.s, xt.quant.zp)],
                              [int8_spec(yt.shape, yt.quant.s, yt.quant.zp)], dict(op.options))
    assert verify(load_model(replica), n=2, given=x, source_bytes=replica).mismatches == 0


def _ds_cnn_s_checked_against_tflm():
    buf = shared_path("models", "arm-ds-cnn", "ds_cnn_s_quantized.tflite").read_bytes()
    model = load_model(buf)
    q = model.graph.tensors[model.core_inputs[0]].quant
    x = (q.s * (np.random.default_rng(5).integers(-128, 128, size=(20, 1, 490)) - q.zp)).astype(np.float32)
    got = run(model, [x]).outputs[0]
    np.testing.assert_array_equal(got, tflm_run(buf, [x])[0].reshape(got.shape))
    return model, buf


def test_ds_cnn_s_whole_model_c():
    """ds_cnn_s end to end (AVERAGE_POOL_2D and SOFTMAX among its layers): C == reference == TFLM."""
    model, buf = _ds_cnn_s_checked_against_tflm()
    result = verify(model, n=20, source_bytes=buf)
    assert result.mismatches == 0, result.first_bad_layer


def test_ds_cnn_s_whole_model_cmsis_nn(cmsis_nn):
    model, buf = _ds_cnn_s_checked_against_tflm()
    result = verify(model, n=20, kernels="cmsis-nn", cmsis_nn=cmsis_nn, source_bytes=buf)
    assert result.mismatches == 0, result.first_bad_layer
