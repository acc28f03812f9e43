"""`kwsgen compile`: report, determinism, atomic output, refusal to clobber foreign directories."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from kwsgen.cli import main
from kwsgen.testing.builder import const_int8, const_int32, int8_spec, single_op_model


def _conv_model() -> bytes:
    rng = np.random.default_rng(3)
    return single_op_model(
        "CONV_2D",
        [int8_spec((1, 10, 6, 3), 0.05, 4), const_int8(rng.integers(-127, 128, (8, 3, 3, 3)), list(rng.uniform(0.001, 0.02, 8))),
         const_int32(rng.integers(-500, 500, 8), 0.0005)],
        [int8_spec((1, 5, 3, 8), 0.1, -3)],
        {"padding": "SAME", "stride_h": 2, "stride_w": 2, "fused_activation_function": "RELU"},
    )


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "conv.tflite"
    path.write_bytes(_conv_model())
    return path


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_compile_writes_project_and_report(model_path, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(model_path), "--board", "host", "-o", str(out)]) == 0
    report = json.loads((out / "kwsgen-report.json").read_text())
    for key in ("arena_bytes", "arena_lower_bound_bytes", "weights_bytes", "kernels", "board", "layers"):
        assert key in report
    assert report["board"] == "host" and report["kernels"] == "portable"
    assert report["arena_bytes"] >= report["arena_lower_bound_bytes"] == 180 + 120
    layer = report["layers"][0]
    assert layer["op"] == "CONV_2D" and layer["macs"] == 5 * 3 * 8 * 27 and layer["output_bytes"] == 120
    assert (out / "lib" / "kws_model" / "src" / "kws_model.c").is_file()
    # the host project builds with its own Makefile and runs
    assert os.system(f"make -s -C {out} > /dev/null") == 0
    x = np.random.default_rng(0).integers(-128, 128, (3, 10, 6, 3), dtype=np.int8)
    (tmp_path / "in.bin").write_bytes(x.tobytes())
    assert os.system(f"{out}/kws_app {tmp_path}/in.bin {tmp_path}/out.bin") == 0
    assert (tmp_path / "out.bin").stat().st_size == 3 * 120


def test_compile_is_deterministic(model_path, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["compile", str(model_path), "--board", "host", "-o", str(a)]) == 0
    assert main(["compile", str(model_path), "--board", "host", "-o", str(b)]) == 0
    assert _tree(a) == _tree(b)
    # recompiling over its own output is allowed and gives the same bytes
    assert main(["compile", str(model_path), "--board", "host", "-o", str(a)]) == 0
    assert _tree(a) == _tree(b)


def test_refuses_foreign_directory(model_path, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    assert main(["compile", str(model_path), "--board", "host", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and err.count("\n") == 1
    assert _tree(out) == {"notes.txt": b"precious"}
    assert main(["compile", str(model_path), "--board", "host", "-o", str(out), "--force"]) == 0
    assert not (out / "notes.txt").exists()


def test_bad_cli_input_leaves_nothing(model_path, tmp_path, capsys):
    cases = [
        ["compile", str(model_path), "--board", "no_such_board", "-o", str(tmp_path / "o1")],
        ["compile", str(model_path), "--board", "host", "-o", str(tmp_path / "o2"), "--alignment", "3"],
        ["compile", str(tmp_path / "missing.tflite"), "--board", "host", "-o", str(tmp_path / "o3")],
        ["compile", str(model_path), "--board", "host"],
        ["verify", str(model_path), "-n", "-1"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("kwsgen: error:") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv.tflite"]


def test_unwritable_output(model_path, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["compile", str(model_path), "--board", "host", "-o", str(blocker / "out")]) == 2
    assert "kwsgen: error:" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv.tflite", "file"]
