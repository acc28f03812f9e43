"""`kwsgen compile --frontend --labels`: the complete keyword-spotting firmware per board kind.

The project's detections must equal the Python twin's (`kwsgen detect` without --board)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from kwsgen.cli import main
from kwsgen.detect import detect, parse_labels
from kwsgen.frontend import resolve_config
from kwsgen.legalize import load_model
from kwsgen.platformio import cross_compile_check, link_check, prepare_offline_core, run_pio
from kwsgen.targets import load_board

from conftest import shared_models, shared_path

DS_CNN_S = shared_models()[0]
LABELS = "silence,unknown,yes,no,up,down,left,right,on,off,stop,go"


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    """yes / no clips between silence and noise: 7 s."""
    parts = [wavfile.read(shared_path("audio", f"{name}_1000ms.wav"))[1]
             for name in ("silence", "yes", "noise", "no", "silence", "yes", "silence")]
    path = tmp_path_factory.mktemp("audio") / "stream.wav"
    wavfile.write(path, 16000, np.concatenate(parts).astype(np.int16))
    return path


def _twin(stream: Path) -> list[dict]:
    model = load_model(DS_CNN_S)
    audio = wavfile.read(stream)[1]
    found = detect(model, audio, resolve_config("ds-cnn-mfcc"), parse_labels(LABELS))
    return [{"t_ms": d.t_ms, "label": d.label, "score": d.score} for d in found]


def _detections(stdout: str) -> list[dict]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [r for r in rows if "summary" not in r]


def test_host_project_matches_twin(tmp_path, stream):
    out = tmp_path / "host"
    assert main(["compile", str(DS_CNN_S), "--board", "host", "--frontend", "ds-cnn-mfcc", "--labels", LABELS, "-o", str(out)]) == 0
    subprocess.run(["make", "-s", "-C", str(out)], check=True)
    run = subprocess.run([str(out / "kws_app"), str(stream)], capture_output=True, text=True, check=True)
    expected = _twin(stream)
    assert expected and {d["label"] for d in expected} >= {"yes", "no"}
    assert _detections(run.stdout) == expected


def test_emulated_project_builds_with_pio_and_matches_twin(tmp_path, stream, tmp_path_factory):
    out = tmp_path / "m4"
    assert main(["compile", str(DS_CNN_S), "--board", "mps2_an386", "--kernels", "portable", "--frontend", "ds-cnn-mfcc",
                 "--labels", LABELS, "--audio", str(stream), "-o", str(out)]) == 0
    core = prepare_offline_core(tmp_path_factory.mktemp("pio-core"))
    result = run_pio(out, ["-t", "exec"], core)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert _detections(result.stdout) == _twin(stream)


@pytest.mark.parametrize("board", ["nano33ble", "nucleo_f746zg", "pico"])
def test_real_board_keyword_spotter_cross_compiles(board, tmp_path):
    out = tmp_path / board
    assert main(["compile", str(DS_CNN_S), "--board", board, "--kernels", "portable", "--frontend", "ds-cnn-mfcc",
                 "--labels", LABELS, "-o", str(out)]) == 0
    b = load_board(board)
    objects = cross_compile_check(out, b, tmp_path / "obj")
    assert (out / "src" / "kws_app_board.c").is_file()
    assert link_check(b, objects, tmp_path / "fw.elf").is_file()
    if board == "nano33ble":
        assert (out / "src" / "kws_audio_pdm_nrf52840.c").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--frontend", "ds-cnn-mfcc"], "go together"),
    (["--frontend", "ds-cnn-mfcc", "--labels", "a,b"], "outputs 12"),
    (["--frontend", "no-such-preset", "--labels", LABELS], "no-such-preset"),
])
def test_bad_keyword_spotter_options(argv, message, tmp_path, capsys):
    code = main(["compile", str(DS_CNN_S), "--board", "host", *argv, "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()
