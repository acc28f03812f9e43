"""The keyword-spotting firmware against its Python twin, end to end: a stream of at least 20 s mixing the
shared clips (yes, no, silence, noise), digital silence, noise and espeak-ng keywords in several voices gives
exactly the same detections and scores from the generated app as from `kwsgen.detect`:

  - host gcc build under ASan + UBSan;
  - QEMU Cortex-M4 (mps2_an386) and Cortex-M55 (mps3_an547) with the portable kernels, the WAV streamed from
    the host through semihosting; per-stage instruction counts on the M4;
  - the same with CMSIS-NN when CMSIS_NN_PATH is set (skipped, saying so, otherwise).

Cost: ds_cnn_s takes 10-30 M instructions per portable inference (the kernels are being optimised), so the
portable QEMU runs infer every 4 hops (80 ms: 287 inferences for the 23 s stream) and the default of every
2 hops runs on the host and with CMSIS-NN (7.7 M / 1.8 M instructions per inference on M4 / M55)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from kwsgen.detect import DetectSettings, detect_trace
from kwsgen.detect_app import build_detector_firmware, run_detector, wav_bytes
from kwsgen.detect_stream import demo_stream
from kwsgen.frontend import PRESETS
from kwsgen.legalize import load_model

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))
DS_MODEL = SHARED / "models" / "arm-ds-cnn" / "ds_cnn_s_quantized.tflite"
LABELS = "silence,unknown,yes,no,up,down,left,right,on,off,stop,go".split(",")
DS = PRESETS["ds-cnn-mfcc"]
QEMU_SETTINGS = DetectSettings(every_hops=4)
DEFAULT_SETTINGS = DetectSettings()


@lru_cache(maxsize=1)
def model():
    if not DS_MODEL.is_file():
        pytest.fail(f"shared model missing: {DS_MODEL} (set KWSGEN_SHARED)")
    return load_model(DS_MODEL)


@lru_cache(maxsize=1)
def stream() -> tuple[np.ndarray, list]:
    if not (SHARED / "audio" / "yes_1000ms.wav").is_file():
        pytest.fail(f"shared audio missing under {SHARED} (set KWSGEN_SHARED)")
    return demo_stream(SHARED / "audio", seconds=20, seed=0, rate=DS.sample_rate)


@lru_cache(maxsize=None)
def twin(s: DetectSettings):
    return detect_trace(model(), stream()[0], DS, LABELS, s)


def run_app(tmp_path: Path, board: str, s: DetectSettings, kernels: str = "portable", cmsis=None, sanitize=False,
            count: bool = False):
    audio, _ = stream()
    assert len(audio) >= 20 * DS.sample_rate
    wav = tmp_path / "stream.wav"
    wav.write_bytes(wav_bytes(audio, DS.sample_rate))
    build = build_detector_firmware(board, model(), DS, LABELS, s, tmp_path / board, kernels=kernels, cmsis_nn=cmsis,
                                    source_name=DS_MODEL.name, source_bytes=DS_MODEL.read_bytes(), sanitize=sanitize)
    return run_detector(build, wav, count=count)


def check_against_twin(run, s: DetectSettings) -> None:
    want = twin(s)
    assert run.summary["samples"] == len(stream()[0])
    assert run.summary["hops"] == want.hops
    assert run.summary["inferences"] == len(want.times_ms)
    assert run.detections == want.detections
    assert run.summary["detections"] == len(want.detections)
    # the stream really exercises detection: several of the spoken keywords are found
    assert len({d.label for d in want.detections}) >= 3, want.detections


def test_twin_detects_the_spoken_keywords():
    """Sanity of the stream and the defaults: the twin finds keywords where they were spoken."""
    audio, words = stream()
    found = twin(DEFAULT_SETTINGS).detections
    matched = [d for d in found if any(w.label == d.label and w.start_ms <= d.t_ms <= w.end_ms + 1000 for w in words)]
    assert len(matched) >= len(words) // 2, (found, words)


def test_host_sanitizers_default_settings(tmp_path):
    run = run_app(tmp_path, "host", DEFAULT_SETTINGS, sanitize=True)
    check_against_twin(run, DEFAULT_SETTINGS)


@pytest.mark.qemu
def test_qemu_m4_portable_with_stage_counts(tmp_path):
    run = run_app(tmp_path, "mps2_an386", QEMU_SETTINGS, count=True)
    check_against_twin(run, QEMU_SETTINGS)
    hops, inferences = run.summary["hops"], run.summary["inferences"]
    assert run.entries["frontend"] == hops and run.entries["inference"] == inferences
    assert run.entries["postproc"] == inferences
    stage = run.per_stage()
    # loose bounds around what was measured on the M4 for ds_cnn_s / ds-cnn-mfcc (portable inference 10-31 M
    # instructions as the kernels evolved, CMSIS-NN 7.7 M; front end 45-60 k per hop; smoothing ~500)
    assert 1_000_000 < stage["inference"] < 60_000_000, stage
    assert 10_000 < stage["frontend"] < 200_000, stage
    assert 100 < stage["postproc"] < 2_000, stage
    assert sum(run.instructions[r] for r in ("audio", "frontend", "inference", "postproc")) < run.instructions["total"]


@pytest.mark.qemu
def test_qemu_m55_portable(tmp_path):
    run = run_app(tmp_path, "mps3_an547", QEMU_SETTINGS)
    check_against_twin(run, QEMU_SETTINGS)


@pytest.mark.qemu
@pytest.mark.cmsis
@pytest.mark.parametrize("board", ["mps2_an386", "mps3_an547"])
def test_qemu_cmsis_nn_default_settings(tmp_path, board, cmsis_nn):
    run = run_app(tmp_path, board, DEFAULT_SETTINGS, kernels="cmsis-nn", cmsis=cmsis_nn)
    check_against_twin(run, DEFAULT_SETTINGS)
