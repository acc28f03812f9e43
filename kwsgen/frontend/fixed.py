"""The device's fixed-point MFCC and its bit-exact NumPy twin.

The generated C (`templates/frontend/kws_frontend.c.j2`) runs exactly these integer operations;
this module is their vectorised twin (all clips and frames at once, one Python loop per FFT
stage), so that training pipelines can use the device's features bit for bit. No floating point
is used on the device path: every constant below is computed here, in Python, and rendered into
the C as const tables.

Stages and Q formats (x_real denotes the float value TF's ops see; N = FFT length, M = N/2)

  1. audio       x     int16 Q15                 x_real = x / 2^15
  2. window      w     int32 Q31, >= 0 (periodic Hann/Hamming, round(w * 2^31) clamped to 2^31 - 1;
                       a Q15 window's rounding alone would cost 4e-3 of feature error)
                 p     int64 Q46 = x * w         |p| < 2^15 * 2^31 = 2^46
  3. block float v     int32, per-frame exponent e = 29 - bitlen(OR_n |p_n|) in [-17, 28]:
                       v = p * 2^e (e < 0: rounded half up), so max |v| <= 2^29: the frame's
                       strongest windowed sample sets the scale, keeping the FFT's fixed noise
                       floor (a few LSB) ~2^-27 below it. (Scaling on OR |x| instead was measured:
                       4x the max error, 1% fewer instructions.) windowed_real = v * 2^-(46 + e).
                       An all-zero frame skips to the log floor.
  4. real FFT    z[n] = v[2n] + i v[2n+1] (zero-padded), M-point complex radix-2 DIT FFT, every
                 stage halving: a' = (a >> 1) + t, b' = (a >> 1) - t, t = (b * W) >> 32 with W in
                 Q31 (cos, sin clamped to +-(2^31 - 1)); for W = 1 (k = 0) t = b >> 1 exactly.
                 Then the real-FFT split for the bins used, halving once more:
                 F = (A >> 1) + (B >> 1), G = (A >> 1) - (B >> 1) with A = Z[k], B = conj Z[M-k],
                 u = (G * W_N^k) >> 32, X = (F >> 1) - i u.  X_real = X * 2^-(x_exp + e),
                 x_exp = 46 - log2(N) (36 for N = 1024): log2(M) halving stages plus the split's.
                 (all shifts are arithmetic, i.e. floor; rounding them was measured not to help)
  5. spectrum    S     uint32. magnitude: sqrt(X.re^2 + X.im^2) rounded to nearest, on the top 32 bits
                       of the power (power >> 2k, result << k; relative error < 2^-16, unbiased);
                       power: (X.re^2 + X.im^2) >> sh, sh = max(0, bitlen(frame max) - 32).
                       S_real = S * 2^-(x_exp + e) (magnitude) or S * 2^(sh - 2 x_exp - 2e) (power)
  6. mel         E     uint64 = sum_i S_i * wq_i into channel band_i, S_i * (2^15 - wq_i) into
                       band_i + 1; wq = TF's weight in Q15.  E_real = E * 2^-ebias with
                       ebias = x_exp + 15 + e (magnitude) or 2 x_exp + 15 + 2e - sh (power).
  7. log         L     int32 Q20 of log2: CLZ gives the exponent, a 129-entry Q20 table of
                       log2(1 + j/128) with linear interpolation the mantissa (error < 1.2e-5);
                       L = log2(E) - ebias, clamped below at log2(log_floor) (E = 0 included).
  8. DCT         acc   int64 = sum_j D_kj * L_j, D = TF's DCT matrix * ln 2 in Q30 (ln folded in):
                       c_real = acc * 2^-50.  r = round(acc / 2^dct_shift), int32 in Q(50 - dct_shift)
  9. quantize    q     int8 = clamp(zp + MultiplyByQuantizedMultiplier(r, 1 / (scale * 2^Qr))), the
                       model's input scale/zero point folded in (kwsgen.fixedpoint, same rounding
                       as the model).

Why nothing overflows (each bound is also asserted at table time, `FixedTables.bounds`, and
measured on the edge cases by `stage_maxima` in the tests):
  - stage 3 keeps |v| <= 2^29; a complex point then has magnitude <= sqrt(2) * 2^29.
  - a halving butterfly gives |a'|, |b'| <= (|a| + |b|) / 2 + 2 (|W| <= 1; the two floors add
    at most 2), so magnitudes stay <= sqrt(2) * 2^29 + 2 * stages < 2^30 through every stage;
    each component is at most its magnitude, and b * W sums two products below 2^61.
  - split: |F|, |G| components < 2^30; |u| <= |G| / 2 + 1; |X| <= sum|v| / N + 4 <= 2^29 + 4,
    hence X.re^2 + X.im^2 < 2^59 (uint64) and S < 2^32.
  - mel: S * 2^15 < 2^47, and no channel sums more than 2^11 bins: E < 2^58.
  - log/DCT: |L| <= max(|log2 floor|, log2 of the largest reachable energy) < 2^26 in Q20;
    |acc| <= max|L| * max_k sum_j |D_kj| < 2^63, and dct_shift is chosen so |r| < 2^30.

Accuracy: the integer pipeline adds about 2e-5 (mean) / 5e-4 (max) to TF's float features on
speech. Its limit is the 32-bit FFT's range below the frame's strongest component: mel bands
more than ~100 dB under it (a pure full-scale tone's far leakage, a notch in synthetic noise)
come out with errors up to ~0.1 (Nyquist-only input: 2), still bit-exact with the C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import KwsgenError
from ..fixedpoint import Rounding, mbqm, quantize_multiplier
from .config import FrontendConfig, frames_in
from .reference import as_clips, dct_matrix, frame_view, mel_bands, window_function

WINDOW_Q = 31
NORM_BITS = 29  # block floating point: max |v| <= 2^29
TWIDDLE_Q = 31
WEIGHT_Q = 15
LOG_Q = 20
LOG2_SEGMENT_BITS = 7  # 128 linear segments of log2(1 + f)
DCT_Q = 30
OUT_Q_MAX = 20  # preferred Q of the DCT output before the final requantization
FRAME_CHUNK = 2048  # frames per vectorised block (bounds the twin's memory)

_I32_MAX = (1 << 31) - 1


@dataclass(frozen=True, eq=False)
class FixedTables:
    """Every constant of the device front end for one configuration and one int8 input quantization."""

    cfg: FrontendConfig
    input_scale: float
    input_zero_point: int
    rounding: Rounding
    window_q31: np.ndarray  # int32 [W], >= 0
    bitrev: np.ndarray  # uint16 [M]
    twiddle_cos: np.ndarray  # int32 [M/2], Q31 cos(2 pi j / M)
    twiddle_sin: np.ndarray  # int32 [M/2], Q31 sin(2 pi j / M)
    bin_start: int
    bin_end: int
    split_cos: np.ndarray  # int32 [bins used], Q31 cos(2 pi k / N)
    split_sin: np.ndarray  # int32 [bins used], Q31 sin(2 pi k / N)
    band: np.ndarray  # int16 [bins used], channel of the falling side (-1: none)
    weight_q15: np.ndarray  # uint16 [bins used], Q15 weight of the falling side
    log2_table: np.ndarray  # int32 [2^LOG2_SEGMENT_BITS + 1], Q20 log2(1 + j / 128)
    log_floor_q20: int
    dct_q30: np.ndarray  # int32 [coeffs, channels], D * ln 2 in Q30
    dct_shift: int
    out_multiplier: int
    out_shift: int
    silence: np.ndarray  # int8 [coeffs], the features of an all-zero frame (the initial window)
    bounds: dict  # the overflow bounds, as powers of two, for the report and the tests

    @property
    def fft_points(self) -> int:
        return self.cfg.fft_size // 2

    @property
    def stages(self) -> int:
        return self.fft_points.bit_length() - 1

    @property
    def num_bins_used(self) -> int:
        return self.bin_end - self.bin_start + 1

    @property
    def power_mode(self) -> bool:
        return self.cfg.filterbank_input == "power"

    @property
    def x_exp(self) -> int:
        """X_real = X * 2^-(x_exp + e): audio Q15, window Q31, FFT + split scaled by 2^-log2(N)."""
        return 15 + WINDOW_Q - (self.stages + 1)

    @property
    def out_q(self) -> int:
        return DCT_Q + LOG_Q - self.dct_shift


def _q31(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values * 2.0**TWIDDLE_Q), -_I32_MAX, _I32_MAX).astype(np.int32)


def _bitrev(m: int) -> np.ndarray:
    bits = m.bit_length() - 1
    idx = np.arange(m)
    rev = np.zeros(m, dtype=np.int64)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    return rev.astype(np.uint16)


def _window_q31(cfg: FrontendConfig) -> np.ndarray:
    w = np.round(window_function(cfg.window, cfg.window_length) * 2.0**WINDOW_Q)
    assert (w >= 0).all(), "the windowing stage relies on non-negative window values"
    return np.clip(w, 0, _I32_MAX).astype(np.int32)


def _log2_table() -> np.ndarray:
    j = np.arange((1 << LOG2_SEGMENT_BITS) + 1, dtype=np.float64)
    return np.round(np.log2(1.0 + j / (1 << LOG2_SEGMENT_BITS)) * 2.0**LOG_Q).astype(np.int32)


def _max_energy_log2(cfg: FrontendConfig, weight_q15: np.ndarray, band: np.ndarray) -> float:
    """log2 of the largest mel energy any int16 input can reach (full-scale, window-coherent)."""
    win = np.abs(window_function(cfg.window, cfg.window_length)).sum()
    s_max = win if cfg.filterbank_input == "magnitude" else win * win
    per_channel = np.zeros(cfg.num_channels + 1)
    np.add.at(per_channel, band + 1, (1 << WEIGHT_Q) - weight_q15.astype(np.float64))
    np.add.at(per_channel, np.maximum(band, 0), np.where(band >= 0, weight_q15, 0).astype(np.float64))
    return math.log2(s_max * per_channel[: cfg.num_channels].max() / (1 << WEIGHT_Q))


class FrontendRangeError(KwsgenError):
    """The configuration or quantization cannot be represented by the fixed-point design."""


def _check_bound(name: str, log2_value: float, limit_bits: int, bounds: dict) -> None:
    bounds[name] = round(log2_value, 2)
    if log2_value >= limit_bits:
        raise FrontendRangeError(f"front end: {name} can reach 2^{log2_value:.1f}, beyond the 2^{limit_bits} the fixed-point design allows")


def _dct_output(dct_q30: np.ndarray, log_floor_q20: int, max_energy_log2: float, bounds: dict) -> int:
    """Choose dct_shift so the rounded DCT output fits comfortably in int32; prove the int64 accumulator cannot overflow."""
    l_max = max(abs(log_floor_q20), (max_energy_log2 + 1) * 2.0**LOG_Q)
    _check_bound("log2 energy |L| (Q20)", math.log2(l_max), 31, bounds)
    acc_max = l_max * np.abs(dct_q30.astype(np.float64)).sum(axis=1).max()
    _check_bound("DCT accumulator", math.log2(acc_max), 63, bounds)
    shift = max(DCT_Q + LOG_Q - OUT_Q_MAX, math.ceil(math.log2(acc_max)) - 30)
    bounds["DCT output r"] = round(math.log2(acc_max) - shift, 2)
    return shift


def _output_multiplier(scale: float, out_q: int) -> tuple[int, int]:
    real = 1.0 / (scale * 2.0**out_q)
    if real >= 1.0:
        raise FrontendRangeError(f"front end: input scale {scale:g} is too small for the fixed-point MFCC (needs > 2^-{out_q})")
    return quantize_multiplier(real)


@lru_cache(maxsize=16)
def make_tables(cfg: FrontendConfig, input_scale: float, input_zero_point: int, rounding: Rounding = Rounding.DOUBLE) -> FixedTables:
    """All tables for `cfg` quantizing into (input_scale, input_zero_point)."""
    if not (input_scale > 0 and math.isfinite(input_scale)):
        raise FrontendRangeError(f"front end: input scale must be positive and finite, got {input_scale}")
    if not -128 <= int(input_zero_point) <= 127:
        raise FrontendRangeError(f"front end: int8 input zero point must be in -128..127, got {input_zero_point}")
    bounds: dict = {}
    m = cfg.fft_size // 2
    j = np.arange(m // 2, dtype=np.float64)
    bands = mel_bands(cfg)
    k = np.arange(bands.start, bands.end + 1, dtype=np.float64)
    weight_q15 = np.round(bands.weight * (1 << WEIGHT_Q)).astype(np.uint16)
    band = bands.band.astype(np.int16)
    log_floor_q20 = int(round(math.log2(cfg.log_floor) * 2.0**LOG_Q))
    dct_q30 = np.round(dct_matrix(cfg.num_channels, cfg.num_coefficients) * math.log(2.0) * 2.0**DCT_Q).astype(np.int32)
    max_e = _max_energy_log2(cfg, weight_q15, bands.band)
    per_band = np.bincount(bands.band + 1, minlength=cfg.num_channels + 1)  # bins whose falling side is channel b
    bins_per_channel = int((per_band[1:] + per_band[:-1]).max())  # channel c: falling (band c) + rising (band c-1)
    _check_bound("mel energy E", 32 + WEIGHT_Q + math.log2(bins_per_channel), 64, bounds)
    dct_shift = _dct_output(dct_q30, log_floor_q20, max_e, bounds)
    mult, shift = _output_multiplier(float(input_scale), DCT_Q + LOG_Q - dct_shift)
    tables = FixedTables(
        cfg=cfg, input_scale=float(input_scale), input_zero_point=int(input_zero_point), rounding=Rounding(rounding),
        window_q31=_window_q31(cfg), bitrev=_bitrev(m),
        twiddle_cos=_q31(np.cos(2 * np.pi * j / m)), twiddle_sin=_q31(np.sin(2 * np.pi * j / m)),
        bin_start=bands.start, bin_end=bands.end,
        split_cos=_q31(np.cos(2 * np.pi * k / cfg.fft_size)), split_sin=_q31(np.sin(2 * np.pi * k / cfg.fft_size)),
        band=band, weight_q15=weight_q15, log2_table=_log2_table(), log_floor_q20=log_floor_q20,
        dct_q30=dct_q30, dct_shift=dct_shift, out_multiplier=mult, out_shift=shift,
        silence=_silence(cfg, dct_q30, log_floor_q20, dct_shift, mult, shift, int(input_zero_point), Rounding(rounding)),
        bounds=bounds,
    )
    return tables


def _silence(cfg: FrontendConfig, dct_q30: np.ndarray, log_floor_q20: int, dct_shift: int, mult: int, shift: int,
             zero_point: int, rounding: Rounding) -> np.ndarray:
    """Features of an all-zero frame (every channel at the floor): stages 8-9 on constant input."""
    acc = np.full(cfg.num_channels, log_floor_q20, dtype=np.int64) @ dct_q30.astype(np.int64).T
    q = mbqm(_round_shift(acc, dct_shift), mult, shift, rounding) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


# ---------------------------------------------------------------- integer helpers (vectorised)


def bit_length(x: np.ndarray) -> np.ndarray:
    """Exact bit length of non-negative integers < 2^63 (float64 frexp, corrected where it rounded up)."""
    x = np.asarray(x, dtype=np.int64)
    b = np.frexp(x.astype(np.float64))[1].astype(np.int64)
    too_high = (b > 0) & ((x >> np.maximum(b - 1, 0)) == 0)
    return b - too_high


def isqrt32(n: np.ndarray) -> np.ndarray:
    """sqrt(n) rounded to nearest for 0 <= n < 2^32, exactly (the C gets there by a table seed, one
    Newton step and a correction): floor sqrt r, then r + 1 when n - r^2 > r (sqrt(n) > r + 1/2)."""
    n = np.asarray(n, dtype=np.int64)
    r = np.floor(np.sqrt(n.astype(np.float64))).astype(np.int64)
    r -= r * r > n
    r += (r + 1) * (r + 1) <= n
    return r + (n - r * r > r)


def sqrt_top32(p: np.ndarray) -> np.ndarray:
    """Magnitude from power: rounded sqrt of the power's top 32 bits, shifted back (p < 2^62)."""
    b = bit_length(p)
    k = np.maximum(b - 31, 0) >> 1
    return isqrt32(p >> (2 * k)) << k


