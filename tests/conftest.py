"""Shared test fixtures: where the shared models/audio and optional CMSIS-NN sources are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURE_MODELS = REPO / "tests" / "fixtures" / "models"


def shared_dir() -> Path:
    """KWSGEN_SHARED, defaulting to ../shared next to the repository (as on every kwsgen machine)."""
    return Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared material missing: {path} (set KWSGEN_SHARED to the shared/ directory)")
    return path


def fixture_models() -> list[Path]:
    return sorted(FIXTURE_MODELS.glob("*.tflite"))


def shared_models() -> list[Path]:
    root = shared_dir() / "models"
    return [
        root / "arm-ds-cnn" / "ds_cnn_s_quantized.tflite",
        root / "arm-ds-cnn" / "ds_cnn_m_quantized.tflite",
        root / "arm-ds-cnn" / "ds_cnn_l_quantized.tflite",
        root / "tflm-micro-speech" / "micro_speech_quantized.tflite",
    ]


def cmsis_nn_path() -> Path:
    """CMSIS-NN v7.0.0 sources are in no registry: tests that need them skip, saying why."""
    value = os.environ.get("CMSIS_NN_PATH")
    if not value or not (Path(value) / "Include" / "arm_nnfunctions.h").is_file():
        pytest.skip("CMSIS_NN_PATH not set to a CMSIS-NN v7.0.0 tree (no package registry has it); cmsis-nn backend tests skipped")
    return Path(value)


@pytest.fixture
def cmsis_nn() -> Path:
    return cmsis_nn_path()
