"""Synthetic int16 test signals: the edge cases that drive each fixed-point bound, and random clips.

Shared by the tests and the benchmarks so that "bit-exact on the edge cases and on 200 random
clips" means the same signals everywhere. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

FULL = 32767
NEG_FULL = -32768


def _clip16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), NEG_FULL, FULL).astype(np.int16)


def _impulse(n: int, at: int, value: int) -> np.ndarray:
    x = np.zeros(n, dtype=np.int16)
    x[at] = value
    return x


def edge_cases(n: int = 16000, sample_rate: int = 16000) -> dict[str, np.ndarray]:
    """Named int16 clips of n samples: silence, full scale, clipping, DC, impulses, tiny signals."""
    t = np.arange(n) / sample_rate
    idx = np.arange(n)
    sine = lambda f, a=FULL: _clip16(a * np.sin(2 * np.pi * f * t))  # noqa: E731
    cases = {
        "silence": np.zeros(n, dtype=np.int16),
        "dc_max": np.full(n, FULL, dtype=np.int16),
        "dc_min": np.full(n, NEG_FULL, dtype=np.int16),
        "dc_offset_noise": _clip16(12000 + np.random.default_rng(1).normal(0, 30, n)),
        "nyquist": np.where(idx % 2 == 0, FULL, NEG_FULL).astype(np.int16),
        "square_250hz": np.where((idx // 32) % 2 == 0, FULL, NEG_FULL).astype(np.int16),
        "square_1khz": np.where((idx // 8) % 2 == 0, FULL, NEG_FULL).astype(np.int16),
        "sine_1khz": sine(1000.0),
        "sine_3900hz": sine(3900.0),
        "sine_7999hz": sine(7999.0),
        "sine_bin_centre": sine(15.625 * 64),
        "clipped_sine": _clip16(4 * FULL * np.sin(2 * np.pi * 440.0 * t)),
        "chirp": _clip16(FULL * np.sin(2 * np.pi * (20 * t + 3990 * t * t))),
        "impulse_start": _impulse(n, 0, FULL),
        "impulse_edge": _impulse(n, 1, NEG_FULL),
        "impulse_centre": _impulse(n, 320, FULL),
        "impulse_mid_clip": _impulse(n, n // 2 + 7, NEG_FULL),
        "impulse_train": np.where(idx % 160 == 0, FULL, 0).astype(np.int16),
        "lsb_noise": np.random.default_rng(2).integers(-1, 2, n).astype(np.int16),
        "single_lsb": _impulse(n, 5000, 1),
        "uniform_full_scale": np.random.default_rng(3).integers(NEG_FULL, FULL + 1, n).astype(np.int16),
    }
    return cases


def random_clips(count: int, n: int = 16000, seed: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """int16 [count, n]: noise at log-uniform levels, tone mixtures, AM-modulated (speech-like) noise,
    sparse clicks and clipped mixtures, with random DC offsets."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    out = np.empty((count, n), dtype=np.int16)
    for i in range(count):
        kind = i % 5
        level = 10 ** rng.uniform(0, np.log10(FULL))
        if kind == 0:
            x = rng.normal(0, level / 3, n)
        elif kind == 1:
            freqs = rng.uniform(20, sample_rate / 2, 4)
            x = sum(rng.uniform(0, level / 4) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) for f in freqs)
        elif kind == 2:
            envelope = np.clip(np.sin(2 * np.pi * rng.uniform(1, 6) * t), 0, None) ** 2
            x = level * envelope * np.convolve(rng.normal(0, 1, n), np.ones(4) / 4, mode="same")
        elif kind == 3:
            x = np.zeros(n)
            x[rng.integers(0, n, 12)] = rng.uniform(-level, level, 12)
        else:
            x = 3 * level * rng.normal(0, 1, n) + level * np.sin(2 * np.pi * rng.uniform(50, 500) * t)
        out[i] = _clip16(x + rng.uniform(-0.05, 0.05) * level)
    return out
