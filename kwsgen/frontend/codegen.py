"""Render the front end's C from its tables (Jinja2 templates in templates/frontend/).

    kws_frontend.h / .c   the streaming fixed-point MFCC (tables as const arrays)
    kws_fixedpoint.h      kwsgen's shared fixed-point helpers (the final requantization uses kws_mbqm)

Plus two programs used by tests and benchmarks: a harness that runs clips through the C (file
in, file out, on the host with stdio or under QEMU with semihosting), and a float MFCC in C in the
manner of Arm's KWS examples, the baseline of the cost benchmark. Rendering is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import __version__
from ..codegen import make_env
from ..fixedpoint import Rounding
from .config import FrontendConfig
from .fixed import LOG_Q, NORM_BITS, WEIGHT_Q, FixedTables, make_tables
from .reference import dct_matrix, mel_bands, window_function


@dataclass(frozen=True)
class Quantization:
    """The int8 scale and zero point the features are quantized into (the model's input)."""

    scale: float
    zero_point: int

    @staticmethod
    def default(cfg: FrontendConfig) -> "Quantization":
        return Quantization(float(cfg.default_input_scale), int(cfg.default_input_zero_point))


def hops_per_window(cfg: FrontendConfig) -> int:
    return -(-cfg.window_length // cfg.stride)


def _context(t: FixedTables) -> dict:
    cfg = t.cfg
    return {
        "version": __version__,
        "cfg": cfg,
        "t": t,
        "input_scale": repr(t.input_scale),
        "input_zero_point": t.input_zero_point,
        "hops_per_window": hops_per_window(cfg),
        "norm_bits": NORM_BITS,
        "log_q": LOG_Q,
        "weight_q": WEIGHT_Q,
        "x_exp": t.x_exp,
        "band_ctype": "int8_t" if cfg.num_channels < 127 else "int16_t",
        "rounding": t.rounding.value,
        "sqrt_seed": sqrt_seed(),
    }


def sqrt_seed() -> np.ndarray:
    """Newton seed of the C's integer sqrt: round(sqrt(midpoint)) of m in [2^30, 2^32) by its top 8 bits."""
    top = np.arange(64, 256, dtype=np.float64)
    return np.round(np.sqrt((top + 0.5) * 2.0**24)).astype(np.uint16)


def render_frontend(cfg: FrontendConfig, quant: Quantization | None = None, rounding: Rounding = Rounding.DOUBLE) -> dict[str, str]:
    """The front-end C library: file name -> text."""
    q = quant or Quantization.default(cfg)
    t = make_tables(cfg, q.scale, q.zero_point, Rounding(rounding))
    env = make_env()
    ctx = _context(t)
    return {
        "kws_frontend.h": env.get_template("frontend/kws_frontend.h.j2").render(ctx),
        "kws_frontend.c": env.get_template("frontend/kws_frontend.c.j2").render(ctx),
        "kws_fixedpoint.h": env.get_template("runtime/kws_fixedpoint.h").render(ctx),
    }


def render_harness(io: str = "stdio") -> dict[str, str]:
    """A main() that runs every clip of a file through the C (clip and streaming APIs).

    io: "stdio" (host) or "semihost" (firmware: the platform layer's kws_semihost.h)."""
    if io not in ("stdio", "semihost"):
        raise ValueError(io)
    env = make_env()
    return {"kws_frontend_main.c": env.get_template("frontend/kws_frontend_main.c.j2").render(version=__version__, io=io)}


def render_float_baseline(cfg: FrontendConfig, quant: Quantization | None = None) -> dict[str, str]:
    """A float MFCC in C (float FFT, float mel, logf, float DCT) with the fixed-point front end's
    API and file names, so the same harness runs it: the cost benchmark's baseline."""
    q = quant or Quantization.default(cfg)
    t = make_tables(cfg, q.scale, q.zero_point)
    bands = mel_bands(cfg)
    m = cfg.fft_size // 2
    j = np.arange(m // 2)
    k = np.arange(bands.start, bands.end + 1)
    env = make_env()
    ctx = dict(
        _context(t),
        window_f=window_function(cfg.window, cfg.window_length).astype(np.float32),
        tw_cos=np.cos(2 * np.pi * j / m).astype(np.float32),
        tw_sin=np.sin(2 * np.pi * j / m).astype(np.float32),
        split_cos=np.cos(2 * np.pi * k / cfg.fft_size).astype(np.float32),
        split_sin=np.sin(2 * np.pi * k / cfg.fft_size).astype(np.float32),
        weight_f=bands.weight.astype(np.float32),
        dct_f=dct_matrix(cfg.num_channels, cfg.num_coefficients).astype(np.float32),
        inv_scale=np.float32(1.0 / q.scale),
        zero_point=q.zero_point,
    )
    return {
        "kws_frontend.h": env.get_template("frontend/kws_mfcc_float.h.j2").render(ctx),
        "kws_frontend.c": env.get_template("frontend/kws_mfcc_float.c.j2").render(ctx),
    }
