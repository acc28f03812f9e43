"""The float reference against TensorFlow itself (tf.raw_ops.AudioSpectrogram + tf.raw_ops.Mfcc).

TensorFlow is a test dependency of this file (CI installs tensorflow-cpu); without it the test
fails instead of skipping, because the reference's TF semantics would go unchecked.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from kwsgen.frontend.config import PRESETS, FrontendConfig
from kwsgen.frontend.reference import mfcc_float, power_spectrogram, quantize_float
from kwsgen.frontend.signals import edge_cases, random_clips

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
try:
    import tensorflow as tf
except ImportError:  # pragma: no cover - CI installs it
    pytest.fail("tensorflow is not installed: `pip install tensorflow-cpu==2.21.0` (needed to check the float MFCC "
                "reference against TF's own ops)", pytrace=False)

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))

CONFIGS = {
    "ds-cnn": PRESETS["ds-cnn-mfcc"],
    "micronet": PRESETS["micronet-mfcc"],
    "odd": FrontendConfig(name="odd", window_length=481, stride=157, num_channels=26, num_coefficients=13,
                          lower_frequency=133.0, upper_frequency=6855.0, clip_samples=8000),
    "wide-fft": FrontendConfig(name="wide", window_length=400, stride=160, fft_length=1024, num_channels=64,
                               num_coefficients=20, lower_frequency=0.0, upper_frequency=8000.0, clip_samples=4000),
}


def _clips() -> np.ndarray:
    paths = sorted((SHARED / "audio").glob("*_1000ms.wav"))
    if not paths:
        pytest.fail(f"shared audio missing under {SHARED} (set KWSGEN_SHARED)")
    shared = [wavfile.read(p)[1] for p in paths]
    edges = [edge_cases()[k] for k in ("silence", "sine_1khz", "impulse_centre", "dc_min", "lsb_noise")]
    return np.stack(shared + edges + list(random_clips(5, seed=11)))


def _tf_mfcc(clip: np.ndarray, cfg: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    audio = (clip.astype(np.float32) / np.float32(32768.0))[:, None]
    spec = tf.raw_ops.AudioSpectrogram(input=audio, window_size=cfg.window_length, stride=cfg.stride, magnitude_squared=True)
    mfcc = tf.raw_ops.Mfcc(spectrogram=spec, sample_rate=cfg.sample_rate, upper_frequency_limit=cfg.upper_frequency,
                           lower_frequency_limit=cfg.lower_frequency, filterbank_channel_count=cfg.num_channels,
                           dct_coefficient_count=cfg.num_coefficients)
    return spec.numpy()[0], mfcc.numpy()[0]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_reference_equals_tensorflow(name):
    cfg = CONFIGS[name]
    if cfg.fft_length is not None:  # TF always pads to the next power of two: compare that part only
        cfg = FrontendConfig(**{**cfg.to_dict(), "fft_length": None})
    clips = _clips()
    ours = mfcc_float(clips, cfg)
    ours_power = power_spectrogram(clips.astype(np.float32) / np.float32(32768.0), cfg)
    for i, clip in enumerate(clips):
        tf_power, tf_mfcc = _tf_mfcc(clip, cfg)
        np.testing.assert_allclose(ours_power[i], tf_power, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(ours[i], tf_mfcc, rtol=1e-4, atol=1e-4)


def test_single_clip_and_batch_agree():
    cfg = PRESETS["ds-cnn-mfcc"]
    clips = random_clips(3, seed=5)
    batch = mfcc_float(clips, cfg)
    assert batch.shape == (3, 49, 10) and batch.dtype == np.float32
    np.testing.assert_array_equal(mfcc_float(clips[1], cfg), batch[1])


def test_quantize_float_is_tflite_quantize():
    """TFLite QUANTIZE rounds half away from zero in float32: check the ties and the clamp."""
    x = np.array([0.5, -0.5, 1.5, -1.5, 2.4999, 1000.0, -1000.0], dtype=np.float32)
    np.testing.assert_array_equal(quantize_float(x, 1.0, 0), [1, -1, 2, -2, 2, 127, -128])
    np.testing.assert_array_equal(quantize_float(np.float32([0.0, -247.0]), 1.0809112787246704, 101), [101, -128])
