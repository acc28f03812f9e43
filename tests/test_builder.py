"""The test-model builder and the TFLM oracle wrapper.

Every property test trusts these two, so they are checked against independent facts: the
`tflite` reader and kwsgen's importer must read back exactly what was written, and TFLM must
compute exactly what simple integer arithmetic predicts on models whose requantization is exact
(power-of-two multipliers >= 1), which proves weights, biases, layouts and options reach TFLM as meant.
"""

from __future__ import annotations

import numpy as np
import pytest
import tflite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwsgen.importer import load
from kwsgen.testing import builder as B
from kwsgen.testing.builder import (
    OpSpec,
    TensorSpec,
    build_model,
    const_int8,
    const_int32,
    const_spec,
    conv_output_size,
    float_spec,
    int8_spec,
    option_fields,
    options_table,
    single_op_model,
)
from kwsgen.testing.oracle import TflmError, tflm_min_arena, tflm_run

RNG_SEED = 20261101


def rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


def random_inputs(specs: list[TensorSpec | None], n: int, r: np.random.Generator) -> list[np.ndarray]:
    """A batch for every model input (non-constant spec) in order."""
    xs = []
    for t in specs:
        if t is None or t.is_const:
            continue
        if t.dtype == "int8":
            xs.append(r.integers(-128, 128, (n,) + t.shape, dtype=np.int8))
        else:
            xs.append(r.normal(0.0, 3.0, (n,) + t.shape).astype(np.float32))
    return xs


# --------------------------------------------------------------------------- exact integer references


def act_range(name: str, scale: float, zp: int) -> tuple[int, int]:
    """TFLM's CalculateActivationRangeQuantized for int8 (scale 1.0 in these tests: bounds are exact)."""
    q = lambda v: zp + int(round(v / scale))  # noqa: E731
    lo, hi = {"NONE": (-128, 127), "RELU": (q(0.0), 127), "RELU6": (q(0.0), q(6.0)), "RELU_N1_TO_1": (q(-1.0), q(1.0))}[name]
    return max(-128, lo), min(127, hi)


