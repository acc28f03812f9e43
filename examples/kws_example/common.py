"""What the example's three scripts share: labels, the front end and its quantization, file locations.

The model's int8 input quantization is fixed here, before any data exists, and is the
ds-cnn-mfcc preset's default (the Arm DS-CNN models' scale/zero point). The data set's
features are computed straight into it, the float model trains on exactly those int8 values
dequantized, and train.py checks that the converted model's input tensor carries the same
scale/zero point, so device features and training features are identical bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path

from kwsgen.frontend import FrontendConfig, preset

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODEL_PATH = HERE / "kws_ds_cnn.tflite"
LABELS_PATH = HERE / "labels.txt"
REPORT_PATH = HERE / "REPORT.md"

# Same labels, in the same order, as Arm's DS-CNN models, so ds_cnn_s is directly comparable.
LABELS: tuple[str, ...] = ("silence", "unknown", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = 0, 1
KEYWORDS: tuple[str, ...] = LABELS[2:]

FRONTEND: FrontendConfig = preset("ds-cnn-mfcc")
INPUT_SCALE: float = FRONTEND.default_input_scale  # 1.0809112787246704
INPUT_ZERO_POINT: int = FRONTEND.default_input_zero_point  # 101
CLIP_SAMPLES: int = FRONTEND.clip_samples  # 16000: one second at 16 kHz


def cache_dir() -> Path:
    """Where data sets and training artefacts go: never inside the repository."""
    base = os.environ.get("KWSGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kwsgen")
    return Path(base) / "kws_example"


def shared_dir() -> Path:
    """The project's shared material (`KWSGEN_SHARED`, default ../shared beside the repository)."""
    return Path(os.environ.get("KWSGEN_SHARED") or (REPO.parent / "shared"))


def dequantize(q):  # int8 features -> the float values the model's input tensor represents
    import numpy as np

    return ((np.asarray(q, dtype=np.float32) - INPUT_ZERO_POINT) * np.float32(INPUT_SCALE)).astype(np.float32)
