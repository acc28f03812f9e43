"""The fixed-point twin: overflow bounds on the edge cases, exact helpers, streaming, fidelity to TF's float MFCC."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.io import wavfile

from kwsgen.errors import KwsgenError
from kwsgen.frontend import fixed
from kwsgen.frontend.config import PRESETS, FrontendConfig
from kwsgen.frontend.fixed import (FrontendStream, bit_length, isqrt32, log2_q20, make_tables, mfcc_fixed_float, mfcc_int8,
                                   sqrt_top32, stage_maxima, stream_frames)
from kwsgen.frontend.reference import frame_view, mfcc_float, quantize_float
from kwsgen.frontend.signals import edge_cases, random_clips

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))
DS = PRESETS["ds-cnn-mfcc"]
SCALE, ZP = DS.default_input_scale, DS.default_input_zero_point


def shared_clips() -> np.ndarray:
    paths = sorted((SHARED / "audio").glob("*_1000ms.wav"))
    if len(paths) < 4:
        pytest.fail(f"shared audio missing under {SHARED} (set KWSGEN_SHARED)")
    return np.stack([wavfile.read(p)[1] for p in paths])


# ---------------------------------------------------------------- overflow: the docstring's claims, measured


LIMITS = {  # stage -> exclusive bound the C's integer types rely on (fixed.py docstring)
    "window product |p|": 2**46, "normalised |v|": 2**29 + 1, "FFT stage max": 2**30, "split |X|": 2**29 + 8,
    "power": 2**59, "spectrum S": 2**32, "mel E": 2**58, "log |L|": 2**26, "DCT |acc|": 2**63, "DCT |r|": 2**30,
}


@pytest.mark.parametrize("cfg", [DS, PRESETS["micronet-mfcc"],
                                 FrontendConfig(filterbank_input="power", window="hamming", name="power")], ids=lambda c: c.name)
def test_edge_cases_stay_within_the_proven_bounds(cfg):
    t = make_tables(cfg, SCALE, ZP)
    frames = frame_view(np.stack(list(edge_cases().values())), cfg).reshape(-1, cfg.window_length)
    n = np.arange(cfg.window_length)
    worst = [np.where(np.cos(2 * np.pi * k * n / cfg.fft_size) >= 0, 32767, -32768) for k in (0, 3, 64, 255, 511, 512)]
    maxima = stage_maxima(np.concatenate([frames, np.array(worst, dtype=np.int16)]), t)
    for stage, limit in LIMITS.items():
        assert maxima[stage] < limit, (stage, math.log2(maxima[stage]))
    # the table-time bounds are upper bounds of what the signals reach
    assert math.log2(maxima["DCT |acc|"]) <= t.bounds["DCT accumulator"]
    assert math.log2(maxima["mel E"]) <= t.bounds["mel energy E"]
    # full scale uses the range: the normalisation comes within a bit of 2^29 and the DFT bound is nearly met
    assert maxima["normalised |v|"] > 2**28 and maxima["split |X|"] > 2**26


def test_tables_reject_unrepresentable_quantization():
    with pytest.raises(KwsgenError, match="too small"):
        make_tables(DS, 1e-9, 0)
    with pytest.raises(KwsgenError, match="zero point"):
        make_tables(DS, 1.0, 300)
    with pytest.raises(KwsgenError, match="positive"):
        make_tables(DS, float("nan"), 0)


# ---------------------------------------------------------------- exact integer helpers


def _round_sqrt(n: int) -> int:
    r = math.isqrt(n)
    return r + (n - r * r > r)  # nearest: sqrt(n) > r + 1/2 <=> n > r^2 + r + 1/4


@given(st.integers(0, 2**32 - 1))
def test_isqrt32_is_rounded_sqrt(n):
    r = int(isqrt32(np.array([n]))[0])
    assert r == _round_sqrt(n) and abs(r - math.sqrt(n)) <= 0.5


def test_isqrt32_around_squares_and_midpoints():
    r = np.arange(1, 65536, dtype=np.int64)
    for n in (r * r - 1, r * r, r * r + 1, r * r + r, r * r + r + 1):
        ok = n < 2**32
        np.testing.assert_array_equal(isqrt32(n[ok]), [_round_sqrt(int(v)) for v in n[ok]])


def test_bit_length_is_exact_where_float64_rounds():
    x = np.array([0, 1, 2, 3] + [2**k - 1 for k in range(2, 63)] + [2**k for k in range(62)], dtype=np.int64)
    np.testing.assert_array_equal(bit_length(x), [int(v).bit_length() for v in x])


@settings(max_examples=300)
@given(st.integers(1, 2**62))
def test_log2_q20_error_below_1_2e_5(x):
    t = make_tables(DS, SCALE, ZP)
    got = int(log2_q20(np.array([x]), t)[0]) / 2**20
    assert abs(got - math.log2(x)) < 1.2e-5 + 2**-20


@given(st.integers(1, 2**60))
def test_sqrt_top32_relative_error(p):
    got = int(sqrt_top32(np.array([p]))[0])
    assert abs(got - math.sqrt(p)) <= max(0.5, math.sqrt(p) * 2**-15)


# ---------------------------------------------------------------- API and streaming


def test_shapes_dtypes_and_defaults():
    clips = random_clips(3, seed=2)
    out = mfcc_int8(clips, DS)
    assert out.shape == (3, 49, 10) and out.dtype == np.int8
    np.testing.assert_array_equal(mfcc_int8(clips[2], DS), out[2])
    np.testing.assert_array_equal(mfcc_int8(clips, DS, SCALE, ZP), out)
    assert mfcc_int8(np.zeros((2, 639), np.int16), DS).shape == (2, 0, 10)
    with pytest.raises(KwsgenError, match="int16"):
        mfcc_int8(clips.astype(np.float32), DS)
    with pytest.raises(KwsgenError, match="both"):
        mfcc_int8(clips, DS, input_scale=0.5)


def test_silence_is_the_floor_everywhere():
    t = make_tables(DS, SCALE, ZP)
    out = mfcc_int8(np.zeros(16000, np.int16), DS)
    assert (out == t.silence).all()
    assert t.silence.tolist() == [-128] + [ZP] * 9  # c0 = 40 * sqrt(2/40) * ln(1e-12) = -247.1 -> clamped


@pytest.mark.parametrize("cfg", [DS, FrontendConfig(name="uneven", window_length=480, stride=320, clip_samples=16000)],
                         ids=lambda c: c.name)
def test_stream_matches_clip_framing(cfg):
    clips = np.concatenate([shared_clips()[:2], random_clips(2, seed=9)])
    for clip in clips:
        stream = FrontendStream(cfg)
        window0 = stream.features()
        assert (window0 == stream.tables.silence).all()
        produced = [stream.push(clip[h * cfg.stride:(h + 1) * cfg.stride]) for h in range(len(clip) // cfg.stride)]
        frames = np.array([f for f in produced if f is not None])
        hpw = -(-cfg.window_length // cfg.stride)
        assert all(f is None for f in produced[: hpw - 1]) and all(f is not None for f in produced[hpw - 1 :])
        clip_frames = mfcc_int8(clip, cfg)
        np.testing.assert_array_equal(frames, clip_frames[: len(frames)])
        np.testing.assert_array_equal(frames, stream_frames(clip, cfg))
        np.testing.assert_array_equal(stream.features(), np.concatenate([window0, frames])[-cfg.num_frames :])
    with pytest.raises(KwsgenError, match=f"exactly {cfg.stride} samples"):
        FrontendStream(cfg).push(np.zeros(10, np.int16))


# ---------------------------------------------------------------- fidelity to TF's float MFCC (measured bounds)


def test_fidelity_on_speech_and_noise():
    """Speech and noise: the integer pipeline adds < 1e-4 mean / 2e-3 max; int8 codes equal TF's quantized float features."""
    clips = np.concatenate([shared_clips(), random_clips(10, seed=4)[[0, 4, 5, 9]]])
    ref = mfcc_float(clips, DS)
    err = np.abs(mfcc_fixed_float(clips, DS) - ref)
    assert err.mean() < 1e-4 and err.max() < 2e-3, (err.mean(), err.max())
    codes = mfcc_int8(clips, DS)
    assert (codes != quantize_float(ref, SCALE, ZP)).sum() == 0


