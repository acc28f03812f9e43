"""Float MFCC with TensorFlow's exact semantics, vectorised over clips.

Reproduces `tf.raw_ops.AudioSpectrogram(magnitude_squared=True)` followed by `tf.raw_ops.Mfcc`
(TF's spectrogram.cc, mfcc_mel_filterbank.cc, mfcc.cc, mfcc_dct.cc), including the details that
make other MFCCs differ from it: the periodic Hann window, the FFT zero-padded to a power of
two, the power spectrogram rounded to float32 between the two ops, the mel centres spaced over
`num_channels + 1` intervals, bins mapped with `hz_per_bin = (fs/2) / (num_bins - 1)`, DC
always excluded (`start = int(1.5 + f_lo / hz_per_bin)`), the triangles applied to the
*square root* of the power, the 1e-12 floor before the natural log, and a DCT-II scaled by
sqrt(2/N) for every coefficient including k = 0. The fixed-point front end is measured against
this function; `tests/test_frontend_reference.py` checks it against TensorFlow itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from ..fixedpoint import round_half_away

if TYPE_CHECKING:
    from .config import FrontendConfig


def window_function(kind: str, length: int) -> np.ndarray:
    """Periodic window (TF's GetPeriodicHann for "hann"); float64."""
    n = np.arange(length, dtype=np.float64)
    phase = 2.0 * np.pi * n / length
    if kind == "hann":
        return 0.5 - 0.5 * np.cos(phase)
    if kind == "hamming":
        return 0.54 - 0.46 * np.cos(phase)
    raise ValueError(kind)


def freq_to_mel(freq: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)


@dataclass(frozen=True)
class MelBands:
    """TF's filterbank in its own sparse form: each bin in [start, end] feeds `weight` to channel
    `band` (the falling side; -1 = none) and `1 - weight` to channel `band + 1` (the rising side)."""

    start: int
    end: int
    band: np.ndarray  # int, per bin start..end
    weight: np.ndarray  # float64, per bin start..end

    def dense(self, num_bins: int, num_channels: int) -> np.ndarray:
        """[num_bins, num_channels] matrix with the same sums."""
        m = np.zeros((num_bins, num_channels + 1), dtype=np.float64)
        bins = np.arange(self.start, self.end + 1)
        right = self.band >= 0
        m[bins[right], self.band[right]] += self.weight[right]
        m[bins, self.band + 1] += 1.0 - self.weight
        return m[:, :num_channels]


def _mel_bands(num_bins: int, sample_rate: float, num_channels: int, lower: float, upper: float) -> MelBands:
    mel_low, mel_high = freq_to_mel(lower), freq_to_mel(upper)
    spacing = (mel_high - mel_low) / (num_channels + 1)
    centers = mel_low + spacing * np.arange(1, num_channels + 2)  # one extra centre closes the last triangle
    hz_per_bin = 0.5 * sample_rate / (num_bins - 1)
    start = int(1.5 + lower / hz_per_bin)
    end = min(int(upper / hz_per_bin), num_bins - 1)
    bins = np.arange(start, end + 1)
    mel = freq_to_mel(bins * hz_per_bin)
    # TF advances `channel` while centers[channel] < mel (channel < num_channels), band = channel - 1
    channel = np.searchsorted(centers[:num_channels], mel, side="left")
    band = channel - 1
    upper_c = centers[band + 1]
    lower_c = np.where(band >= 0, centers[np.maximum(band, 0)], mel_low)
    weight = (upper_c - mel) / (upper_c - lower_c)
    return MelBands(start, end, band.astype(np.int64), weight)


@lru_cache(maxsize=32)
def mel_bands(cfg: "FrontendConfig") -> MelBands:
    return _mel_bands(cfg.num_bins, float(cfg.sample_rate), cfg.num_channels, float(cfg.lower_frequency), float(cfg.upper_frequency))


def empty_channels(cfg: "FrontendConfig") -> list[int]:
    """Channels whose weights sum below 0.5 (TF logs "Missing bands"): too many channels for the FFT."""
    sums = mel_bands(cfg).dense(cfg.num_bins, cfg.num_channels).sum(axis=0)
    return [int(c) for c in np.flatnonzero(sums < 0.5)]


@lru_cache(maxsize=32)
def dct_matrix(num_channels: int, num_coefficients: int) -> np.ndarray:
    """TF's MfccDct: [coeffs, channels], sqrt(2/N) cos(pi k (j + 0.5) / N) for every k."""
    k = np.arange(num_coefficients, dtype=np.float64)[:, None]
    j = np.arange(num_channels, dtype=np.float64)[None, :]
    return np.sqrt(2.0 / num_channels) * np.cos(k * (np.pi / num_channels) * (j + 0.5))


def as_clips(audio: np.ndarray) -> tuple[np.ndarray, bool]:
    """[samples] or [clips, samples] -> [clips, samples], and whether the input had a clip axis."""
    a = np.asarray(audio)
    if a.ndim == 1:
        return a[None, :], False
    if a.ndim == 2:
        return a, True
    raise ValueError(f"audio must be [samples] or [clips, samples], got shape {a.shape}")


def frame_view(clips: np.ndarray, cfg: "FrontendConfig") -> np.ndarray:
    """[clips, frames, window_length] view of the framed audio (no copy, no padding)."""
    from .config import frames_in

    n = frames_in(clips.shape[1], cfg)
    if n == 0:
        return np.zeros(clips.shape[:1] + (0, cfg.window_length), dtype=clips.dtype)
    windows = np.lib.stride_tricks.sliding_window_view(clips, cfg.window_length, axis=1)
    return windows[:, : (n - 1) * cfg.stride + 1 : cfg.stride]


def power_spectrogram(audio_float: np.ndarray, cfg: "FrontendConfig") -> np.ndarray:
    """AudioSpectrogram(magnitude_squared=True): float32 [clips, frames, bins], computed in float64."""
    clips, _ = as_clips(audio_float)
    frames = frame_view(clips.astype(np.float32).astype(np.float64), cfg)
    spec = np.fft.rfft(frames * window_function(cfg.window, cfg.window_length), n=cfg.fft_size, axis=-1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)  # the op's float32 output


def mel_energies(power: np.ndarray, cfg: "FrontendConfig") -> np.ndarray:
    """The mel filterbank in float64 on sqrt(power) (TF's Mfcc) or on power."""
    p = power.astype(np.float64)
    spectrum = np.sqrt(p) if cfg.filterbank_input == "magnitude" else p
    return spectrum @ mel_bands(cfg).dense(cfg.num_bins, cfg.num_channels)


def mfcc_from_power(power: np.ndarray, cfg: "FrontendConfig") -> np.ndarray:
    """Mfcc: log of the floored mel energies, then the DCT; float32 like the op."""
    log_mel = np.log(np.maximum(mel_energies(power, cfg), cfg.log_floor))
    return (log_mel @ dct_matrix(cfg.num_channels, cfg.num_coefficients).T).astype(np.float32)


def mfcc_float(audio: np.ndarray, cfg: "FrontendConfig") -> np.ndarray:
    """TF's float MFCC of int16 audio (or float audio in [-1, 1)).

    Returns float32 [clips, frames, coeffs], or [frames, coeffs] for a single 1-D clip.
    """
    clips, batched = as_clips(audio)
    x = clips.astype(np.float32) / np.float32(32768.0) if clips.dtype == np.int16 else clips.astype(np.float32)
    out = mfcc_from_power(power_spectrogram(x, cfg), cfg)
    return out if batched else out[0]


def quantize_float(features: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite QUANTIZE float32 -> int8, as the DS-CNN's first op does: TfLiteRound(x / scale) in float32."""
    quotient = features.astype(np.float32) / np.float32(scale)
    q = round_half_away(quotient.astype(np.float64)).astype(np.int64) + int(zero_point)
    return np.clip(q, -128, 127).astype(np.int8)