def _round_shift(x: np.ndarray, shift: int | np.ndarray) -> np.ndarray:
    """x * 2^-shift rounded half up (shift >= 1), or x unchanged for shift == 0."""
    shift = np.asarray(shift, dtype=np.int64)
    return (x + ((np.int64(1) << shift) >> 1)) >> shift


# ---------------------------------------------------------------- the stages


def _window_normalise(frames: np.ndarray, t: FixedTables) -> tuple[np.ndarray, np.ndarray]:
    """Stages 2-3: Q30 windowed samples scaled to max |v| <= 2^29; returns (v [F, N], e [F])."""
    padded = np.zeros((frames.shape[0], t.cfg.fft_size), dtype=np.int64)
    p = padded[:, : t.cfg.window_length]
    np.multiply(frames, t.window_q31, out=p, dtype=np.int64)  # Q46, |p| < 2^46
    b = bit_length(np.abs(p).max(axis=1))  # bitlen(max |p|) == bitlen(OR |p|), what the C computes
    e = NORM_BITS - b
    p *= np.int64(1) << np.maximum(e, 0)[:, None]
    right = np.maximum(-e, 0)[:, None]
    p += (np.int64(1) << right) >> 1  # round half up (adds 0 where e >= 0)
    p >>= right
    return padded, e