def test_fidelity_other_settings():
    """User configurations (odd sizes, power spectrum, Hamming) stay close to the float reference.
    The power spectrum keeps 32 bits below the frame's strongest bin (96 dB of magnitude), hence its looser max."""
    clips = np.concatenate([shared_clips()[:3], random_clips(5, seed=6)[[0, 4]]])
    for cfg, mean, worst in ((FrontendConfig(name="odd", window_length=481, stride=157, num_channels=26, num_coefficients=13,
                                             lower_frequency=133.0, upper_frequency=6855.0), 1e-4, 2e-3),
                             (FrontendConfig(name="power", filterbank_input="power", window="hamming", upper_frequency=7600.0),
                              2e-4, 5e-2)):
        err = np.abs(mfcc_fixed_float(clips, cfg) - mfcc_float(clips, cfg))
        assert err.mean() < mean and err.max() < worst, (cfg.name, err.mean(), err.max())


def test_tables_are_deterministic():
    a = make_tables.__wrapped__(DS, SCALE, ZP)
    b = make_tables.__wrapped__(DS, SCALE, ZP)
    for name in ("window_q31", "twiddle_cos", "split_sin", "band", "weight_q15", "log2_table", "dct_q30", "silence"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.out_multiplier, a.out_shift, a.dct_shift) == (b.out_multiplier, b.out_shift, b.dct_shift)
    assert fixed.make_tables(DS, SCALE, ZP) is fixed.make_tables(DS, SCALE, ZP)
