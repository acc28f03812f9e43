"""`kwsgen inspect` and `kwsgen run`: the reference interpreter from the command line."""

from __future__ import annotations

import json

import numpy as np

from kwsgen.cli import main
from kwsgen.testing.oracle import tflm_run

from conftest import shared_models

DS_CNN_S, _, _, MICRO_SPEECH = shared_models()


def test_inspect_table_and_json(capsys):
    assert main(["inspect", str(DS_CNN_S)]) == 0
    table = capsys.readouterr().out
    assert "DEPTHWISE_CONV_2D" in table and "MACs" in table and "per-channel x64" in table
    assert main(["inspect", str(DS_CNN_S), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    ops = [row["op"] for row in info["layers"]]
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE" and info["float_io"]
    conv = info["layers"][2]
    assert conv["macs"] == 25 * 5 * 64 * 10 * 4 and conv["weight_bytes"] == 64 * 40 + 64 * 4
    assert info["totals"]["macs"] == sum(row["macs"] for row in info["layers"])


def test_run_float_and_int8_models_match_tflm(tmp_path):
    rng = np.random.default_rng(4)
    cases = [(DS_CNN_S, rng.normal(0, 30, (7, 1, 490)).astype(np.float32)),
             (MICRO_SPEECH, rng.integers(-128, 128, (7, 1960), dtype=np.int8))]  # [N, size] is accepted too
    for model, x in cases:
        np.save(tmp_path / "in.npy", x)
        assert main(["run", str(model), "--input", str(tmp_path / "in.npy"), "--output", str(tmp_path / "out.npy")]) == 0
        out = np.load(tmp_path / "out.npy")
        want = tflm_run(model.read_bytes(), [x])[0]
        assert out.shape[0] == 7 and np.array_equal(out.reshape(want.shape), want)


def test_run_bad_inputs(tmp_path, capsys):
    np.save(tmp_path / "int.npy", np.zeros((2, 490), np.int8))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "shape.npy", np.zeros((2, 17), np.float32))
    for name, needle in (("int.npy", "float32"), ("junk.npy", "not a readable .npy"), ("shape.npy", "shape")):
        code = main(["run", str(DS_CNN_S), "--input", str(tmp_path / name), "--output", str(tmp_path / "o.npy")])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "o.npy").exists()