def _fft_halving(re: np.ndarray, im: np.ndarray, t: FixedTables, trace: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stage 4a: M-point radix-2 DIT complex FFT, every stage scaled by 1/2.

    Layout [M, frames] (input in bit-reversed order) so every NumPy inner loop runs over frames."""
    m, f = re.shape
    out_re, out_im = np.empty_like(re), np.empty_like(im)
    tr, ti, tmp = (np.empty((m // 2, f), dtype=np.int64) for _ in range(3))
    half = 1
    while half < m:
        span = 2 * half
        groups = m // span
        shape = (groups, half, f)
        wr = t.twiddle_cos[::groups][:half].astype(np.int64)[:, None]
        ws = t.twiddle_sin[::groups][:half].astype(np.int64)[:, None]
        r4, i4 = re.reshape(groups, 2, half, f), im.reshape(groups, 2, half, f)
        o_r, o_i = out_re.reshape(groups, 2, half, f), out_im.reshape(groups, 2, half, f)
        ar, br, ai, bi = r4[:, 0], r4[:, 1], i4[:, 0], i4[:, 1]
        t_r, t_i, t_x = tr.reshape(shape), ti.reshape(shape), tmp.reshape(shape)
        np.multiply(br, wr, out=t_r)
        np.multiply(bi, ws, out=t_x)
        t_r += t_x
        t_r >>= 32
        np.multiply(bi, wr, out=t_i)
        np.multiply(br, ws, out=t_x)
        t_i -= t_x
        t_i >>= 32
        np.right_shift(br[:, 0], 1, out=t_r[:, 0])  # W = 1 exactly
        np.right_shift(bi[:, 0], 1, out=t_i[:, 0])
        ar >>= 1
        ai >>= 1
        np.add(ar, t_r, out=o_r[:, 0])
        np.subtract(ar, t_r, out=o_r[:, 1])
        np.add(ai, t_i, out=o_i[:, 0])
        np.subtract(ai, t_i, out=o_i[:, 1])
        re, out_re = out_re, re
        im, out_im = out_im, im
        half = span
        if trace is not None:
            trace.append(int(max(np.abs(re).max(initial=0), np.abs(im).max(initial=0))))
    return re, im


def _real_fft_bins(v: np.ndarray, t: FixedTables, trace: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stage 4: X[k] / N of the real frames v [F, N], for k in [bin_start, bin_end]; returns [F, bins]."""
    m = t.fft_points
    rev = t.bitrev.astype(np.int64)
    re, im = _fft_halving(v[:, 0::2].T[rev], v[:, 1::2].T[rev], t, trace)
    k = np.arange(t.bin_start, t.bin_end + 1)
    a_idx, b_idx = k % m, (m - k) % m
    ar, ai = re[a_idx] >> 1, im[a_idx] >> 1
    br, bi = re[b_idx] >> 1, (-im[b_idx]) >> 1
    fr, fi = ar + br, ai + bi
    gr, gi = ar - br, ai - bi
    c, s = t.split_cos.astype(np.int64)[:, None], t.split_sin.astype(np.int64)[:, None]
    ur = (gr * c + gi * s) >> 32
    ui = (gi * c - gr * s) >> 32
    return ((fr >> 1) + ui).T, ((fi >> 1) - ur).T


def _spectrum(xr: np.ndarray, xi: np.ndarray, e: np.ndarray, t: FixedTables) -> tuple[np.ndarray, np.ndarray]:
    """Stage 5: S (uint32 values in int64) and ebias, so that the mel energy is E * 2^-ebias."""
    p = xr * xr + xi * xi
    if not t.power_mode:
        return sqrt_top32(p), t.x_exp + WEIGHT_Q + e
    sh = np.maximum(bit_length(p.max(axis=1)) - 32, 0)
    return p >> sh[:, None], 2 * t.x_exp + WEIGHT_Q + 2 * e - sh


@lru_cache(maxsize=16)
def _mel_matrix(t: FixedTables) -> np.ndarray:
    """Dense [bins used, channels] Q15 weights as float64 (exact integers) for the twin's matmul."""
    n, c = t.num_bins_used, t.cfg.num_channels
    w = np.zeros((n, c + 1), dtype=np.float64)
    rows = np.arange(n)
    band = t.band.astype(np.int64)
    right = band >= 0
    w[rows[right], band[right]] += t.weight_q15[right]
    w[rows, band + 1] += (1 << WEIGHT_Q) - t.weight_q15.astype(np.float64)
    return w[:, :c]


def _mel(s: np.ndarray, t: FixedTables) -> np.ndarray:
    """Stage 6: uint64 mel energies (int64 here, < 2^58). The matmul runs in float64 on 16-bit
    halves of S so every partial sum is an integer below 2^53, hence exact."""
    w = _mel_matrix(t)
    hi = (s >> 16).astype(np.float64) @ w
    lo = (s & 0xFFFF).astype(np.float64) @ w
    return (hi.astype(np.int64) << 16) + lo.astype(np.int64)


def log2_q20(e: np.ndarray, t: FixedTables) -> np.ndarray:
    """Stage 7 core: log2(E) in Q20 for E > 0 (CLZ exponent + interpolated mantissa table)."""
    e = np.asarray(e, dtype=np.int64)
    n = bit_length(e) - 1
    m = (np.maximum(e, 1).astype(np.uint64) << (63 - np.maximum(n, 0)).astype(np.uint64))
    f = ((m >> np.uint64(32)) & np.uint64(0x7FFFFFFF)).astype(np.int64)
    idx = f >> (31 - LOG2_SEGMENT_BITS)
    frac = (f >> (31 - LOG2_SEGMENT_BITS - 15)) & 0x7FFF
    table = t.log2_table.astype(np.int64)
    lo = table[idx]
    return (n << LOG_Q) + lo + (((table[idx + 1] - lo) * frac + (1 << 14)) >> 15)


def _log(energy: np.ndarray, ebias: np.ndarray, t: FixedTables) -> np.ndarray:
    """Stage 7: L = max(log2(E) - ebias, log2(floor)) in Q20; E = 0 gives the floor."""
    l = log2_q20(energy, t) - (np.asarray(ebias, dtype=np.int64)[:, None] << LOG_Q)
    return np.where(energy > 0, np.maximum(l, t.log_floor_q20), t.log_floor_q20)


def _dct(l: np.ndarray, t: FixedTables) -> np.ndarray:
    """Stage 8: DCT (ln 2 folded in), then the rounding shift to int32 in Q(out_q)."""
    return _round_shift(l @ t.dct_q30.astype(np.int64).T, t.dct_shift)


def _quantize(r: np.ndarray, t: FixedTables) -> np.ndarray:
    """Stage 9: requantize into the model's int8 input."""
    q = mbqm(r, t.out_multiplier, t.out_shift, t.rounding) + t.input_zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def frames_cepstrum(frames: np.ndarray, t: FixedTables) -> np.ndarray:
    """Stages 2-8 on int16 frames [F, window_length]: the MFCCs before quantization, int64 in Q(t.out_q)."""
    out = np.empty((frames.shape[0], t.cfg.num_coefficients), dtype=np.int64)
    for lo in range(0, frames.shape[0], FRAME_CHUNK):
        chunk = np.asarray(frames[lo : lo + FRAME_CHUNK])
        v, e = _window_normalise(chunk, t)
        xr, xi = _real_fft_bins(v, t)
        s, ebias = _spectrum(xr, xi, e, t)
        l = _log(_mel(s, t), ebias, t)
        l[e == NORM_BITS] = t.log_floor_q20  # b == 0: an all-zero frame
        out[lo : lo + FRAME_CHUNK] = _dct(l, t)
    return out


def stage_maxima(frames: np.ndarray, t: FixedTables) -> dict[str, int]:
    """The largest magnitude each stage's integers reach on these int16 frames: the claims of the
    overflow argument in this module's docstring, measured (for tests and for diagnosing a config)."""
    frames = np.asarray(frames)
    p = frames.astype(np.int64) * t.window_q31.astype(np.int64)
    v, e = _window_normalise(frames, t)
    live = e != NORM_BITS
    fft_trace: list[int] = []
    xr, xi = _real_fft_bins(v[live], t, fft_trace)
    power = xr * xr + xi * xi
    s, ebias = _spectrum(xr, xi, e[live], t)
    energy = _mel(s, t)
    log = _log(energy, ebias, t)
    acc = log @ t.dct_q30.astype(np.int64).T
    r = _round_shift(acc, t.dct_shift)
    amax = lambda a: int(np.abs(a).max(initial=0))  # noqa: E731
    return {
        "window product |p|": amax(p), "normalised |v|": amax(v), "FFT stage max": max(fft_trace, default=0),
        "split |X|": max(amax(xr), amax(xi)), "power": amax(power), "spectrum S": amax(s), "mel E": amax(energy),
        "log |L|": amax(log), "DCT |acc|": amax(acc), "DCT |r|": amax(r),
    }


def frames_int8(frames: np.ndarray, t: FixedTables) -> np.ndarray:
    """The whole pipeline on int16 frames [F, window_length] -> int8 [F, coeffs]."""
    return _quantize(frames_cepstrum(frames, t), t)


def mfcc_fixed_float(audio: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """The fixed-point MFCCs before the int8 step, as float64 (for measuring the arithmetic's error)."""
    clips, batched = as_clips(_check_audio(audio))
    t = make_tables(cfg, float(cfg.default_input_scale), int(cfg.default_input_zero_point))
    frames = frame_view(clips, cfg)
    r = frames_cepstrum(frames.reshape(-1, cfg.window_length), t).reshape(frames.shape[0], frames.shape[1], -1)
    out = r.astype(np.float64) * 2.0 ** -t.out_q
    return out if batched else out[0]


def _check_audio(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio)
    if a.dtype != np.int16:
        raise KwsgenError(f"front end: audio must be int16 samples, got {a.dtype}")
    return a


def mfcc_int8(
    audio: np.ndarray,
    cfg: FrontendConfig,
    input_scale: float | None = None,
    input_zero_point: int | None = None,
    rounding: Rounding = Rounding.DOUBLE,
) -> np.ndarray:
    """The device's features of int16 audio, bit-exact with the generated C.

    `audio` is [samples] or [clips, samples]; returns int8 [frames, coeffs] or [clips, frames, coeffs]
    (frames as TF counts them: (samples - window) // stride + 1). Without a scale/zero point, the
    config's documented default quantization is used.
    """
    clips, batched = as_clips(_check_audio(audio))
    t = make_tables(cfg, *_quant_or_default(cfg, input_scale, input_zero_point), Rounding(rounding))
    frames = frame_view(clips, cfg)
    n_clips, n_frames = frames.shape[:2]
    out = frames_int8(frames.reshape(n_clips * n_frames, cfg.window_length), t).reshape(n_clips, n_frames, cfg.num_coefficients)
    return out if batched else out[0]


def _quant_or_default(cfg: FrontendConfig, scale: float | None, zero_point: int | None) -> tuple[float, int]:
    if (scale is None) != (zero_point is None):
        raise KwsgenError("front end: give both input_scale and input_zero_point, or neither")
    if scale is None:
        return float(cfg.default_input_scale), int(cfg.default_input_zero_point)
    return float(scale), int(zero_point)


class FrontendStream:
    """The streaming C API in Python: push one hop (stride samples) at a time.

    Mirrors `kws_frontend_push`: the audio buffer holds the last ceil(window/stride) hops, a frame
    is produced once it is full (frame j covers samples [j*stride, j*stride + window), as in TF),
    and the feature window slides by one frame, starting as all-silence frames.
    """

    def __init__(self, cfg: FrontendConfig, input_scale: float | None = None, input_zero_point: int | None = None,
                 rounding: Rounding = Rounding.DOUBLE) -> None:
        self.tables = make_tables(cfg, *_quant_or_default(cfg, input_scale, input_zero_point), Rounding(rounding))
        self.cfg = cfg
        self.hops_per_window = -(-cfg.window_length // cfg.stride)
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros(self.hops_per_window * self.cfg.stride, dtype=np.int16)
        self._hops = 0
        self.frames_produced = 0
        self._window = np.tile(self.tables.silence, (self.cfg.num_frames, 1))

    def push(self, hop: np.ndarray) -> np.ndarray | None:
        """Feed exactly `stride` int16 samples; returns the new int8 frame, or None while filling."""
        hop = _check_audio(hop)
        if hop.shape != (self.cfg.stride,):
            raise KwsgenError(f"front end: push takes exactly {self.cfg.stride} samples, got shape {hop.shape}")
        self._buffer = np.concatenate([self._buffer[self.cfg.stride :], hop])
        self._hops += 1
        if self._hops < self.hops_per_window:
            return None
        frame = frames_int8(self._buffer[None, : self.cfg.window_length], self.tables)[0]
        self._window = np.concatenate([self._window[1:], frame[None]])
        self.frames_produced += 1
        return frame

    def features(self) -> np.ndarray:
        """The model input: int8 [num_frames, coeffs], oldest frame first."""
        return self._window.copy()


def stream_frames(audio: np.ndarray, cfg: FrontendConfig, input_scale: float | None = None,
                  input_zero_point: int | None = None, rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """Every frame a stream of whole hops produces (vectorised, equal to pushing hop by hop)."""
    a = _check_audio(audio)
    hops = a.shape[-1] // cfg.stride
    usable = hops * cfg.stride
    hpw = -(-cfg.window_length // cfg.stride)
    n = max(hops - hpw + 1, 0)
    clips, batched = as_clips(a[..., :usable])
    t = make_tables(cfg, *_quant_or_default(cfg, input_scale, input_zero_point), Rounding(rounding))
    frames = frame_view(clips, cfg)[:, :n]
    out = frames_int8(frames.reshape(-1, cfg.window_length), t).reshape(clips.shape[0], n, cfg.num_coefficients)
    return out if batched else out[0]


def num_stream_frames(num_samples: int, cfg: FrontendConfig) -> int:
    hpw = -(-cfg.window_length // cfg.stride)
    return max(num_samples // cfg.stride - hpw + 1, 0)


__all__ = ["FixedTables", "FrontendStream", "make_tables", "mfcc_int8", "frames_int8", "stream_frames", "frames_in"]