def conv_acc(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, stride: tuple[int, int], dilation: tuple[int, int],
             padding: str, depth_multiplier: int | None = None) -> np.ndarray:
    """Integer accumulators of CONV_2D ([OC,KH,KW,IC] weights) or, with a multiplier, DEPTHWISE ([1,KH,KW,C*M]).

    `x` already has the input zero point subtracted, so zero padding is TFLite's padding.
    """
    n, h, wd, c = x.shape
    kh, kw = w.shape[1:3]
    oh = conv_output_size(h, kh, stride[0], dilation[0], padding)
    ow = conv_output_size(wd, kw, stride[1], dilation[1], padding)
    pad_h = max((oh - 1) * stride[0] + (kh - 1) * dilation[0] + 1 - h, 0)
    pad_w = max((ow - 1) * stride[1] + (kw - 1) * dilation[1] + 1 - wd, 0)
    xp = np.pad(x.astype(np.int64), ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    oc = w.shape[0] if depth_multiplier is None else w.shape[3]
    acc = np.zeros((n, oh, ow, oc), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dilation[0], kx * dilation[1]
            patch = xp[:, y0 : y0 + (oh - 1) * stride[0] + 1 : stride[0], x0 : x0 + (ow - 1) * stride[1] + 1 : stride[1], :]
            if depth_multiplier is None:
                acc += patch @ w[:, ky, kx, :].astype(np.int64).T
            else:
                acc += patch[..., np.arange(oc) // depth_multiplier] * w[0, ky, kx, :].astype(np.int64)
    return acc if bias is None else acc + bias.astype(np.int64)


def requantize_pow2(acc: np.ndarray, multipliers: np.ndarray, zp: int, lo: int = -128, hi: int = 127) -> np.ndarray:
    """Exact for multipliers that are powers of two >= 1: TFLM's shift-then-SRDHM(2^30) is a plain multiply."""
    return np.clip(acc * multipliers.astype(np.int64) + zp, lo, hi).astype(np.int8)


def quantize_float(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """TFLM AffineQuantize: float32 division, round half away from zero, clamp."""
    q = (x.astype(np.float32) / np.float32(scale)).astype(np.float64)
    return np.clip(np.sign(q) * np.floor(np.abs(q) + 0.5) + zp, -128, 127).astype(np.int8)


# --------------------------------------------------------------------------- round-trip cases


def conv_case(r):
    """CONV_2D, per-channel weights, stride 2, SAME padding, bias; power-of-two multipliers (exact)."""
    in_s, out_s = 0.5, 1.0
    w_s = 2.0 ** r.integers(1, 4, 6)  # multipliers in_s * w_s / out_s in {1, 2, 4}
    w = r.integers(-4, 5, (6, 3, 3, 4), dtype=np.int8)
    bias = r.integers(-50, 50, 6).astype(np.int32)
    ins = [int8_spec((1, 7, 8, 4), in_s, -3), const_int8(w, w_s, 0, 0), const_int32(bias, in_s * w_s)]
    outs = [int8_spec((1, 4, 4, 6), out_s, 5)]
    opts = {"padding": "SAME", "stride_w": 2, "stride_h": 2, "fused_activation_function": "NONE"}

    def expect(xs):
        acc = conv_acc(xs[0].reshape(-1, 7, 8, 4).astype(np.int64) + 3, w, bias, (2, 2), (1, 1), "SAME")
        return [requantize_pow2(acc, in_s * w_s / out_s, 5).reshape(-1, 1, 4, 4, 6)]

    return "CONV_2D", ins, outs, opts, expect


def depthwise_case(r):
    """DEPTHWISE_CONV_2D with depth multiplier 2 and dilation 2, per-channel on axis 3, bias."""
    in_s, out_s = 1.0, 1.0
    w_s = 2.0 ** r.integers(0, 3, 6)
    w = r.integers(-3, 4, (1, 3, 3, 6), dtype=np.int8)
    bias = r.integers(-30, 30, 6).astype(np.int32)
    ins = [int8_spec((1, 9, 7, 3), in_s, 2), const_int8(w, w_s, 0, 3), const_int32(bias, in_s * w_s)]
    outs = [int8_spec((1, 9, 7, 6), out_s, -1)]
    opts = {"padding": "SAME", "stride_w": 1, "stride_h": 1, "depth_multiplier": 2, "dilation_w_factor": 2,
            "dilation_h_factor": 2, "fused_activation_function": "RELU"}
    lo, hi = act_range("RELU", out_s, -1)

    def expect(xs):
        acc = conv_acc(xs[0].reshape(-1, 9, 7, 3).astype(np.int64) - 2, w, bias, (1, 1), (2, 2), "SAME", 2)
        return [requantize_pow2(acc, in_s * w_s / out_s, -1, lo, hi).reshape(-1, 1, 9, 7, 6)]

    return "DEPTHWISE_CONV_2D", ins, outs, opts, expect


def fully_connected_case(r):
    """FULLY_CONNECTED, keep_num_dims on a 3-D input, per-tensor weights, bias; multiplier exactly 1."""
    w = r.integers(-3, 4, (5, 8), dtype=np.int8)
    bias = r.integers(-20, 20, 5).astype(np.int32)
    ins = [int8_spec((1, 3, 8), 1.0, 4), const_int8(w, 0.5), const_int32(bias, 0.5)]
    outs = [int8_spec((1, 3, 5), 0.5, -2)]

    def expect(xs):
        acc = (xs[0].astype(np.int64) - 4) @ w.T.astype(np.int64) + bias
        return [np.clip(acc - 2, -128, 127).astype(np.int8)]

    return "FULLY_CONNECTED", ins, outs, {"keep_num_dims": True, "fused_activation_function": "NONE"}, expect


def mean_case(r):
    """MEAN over H and W with keep_dims (the DS-CNN head); TFLM's numerics are the reference's job."""
    ins = [int8_spec((1, 5, 4, 6), 0.1, 3), const_spec(np.array([1, 2], np.int32))]
    return "MEAN", ins, [int8_spec((1, 1, 1, 6), 0.05, -1)], {"keep_dims": True}, None


def reshape_case(r):
    """RESHAPE with both a shape tensor and new_shape option: bytes pass through unchanged."""
    ins = [int8_spec((1, 4, 5), 0.2, 1), const_spec(np.array([1, 20], np.int32))]
    outs = [int8_spec((1, 20), 0.2, 1)]
    return "RESHAPE", ins, outs, {"new_shape": [1, 20]}, lambda xs: [xs[0].reshape(-1, 1, 20)]


def strided_slice_case(r):
    """STRIDED_SLICE with a begin mask and a negative stride-free end, compared with numpy slicing."""
    ins = [int8_spec((1, 6, 8), 0.2, 1), const_spec(np.array([0, 5, 1], np.int32)),
           const_spec(np.array([1, 1, 8], np.int32)), const_spec(np.array([1, -2, 3], np.int32))]
    outs = [int8_spec((1, 2, 3), 0.2, 1)]
    opts = {"begin_mask": 1, "end_mask": 0, "shrink_axis_mask": 0}
    return "STRIDED_SLICE", ins, outs, opts, lambda xs: [xs[0][:, 0:1, 5:1:-2, 1:8:3]]


def concatenation_case(r):
    """CONCATENATION on the last axis with equal quantization: a plain copy."""
    ins = [int8_spec((1, 2, 3), 0.1, 2), int8_spec((1, 2, 4), 0.1, 2)]
    outs = [int8_spec((1, 2, 7), 0.1, 2)]
    return "CONCATENATION", ins, outs, {"axis": -1}, lambda xs: [np.concatenate(xs, axis=-1)]


def quantize_case(r):
    """QUANTIZE float32 -> int8 (the float edge of the Arm DS-CNN models)."""
    ins = [float_spec((1, 10))]
    outs = [int8_spec((1, 10), 0.0625, -7)]
    return "QUANTIZE", ins, outs, {}, lambda xs: [quantize_float(xs[0], 0.0625, -7)]


CASES = {
    "conv_2d": conv_case,
    "depthwise_conv_2d": depthwise_case,
    "fully_connected": fully_connected_case,
    "mean": mean_case,
    "reshape": reshape_case,
    "strided_slice": strided_slice_case,
    "concatenation": concatenation_case,
    "quantize": quantize_case,
}


def assert_tensor_matches(t, spec: TensorSpec) -> None:
    assert t.shape == spec.shape and t.dtype == spec.dtype
    if spec.scale is None:
        assert t.quant is None
    else:
        assert t.quant.scale == tuple(float(np.float32(s)) for s in spec.scale)
        assert t.quant.zero_point == spec.zero_point
        assert t.quant.axis == spec.quantized_dimension
    if spec.is_const:
        assert t.data is not None and t.data.dtype == spec.data.dtype
        assert np.array_equal(t.data, spec.data)
    else:
        assert t.data is None


@pytest.mark.parametrize("case", list(CASES))
def test_single_op_round_trip_and_tflm(case: str) -> None:
    r = rng()
    kind, ins, outs, opts, expect = CASES[case](r)
    model = single_op_model(kind, ins, outs, opts)
    g = load(model)

    present = [t for t in ins if t is not None]
    assert len(g.tensors) == len(present) + len(outs)
    for t, spec in zip(g.tensors, present + outs):
        assert_tensor_matches(t, spec)
    (op,) = g.operators
    assert op.kind == kind
    assert op.inputs == tuple(-1 if t is None else present.index(t) for t in ins)
    for key, value in opts.items():
        decoded = op.options[key]
        assert (tuple(decoded) if isinstance(value, list) else decoded) == (tuple(value) if isinstance(value, list) else value)
    assert g.inputs == tuple(i for i, t in enumerate(present) if not t.is_const)
    assert g.outputs == tuple(range(len(present), len(present) + len(outs)))

    xs = random_inputs(ins, 4, r)
    got = tflm_run(model, xs)
    assert [(o.shape, o.dtype) for o in got] == [((4,) + s.shape, np.dtype(s.dtype)) for s in outs]
    if expect is not None:
        for o, e in zip(got, expect(xs)):
            np.testing.assert_array_equal(o, e)


def test_custom_op_round_trips_and_tflm_refuses_it() -> None:
    model = single_op_model("CUSTOM", [int8_spec((1, 5), 0.1, 0)], [int8_spec((1, 5), 0.1, 0)],
                            custom_code="KwsTestOp", custom_options=b"\x01\x02")
    g = load(model)
    assert g.operators[0].kind == "CUSTOM"
    assert g.operators[0].options["custom_code"] == "KwsTestOp"
    m = tflite.Model.GetRootAs(model, 0)
    assert m.Subgraphs(0).Operators(0).CustomOptionsAsNumpy().tobytes() == b"\x01\x02"
    with pytest.raises(TflmError, match="CUSTOM"):
        tflm_run(model, [np.zeros((1, 1, 5), np.int8)])


# --------------------------------------------------------------------------- schema facts


def test_flatbuffer_schema_facts() -> None:
    """Identifier, version, empty buffer 0, both opcode fields, aligned constant data, shared opcodes."""
    w = np.arange(24, dtype=np.int8).reshape(4, 6)
    tensors = [int8_spec((1, 6), 0.1, 0), const_int8(w, 0.1), int8_spec((1, 4), 0.1, 0),
               int8_spec((1, 4), 0.1, 0), TensorSpec((1, 4), "float32")]
    ops = [OpSpec("FULLY_CONNECTED", (0, 1, -1), (2,)), OpSpec("RELU", (2,), (3,)), OpSpec("GELU", (3,), (4,))]
    model = build_model(tensors, ops, [0], [4], description="facts")
    assert model == build_model(tensors, ops, [0], [4], description="facts")  # deterministic
    assert model[4:8] == b"TFL3"
    m = tflite.Model.GetRootAs(model, 0)
    assert m.Version() == 3 and m.Description() == b"facts"
    assert m.Buffers(0).DataLength() == 0
    codes = [(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode()) for i in range(m.OperatorCodesLength())]
    gelu = tflite.BuiltinOperator.GELU
    assert gelu > 127
    assert codes == [(tflite.BuiltinOperator.FULLY_CONNECTED,) * 2, (tflite.BuiltinOperator.RELU,) * 2, (gelu, 127)]
    sg = m.Subgraphs(0)
    weights = sg.Tensors(1)
    data = m.Buffers(weights.Buffer()).DataAsNumpy()
    assert data.tobytes() == w.tobytes()
    offset = data.__array_interface__["data"][0] - np.frombuffer(model, np.uint8).__array_interface__["data"][0]
    assert offset % B.BUFFER_ALIGNMENT == 0
    assert all(sg.Tensors(i).Buffer() == 0 for i in (0, 2, 3, 4))
    assert list(sg.Operators(0).InputsAsNumpy()) == [0, 1, -1]
    # two FULLY_CONNECTED ops share one operator code
    twice = build_model(tensors[:3] + [int8_spec((1, 4), 0.1, 0)],
                        [OpSpec("FULLY_CONNECTED", (0, 1, -1), (2,)), OpSpec("FULLY_CONNECTED", (0, 1, -1), (3,))], [0], [2, 3])
    assert tflite.Model.GetRootAs(twice, 0).OperatorCodesLength() == 1


def test_dynamic_batch_signature_and_variable_tensor_round_trip() -> None:
    spec = TensorSpec((1, 10), "int8", 0.1, 0, shape_signature=(-1, 10), name="audio")
    state = TensorSpec((1, 10), "int8", 0.1, 0, is_variable=True, name="state")
    model = single_op_model("ADD", [spec, state], [int8_spec((1, 10), 0.2, 0)])
    m = tflite.Model.GetRootAs(model, 0)
    assert list(m.Subgraphs(0).Tensors(0).ShapeSignatureAsNumpy()) == [-1, 10]
    g = load(model)
    assert g.tensors[0].name == "audio" and g.tensors[1].variable and g.inputs == (0,)


# --------------------------------------------------------------------------- options by reflection


def non_default_value(f) -> object:
    if f.kind == "vector":
        return [1, 2] if f.element_dtype.kind in "iu" else [0.5, 1.5]
    if f.kind == "string":
        return "s"
    return {"Bool": True, "Float32": 0.5}.get(f.slot_type, 1)


def expected_decoded(key: str, value: object) -> object:
    if key == "padding":
        return "VALID"  # Padding 1
    if key == "fused_activation_function":
        return "RELU"  # ActivationFunctionType 1
    return tuple(value) if isinstance(value, list) else value


def raw_options(model: bytes, table: str):
    """The options table read with the `tflite` reader itself."""
    t = tflite.Model.GetRootAs(model, 0).Subgraphs(0).Operators(0).BuiltinOptions()
    opts = getattr(tflite, table)()
    opts.Init(t.Bytes, t.Pos)
    return opts


def test_every_options_table_round_trips_through_the_importer() -> None:
    """All tables: names match decode_options and every field written non-default reads back."""
    kinds = [k for k in vars(tflite.BuiltinOperator) if not k.startswith("_") and options_table(k)]
    assert len(kinds) > 100
    for kind in kinds:
        fields = B._table_fields(options_table(kind))
        options = {k: non_default_value(f) for k, f in fields.items()}
        model = build_model([int8_spec((1,))], [OpSpec(kind, (0,), (0,), options)], [0], [0])
        decoded = dict(load(model).operators[0].options)
        if kind == "CALL_ONCE":  # the importer skips accessors starting with "Init" (InitSubgraphIndex)
            decoded["init_subgraph_index"] = 1
        assert set(decoded) == set(option_fields(kind)), kind
        for key, value in options.items():
            got = decoded[key]
            if isinstance(value, list) and isinstance(value[0], float):  # the importer reads vectors as ints
                got = tuple(raw_options(model, options_table(kind)).__getattribute__(B._camel(key) + "AsNumpy")())
            assert got == expected_decoded(key, value), (kind, key)


def test_options_table_mapping() -> None:
    assert options_table("CONV_2D") == "Conv2DOptions"
    assert options_table("MAX_POOL_2D") == options_table("AVERAGE_POOL_2D") == "Pool2DOptions"
    assert options_table("MEAN") == "ReducerOptions"
    assert options_table("UNIDIRECTIONAL_SEQUENCE_LSTM") == "UnidirectionalSequenceLSTMOptions"
    assert options_table("BATCH_MATMUL") == "BatchMatMulOptions"
    for kind in ("LOGISTIC", "TANH", "RELU", "RELU6", "CUSTOM"):
        assert options_table(kind) is None


@pytest.mark.parametrize(
    "kind, options, message",
    [
        ("CONV_2D", {"stride": 2}, "no option"),
        ("CONV_2D", {"padding": "VALID"}, "needs option"),
        ("DEPTHWISE_CONV_2D", {"stride_w": 1, "stride_h": 1}, "depth_multiplier"),
        ("CONV_2D", {"padding": "SOME", "stride_w": 1, "stride_h": 1}, "expected one of"),
        ("CONV_2D", {"fused_activation_function": "SIGMOID", "stride_w": 1, "stride_h": 1}, "expected one of"),
        ("CONV_2D", {"stride_w": 1.5, "stride_h": 1}, "expected an integer"),
        ("FULLY_CONNECTED", {"keep_num_dims": 2}, "expected a bool"),
        ("RESHAPE", {"new_shape": 20}, "1-D"),
        ("RESHAPE", {"new_shape": [1.5]}, "does not fit"),
        ("LOGISTIC", {"beta": 1.0}, "takes no options"),
    ],
)
def test_bad_options_raise(kind: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        single_op_model(kind, [int8_spec((1, 4, 4, 1))], [int8_spec((1, 4, 4, 1))], options)


def test_bad_specs_raise() -> None:
    with pytest.raises(ValueError, match="without loss"):
        const_int8(np.array([1.5, 2.0]), 0.1)
    with pytest.raises(ValueError, match="without loss"):
        const_int8(np.array([300]), 0.1)
    with pytest.raises(ValueError, match="zero points"):
        TensorSpec((2,), "int8", (0.1, 0.2), (0, 1, 2))
    with pytest.raises(ValueError, match="elements"):
        TensorSpec((3,), "int8", data=np.zeros(2, np.int8))
    with pytest.raises(ValueError, match="unknown TFLite builtin"):
        OpSpec("CONV2D", (0,), (1,))
    with pytest.raises(ValueError, match="custom_code"):
        OpSpec("CUSTOM", (0,), (1,))
    with pytest.raises(ValueError, match="refers to tensor 5"):
        build_model([int8_spec((1,))], [OpSpec("RELU", (5,), (0,))], [0], [0])
    per_channel = TensorSpec((3, 1), "int8", (0.1, 0.2, 0.3), 0)
    assert per_channel.zero_point == (0, 0, 0)


# --------------------------------------------------------------------------- oracle wrapper


def relu_model() -> bytes:
    return single_op_model("RELU", [int8_spec((1, 2, 3), 0.1, -4)], [int8_spec((1, 2, 3), 0.1, -4)])


def test_tflm_run_accepts_flat_inputs_and_checks_them() -> None:
    r = rng()
    x = r.integers(-128, 128, (5, 1, 2, 3), dtype=np.int8)
    (a,) = tflm_run(relu_model(), [x])
    (b,) = tflm_run(relu_model(), x.reshape(5, 6))
    np.testing.assert_array_equal(a, np.maximum(x, -4))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="must be int8"):
        tflm_run(relu_model(), [x.astype(np.int16)])
    with pytest.raises(ValueError, match="shape"):
        tflm_run(relu_model(), [x.reshape(5, 6)[:, :5]])
    with pytest.raises(ValueError, match="1 input"):
        tflm_run(relu_model(), [x, x])
    assert tflm_run(relu_model(), [x[:0]])[0].shape == (0, 1, 2, 3)


def test_tflm_intermediates_are_every_activation() -> None:
    r = rng()
    tensors = [int8_spec((1, 6), 0.1, 0), int8_spec((1, 6), 0.1, 0), const_spec(np.array([2, 3], np.int32)),
               int8_spec((2, 3), 0.1, 0)]
    ops = [OpSpec("RELU", (0,), (1,)), OpSpec("RESHAPE", (1, 2), (3,))]
    model = build_model(tensors, ops, [0], [3])
    x = r.integers(-128, 128, (3, 1, 6), dtype=np.int8)
    outputs, inter = tflm_run(model, [x], intermediates=True)
    assert sorted(inter) == [0, 1, 3]
    np.testing.assert_array_equal(inter[0], x)
    np.testing.assert_array_equal(inter[1], np.maximum(x, 0))
    np.testing.assert_array_equal(inter[3], outputs[0])


def depthwise_without_bias(bias_slot: bool) -> bytes:
    ins = [int8_spec((1, 5, 5, 3), 1.0, 0), const_int8(np.ones((1, 3, 3, 6), np.int8), [1.0] * 6, 0, 3)]
    return single_op_model("DEPTHWISE_CONV_2D", ins + [None] * bias_slot, [int8_spec((1, 5, 5, 6), 1.0, 0)],
                           {"padding": "SAME", "stride_w": 1, "stride_h": 1, "depth_multiplier": 2})


def test_isolated_run_survives_a_tflm_crash() -> None:
    """Measured TFLM bug: DEPTHWISE_CONV_2D with an absent bias (-1, as the converter writes for an
    all-zero bias) frees a null temp tensor in Prepare and dies with SIGSEGV; two inputs work."""
    x = np.ones((2, 1, 5, 5, 3), np.int8)
    (ok,) = tflm_run(depthwise_without_bias(False), [x])
    assert ok[0, 0, 2, 2].tolist() == [9] * 6 and ok[0, 0, 0, 0].tolist() == [4] * 6
    with pytest.raises(TflmError, match="crashed"):
        tflm_run(depthwise_without_bias(True), [x], isolated=True)
    np.testing.assert_array_equal(tflm_run(relu_model(), [x.reshape(2, -1)[:, :6]], isolated=True)[0],
                                  tflm_run(relu_model(), [x.reshape(2, -1)[:, :6]])[0])


def test_min_arena_is_the_boundary() -> None:
    _, ins, outs, opts, _ = conv_case(rng())
    model = single_op_model("CONV_2D", ins, outs, opts)
    size = tflm_min_arena(model)
    x = random_inputs(ins, 1, rng())
    assert tflm_run(model, x, arena_size=size)[0].shape == (1, 1, 4, 4, 6)
    with pytest.raises(TflmError):
        tflm_run(model, x, arena_size=size - 1, isolated=True)


# --------------------------------------------------------------------------- property: random convolutions

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


@st.composite
def conv_params(draw):
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    min_h = (kh - 1) * dh + 1 if padding == "VALID" else 1
    min_w = (kw - 1) * dw + 1 if padding == "VALID" else 1
    h, w = draw(st.integers(min_h, min_h + 8)), draw(st.integers(min_w, min_w + 8))
    return dict(
        padding=padding, kernel=(kh, kw), dilation=(dh, dw), stride=(sh, sw), hw=(h, w),
        cin=draw(st.integers(1, 6)), cout=draw(st.integers(1, 6)), bias=draw(st.booleans()),
        zp_in=draw(st.integers(-128, 127)), zp_out=draw(st.integers(-20, 20)),
        act=draw(st.sampled_from(ACTIVATIONS)), seed=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_params())
def test_random_conv_shapes_tflm_accepts_and_computes_exactly(p) -> None:
    r = np.random.default_rng(p["seed"])
    (h, w), (kh, kw), cin, cout = p["hw"], p["kernel"], p["cin"], p["cout"]
    oh = conv_output_size(h, kh, p["stride"][0], p["dilation"][0], p["padding"])
    ow = conv_output_size(w, kw, p["stride"][1], p["dilation"][1], p["padding"])
    in_s, out_s = 0.25, 1.0
    w_s = 2.0 ** r.integers(2, 5, cout)  # per-channel multipliers 1, 2 or 4: exact requantization
    weights = r.integers(-3, 4, (cout, kh, kw, cin), dtype=np.int8)
    bias = r.integers(-100, 100, cout).astype(np.int32)
    ins = [int8_spec((1, h, w, cin), in_s, p["zp_in"]), const_int8(weights, w_s, 0, 0),
           const_int32(bias, in_s * w_s) if p["bias"] else None]
    outs = [int8_spec((1, oh, ow, cout), out_s, p["zp_out"])]
    opts = {"padding": p["padding"], "stride_h": p["stride"][0], "stride_w": p["stride"][1],
            "dilation_h_factor": p["dilation"][0], "dilation_w_factor": p["dilation"][1],
            "fused_activation_function": p["act"]}
    model = single_op_model("CONV_2D", ins, outs, opts)

    g = load(model)
    assert g.tensors[g.outputs[0]].shape == (1, oh, ow, cout)
    assert g.operators[0].inputs[2] == (2 if p["bias"] else -1)

    x = r.integers(-128, 128, (3, 1, h, w, cin), dtype=np.int8)
    (got,) = tflm_run(model, [x])
    acc = conv_acc(x.reshape(3, h, w, cin).astype(np.int64) - p["zp_in"], weights, bias if p["bias"] else None,
                   p["stride"], p["dilation"], p["padding"])
    lo, hi = act_range(p["act"], out_s, p["zp_out"])
    np.testing.assert_array_equal(got, requantize_pow2(acc, in_s * w_s / out_s, p["zp_out"], lo, hi).reshape(got.shape))
