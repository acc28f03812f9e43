"""`kwsgen verify`: emulated Cortex-M boards, instruction counts, first-differing-layer diagnosis, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kwsgen.project as project
from kwsgen.cli import main
from kwsgen.legalize import load_model
from kwsgen.verify import verify

from conftest import fixture_models, shared_models

EMULATED = ["mps2_an385", "mps2_an386", "mps2_an500", "mps2_an505", "mps3_an547"]
DS_CNN_S, DS_CNN_M, DS_CNN_L, MICRO_SPEECH = shared_models()


def _subset(board: str) -> list[Path]:
    """Every board gets micro_speech and two fixtures; together the boards cover every fixture each run."""
    fixtures = fixture_models()
    i = EMULATED.index(board)
    picks = [fixtures[j] for j in range(len(fixtures)) if j % len(EMULATED) == i][:3]
    return [MICRO_SPEECH, *picks]


@pytest.mark.parametrize("board", EMULATED)
def test_portable_bit_exact_on_emulated_boards(board):
    for path in _subset(board):
        result = verify(load_model(path), board=board, kernels="portable", n=30, source_bytes=path.read_bytes())
        assert result.ok, (path.name, result)
        assert result.instructions_per_inference and result.instructions_per_inference > 1000
        assert 0 < result.flash_bytes and 0 < result.ram_bytes


@pytest.mark.parametrize("board", ["mps2_an386", "mps3_an547"])
def test_ds_cnn_s_on_m4_and_m55(board):
    result = verify(load_model(DS_CNN_S), board=board, kernels="portable", n=40, source_bytes=DS_CNN_S.read_bytes())
    assert result.ok, result


@pytest.mark.parametrize("board", ["mps2_an386", "mps2_an500", "mps3_an547"])
def test_cmsis_nn_bit_exact_on_dsp_and_mve(board, cmsis_nn):
    for path in [DS_CNN_S, MICRO_SPEECH, *fixture_models()[EMULATED.index(board)::4]]:
        result = verify(load_model(path), board=board, kernels="cmsis-nn", n=30, cmsis_nn=cmsis_nn,
                        source_bytes=path.read_bytes())
        assert result.ok, (path.name, result)


def test_instruction_counts_repeat_exactly(tmp_path):
    """Same firmware, same inputs: identical instructions per inference."""
    model = load_model(MICRO_SPEECH)
    a = verify(model, board="mps2_an386", n=5, source_bytes=b"x", workdir=tmp_path)
    build_dir = tmp_path / "project" / "build-harness"
    stamp = (build_dir / "firmware.elf").stat().st_mtime_ns
    b = verify(model, board="mps2_an386", n=5, source_bytes=b"x")
    assert a.instructions_per_inference == b.instructions_per_inference
    assert stamp  # the first run's firmware existed


def test_names_first_differing_layer(monkeypatch):
    """Corrupt one layer's multipliers in the generated C: verify must name that layer."""
    model = load_model(DS_CNN_S)
    real_lower = project.lower

    def tampered(*args, **kwargs):
        compiled = real_lower(*args, **kwargs)
        files = dict(compiled.library.files)
        data = files["kws_model_data.c"]
        marker = "const int32_t l4_mult["
        start = data.index(marker)
        body = data.index("{", start) + 1
        files["kws_model_data.c"] = data[:body] + "\n    1," + data[body:].split(",", 1)[1]
        object.__setattr__(compiled.library, "files", files)
        return compiled

    monkeypatch.setattr(project, "lower", tampered)
    result = verify(model, n=10, source_bytes=b"x")
    assert not result.ok
    step4 = model.core_layers[4]
    assert result.first_bad_layer == f"step 4 ({step4.op.kind}, source operator {step4.op.index})"


def test_cli_json_and_given_inputs(tmp_path, capsys):
    model = load_model(DS_CNN_S)
    x = np.random.default_rng(0).normal(0, 20, (3, 490)).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    code = main(["verify", str(DS_CNN_S), "--board", "mps2_an386", "--kernels", "portable", "-n", "4",
                 "--input", str(tmp_path / "in.npy"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    for key in ("board", "kernels", "inputs", "mismatches", "instructions_per_inference", "flash_bytes", "ram_bytes"):
        assert key in out
    assert out["inputs"] == 7 and out["mismatches"] == 0 and out["board"] == "mps2_an386"
    assert model.float_io


def test_given_inputs_wrong_dtype(tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.zeros((2, 490), np.int8))
    assert main(["verify", str(DS_CNN_S), "--input", str(tmp_path / "in.npy")]) == 2
    assert "must be float32" in capsys.readouterr().err


def test_real_board_is_not_verifiable(capsys):
    assert main(["verify", str(MICRO_SPEECH), "--board", "nucleo_f746zg", "--kernels", "portable"]) == 2
    assert "real board" in capsys.readouterr().err


def test_model_too_big_for_board_names_bytes_over(tmp_path, capsys):
    """A board file with little RAM: the fit check reports how many bytes are over."""
    board = (Path(__file__).resolve().parent.parent / "targets" / "mps2_an386.toml").read_text()
    small = board.replace('name = "mps2_an386"', 'name = "tiny_m4"')
    import re

    small = re.sub(r"(\[memory\.ram\][^\[]*?length\s*=\s*)\S+", r"\g<1>0x8000", small, flags=re.S)
    path = tmp_path / "tiny_m4.toml"
    path.write_text(small)
    code = main(["verify", str(DS_CNN_L), "--board", str(path), "--kernels", "portable", "-n", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "over" in err and err.count("\n") == 1, err
