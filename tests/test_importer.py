"""Importer: faithful decoding, and bad input -> one clear error (API: KwsgenError; CLI: one line, exit 2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwsgen.cli import main
from kwsgen.errors import KwsgenError, UnsupportedModelError
from kwsgen.importer import load
from kwsgen.interpreter import run
from kwsgen.legalize import load_model
from kwsgen.testing.builder import (
    OpSpec,
    TensorSpec,
    build_model,
    const_int8,
    const_int32,
    float_spec,
    int8_spec,
    single_op_model,
)

from conftest import shared_path


def _ds_cnn_s() -> bytes:
    return shared_path("models", "arm-ds-cnn", "ds_cnn_s_quantized.tflite").read_bytes()


def _float_conv() -> bytes:
    w = TensorSpec((4, 3, 3, 2), "float32", data=np.ones((4, 3, 3, 2), np.float32))
    b = TensorSpec((4,), "float32", data=np.zeros(4, np.float32))
    return single_op_model("CONV_2D", [float_spec((1, 8, 8, 2)), w, b], [float_spec((1, 8, 8, 4))],
                           {"padding": "SAME", "stride_h": 1, "stride_w": 1})


def _lstm() -> bytes:
    """An int8 UNIDIRECTIONAL_SEQUENCE_LSTM (what tf-keras LSTM layers convert to)."""
    t, n_in, n_cell = 5, 4, 3
    x = int8_spec((1, t, n_in), 0.1, 0)
    tensors = [x]
    inputs = [0]
    for i in range(24):
        if i in (1, 2, 3, 4):  # input-to-gate weights
            spec = const_int8(np.ones((n_cell, n_in)), 0.01)
        elif i in (5, 6, 7, 8):  # recurrent weights
            spec = const_int8(np.ones((n_cell, n_cell)), 0.01)
        elif i in (12, 13, 14, 15):  # gate biases
            spec = const_int32(np.zeros(n_cell), 0.001)
        elif i == 18:  # output state (variable)
            spec = TensorSpec((1, n_cell), "int8", 0.1, 0, is_variable=True)
        elif i == 19:  # cell state (variable)
            spec = TensorSpec((1, n_cell), "int16", 2 ** -11, 0, is_variable=True)
        else:
            inputs.append(-1)
            continue
        inputs.append(len(tensors))
        tensors.append(spec)
    tensors.append(int8_spec((1, t, n_cell), 0.1, 0))
    op = OpSpec("UNIDIRECTIONAL_SEQUENCE_LSTM", tuple(inputs[:24]), (len(tensors) - 1,),
                {"fused_activation_function": "TANH", "time_major": False})
    return build_model(tensors, [op], [0], [len(tensors) - 1])


def _two_unsupported() -> bytes:
    x, y, z = int8_spec((1, 8), 0.1, 0), int8_spec((1, 8), 0.1, 0), int8_spec((1, 8), 0.1, 0)
    ops = [OpSpec("SQUARED_DIFFERENCE", (0, 0), (1,)), OpSpec("CUSTOM", (1,), (2,), custom_code="MyOp")]
    return build_model([x, y, z], ops, [0], [2])


def test_ds_cnn_decoded():
    g = load(_ds_cnn_s())
    kinds = [op.kind for op in g.operators]
    assert kinds[:3] == ["QUANTIZE", "RESHAPE", "CONV_2D"] and kinds[-1] == "DEQUANTIZE"
    conv = g.operators[2]
    assert conv.opt("padding") == "SAME" and conv.opt("stride_h") == 2 and conv.opt("dilation_h_factor") == 1
    assert conv.opt("fused_activation_function") == "RELU"
    w = g.tensors[conv.inputs[1]]
    assert w.shape == (64, 10, 4, 1) and w.quant.per_channel and w.data.dtype == np.int8
    assert not w.data.flags.writeable


BAD_INPUTS = {
    "truncated": lambda: _ds_cnn_s()[:3000],
    "random bytes": lambda: np.random.default_rng(0).bytes(5000),
    "wrong identifier": lambda: _ds_cnn_s()[:4] + b"XXXX" + _ds_cnn_s()[8:],
    "empty": lambda: b"",
    "float model": _float_conv,
    "lstm model": _lstm,
    "unsupported op": _two_unsupported,
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_model_one_line_exit_2(name, tmp_path, capsys):
    path = tmp_path / "bad.tflite"
    path.write_bytes(BAD_INPUTS[name]())
    for argv in (["inspect", str(path)], ["compile", str(path), "--board", "host", "-o", str(tmp_path / "out")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert err.startswith("kwsgen: error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_messages_name_operator_and_reason():
    with pytest.raises(UnsupportedModelError) as e:
        load_model(_two_unsupported())
    msg = str(e.value)
    assert "operator 0 (SQUARED_DIFFERENCE)" in msg and "operator 1 (CUSTOM)" in msg and "'MyOp'" in msg
    with pytest.raises(UnsupportedModelError, match="float32"):
        load_model(_float_conv())
    with pytest.raises(UnsupportedModelError, match="UNIDIRECTIONAL_SEQUENCE_LSTM"):
        load_model(_lstm())


def test_missing_file_and_directory(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope.tflite")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path)]) == 2
    assert "directory" in capsys.readouterr().err


@st.composite
def mutations(draw, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "byte", "truncate", "insert", "delete", "word"]))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "word" and pos + 4 <= len(data):
            data[pos : pos + 4] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "little")
        elif kind == "truncate":
            del data[max(pos, 8) :]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        if not data:
            break
    return bytes(data)


_MICRO = None


def _micro_speech() -> bytes:
    global _MICRO
    if _MICRO is None:
        _MICRO = shared_path("models", "tflm-micro-speech", "micro_speech_quantized.tflite").read_bytes()
    return _MICRO


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_models_only_raise_kwsgen_errors(data):
    base = data.draw(st.sampled_from(["micro", "ds"]))
    buf = data.draw(mutations(_micro_speech() if base == "micro" else _ds_cnn_s()))
    try:
        model = load_model(buf)
    except KwsgenError:
        return
    t = model.graph.tensors[model.graph.inputs[0]]
    x = np.zeros((2,) + t.shape, dtype=t.dtype)
    run(model, x)  # a model that loads must also run


def test_model_without_inputs_is_rejected():
    """Found by the fuzz test: a graph whose input list was corrupted away."""
    from kwsgen.testing.builder import build_model

    buf = build_model([int8_spec((4,), 0.1, 0), int8_spec((4,), 0.1, 0)], [OpSpec("RELU", (0,), (1,))], [], [1])
    with pytest.raises(UnsupportedModelError, match="0 input"):
        load_model(buf)
