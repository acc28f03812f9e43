"""`kwsgen features`: the device's exact features of a WAV file, from the twin or from the C.

Without `board` the bit-exact NumPy twin computes them; `board="host"` compiles the generated C
with the host compiler and runs it; an emulated board name builds firmware and runs it under
QEMU. All three return the same int8 [frames, coeffs] array, quantized into the model's input
scale/zero point, or without a model into the config's documented default quantization (for
both presets, the Arm DS-CNN input quantization: scale 1.0809112787246704, zero point 101).
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import KwsgenError, UnsupportedModelError
from ..fixedpoint import Rounding
from .codegen import Quantization, render_frontend, render_harness
from .config import FrontendConfig, frames_in, resolve_config
from .fixed import mfcc_int8, num_stream_frames

PEDANTIC = ("-pedantic",)  # on top of kwsgen.toolchain's -std=c99 -Wall -Wextra -Werror


def read_wav(path: str | Path, cfg: FrontendConfig) -> np.ndarray:
    """16-bit mono PCM at the config's rate, as int16 [samples]; anything else is a one-line error."""
    from scipy.io import wavfile

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except FileNotFoundError:
        raise KwsgenError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError, struct.error) as e:
        raise KwsgenError(f"{path}: not a readable WAV file ({' '.join(str(e).split())})") from None
    if data.dtype != np.int16:
        raise KwsgenError(f"{path}: must be 16-bit PCM, got {data.dtype} samples")
    if data.ndim != 1:
        raise KwsgenError(f"{path}: must be mono, got {data.shape[1]} channels")
    if rate != cfg.sample_rate:
        raise KwsgenError(f"{path}: sample rate {rate} Hz, front end {cfg.name!r} needs {cfg.sample_rate} Hz")
    if data.shape[0] < cfg.window_length:
        raise KwsgenError(f"{path}: {data.shape[0]} samples, shorter than one {cfg.window_length}-sample window")
    return np.ascontiguousarray(data)


def _input_quant_from_graph(path: Path) -> tuple[Any, int]:
    """(quant, size) of the int8 tensor the features feed: the QUANTIZE output of a float-input model, else the input."""
    from ..importer import load

    g = load(path)
    idx = g.inputs[0]
    for op in g.consumers().get(idx, []):
        if op.kind == "QUANTIZE":
            idx = op.outputs[0]
            break
    t = g.tensors[idx]
    return t, t.size


def model_input_quant(model_path: str | Path, cfg: FrontendConfig) -> Quantization:
    """The int8 scale/zero point the front end quantizes into: the model's (folded) input QUANTIZE.

    Uses `load_model`; when it cannot legalize the model (an operator kwsgen does not compile yet),
    the imported graph's input edge gives the same tensor."""
    from ..legalize import load_model

    path = Path(model_path)
    try:
        model = load_model(path)
        tensor = model.graph.tensors[model.core_inputs[0]]
    except UnsupportedModelError:
        tensor, _ = _input_quant_from_graph(path)
    return input_quant(tensor, cfg, f"{path}: ")


def input_quant(tensor, cfg: FrontendConfig, where: str = "") -> Quantization:
    """The quantization of a model input tensor the front end feeds, checked against the front end's shape."""
    if tensor.dtype != "int8" or tensor.quant is None or tensor.quant.per_channel:
        raise KwsgenError(f"{where}the front end feeds int8 per-tensor-quantized input, the model's is {tensor.dtype}")
    if tensor.size != cfg.num_features:
        raise KwsgenError(f"{where}model input has {tensor.size} values, front end {cfg.name!r} gives "
                          f"{cfg.num_frames} frames x {cfg.num_coefficients} coefficients = {cfg.num_features}")
    return Quantization(float(tensor.quant.s), int(tensor.quant.zp))


# ------------------------------------------------------------------ running the generated C


CLIP, STREAM = 1, 2  # harness modes: kws_frontend_clip, kws_frontend_push (+ the final window)


@dataclass(frozen=True)
class HarnessOutput:
    """What the C harness returns for each clip (see templates/frontend/kws_frontend_main.c.j2);
    a part the run's modes left out has zero frames."""

    clip: np.ndarray  # int8 [clips, frames_in(samples), coeffs]   kws_frontend_clip
    stream: np.ndarray  # int8 [clips, stream frames, coeffs]     every frame kws_frontend_push produced
    window: np.ndarray  # int8 [clips, num_frames, coeffs]        kws_frontend_features at the end


def write_clips(path: Path, clips: np.ndarray, modes: int = CLIP | STREAM) -> None:
    clips = np.ascontiguousarray(clips, dtype="<i2")
    path.write_bytes(struct.pack("<3i", clips.shape[0], clips.shape[1], modes) + clips.tobytes())


def parse_output(raw: bytes, n_clips: int, n_samples: int, cfg: FrontendConfig, modes: int = CLIP | STREAM) -> HarnessOutput:
    k = cfg.num_coefficients
    f = frames_in(n_samples, cfg) if modes & CLIP else 0
    s, w = (num_stream_frames(n_samples, cfg), cfg.num_frames) if modes & STREAM else (0, 0)
    per_clip = (f + s + w) * k
    out = np.frombuffer(raw, dtype=np.int8)
    if out.size != n_clips * per_clip:
        raise KwsgenError(f"front-end harness wrote {out.size} bytes, expected {n_clips * per_clip}")
    out = out.reshape(n_clips, per_clip)
    return HarnessOutput(
        out[:, : f * k].reshape(n_clips, f, k),
        out[:, f * k : (f + s) * k].reshape(n_clips, s, k),
        out[:, (f + s) * k :].reshape(n_clips, w, k),
    )


def write_sources(cfg: FrontendConfig, quant: Quantization, out_dir: Path, io: str = "stdio",
                  rounding: Rounding = Rounding.DOUBLE) -> list[Path]:
    """Render the front end plus the harness into out_dir; returns the .c files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {**render_frontend(cfg, quant, rounding), **render_harness(io)}
    for name, text in files.items():
        (out_dir / name).write_text(text)
    return sorted(out_dir / n for n in files if n.endswith(".c"))


def build_host(cfg: FrontendConfig, quant: Quantization, workdir: Path, *, sanitize: bool = False,
               rounding: Rounding = Rounding.DOUBLE, max_samples: int = 64000) -> Path:
    """Compile front end + harness for the host (kwsgen.toolchain's strict flags, plus -pedantic)."""
    from ..toolchain import compile_host

    sources = write_sources(cfg, quant, workdir, "stdio", rounding)
    return compile_host(sources, [workdir], {"KWS_FE_MAX_SAMPLES": max(max_samples, 1)}, workdir / "kws_frontend_host",
                        extra_cflags=PEDANTIC, sanitize=sanitize)


def run_host(exe: Path, clips: np.ndarray, cfg: FrontendConfig, workdir: Path, modes: int = CLIP | STREAM) -> HarnessOutput:
    clips = np.atleast_2d(np.asarray(clips, dtype=np.int16))
    inp, out = workdir / "clips.bin", workdir / "features.bin"
    write_clips(inp, clips, modes)
    proc = subprocess.run([str(exe), str(inp), str(out)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise KwsgenError(f"front-end harness failed (exit {proc.returncode}): {' '.join(proc.stderr.split())[:2000]}")
    return parse_output(out.read_bytes(), clips.shape[0], clips.shape[1], cfg, modes)


def build_firmware(board: Any, cfg: FrontendConfig, quant: Quantization, workdir: Path,
                   rounding: Rounding = Rounding.DOUBLE, defines: Mapping[str, str] | None = None) -> Path:
    """Front end + harness as firmware for an emulated board (semihosting I/O), via kwsgen.toolchain."""
    from .. import toolchain

    sources = write_sources(cfg, quant, workdir, "semihost", rounding)
    return Path(toolchain.build_firmware(board, sources, [workdir], dict(defines or {}), workdir, extra_cflags=PEDANTIC))


def run_firmware(board: Any, elf: Path, clips: np.ndarray, cfg: FrontendConfig, workdir: Path,
                 regions: tuple[str, ...] = (), timeout: float = 600, count: bool = False,
                 modes: int = CLIP | STREAM) -> tuple[HarnessOutput, Any]:
    """Run the harness firmware under QEMU; returns its output and the emulator's run record
    (with instruction counts of `regions`, e.g. "hop", when count is set)."""
    from ..emulator import run_qemu

    clips = np.atleast_2d(np.asarray(clips, dtype=np.int16))
    write_clips(workdir / "clips.bin", clips, modes)
    out = workdir / "features.bin"
    if out.exists():
        out.unlink()
    run = run_qemu(board, elf, args=("clips.bin", "features.bin"), cwd=workdir, timeout=timeout, regions=regions,
                   count=count or bool(regions))
    if run.exit_code != 0 or not out.exists():
        raise KwsgenError(f"front-end firmware failed on {getattr(board, 'name', board)} (exit {run.exit_code}): "
                          f"{' '.join(str(run.stderr).split())[:500]}")
    return parse_output(out.read_bytes(), clips.shape[0], clips.shape[1], cfg, modes), run


def _load_board(name: str) -> Any:
    try:
        from ..targets import load_board
    except ImportError:
        raise KwsgenError(f"--board {name}: emulated boards need kwsgen.targets, which this build lacks") from None
    board = load_board(name)
    if board.kind != "qemu":
        raise KwsgenError(f"--board {name}: not an emulated board; use host or a board QEMU emulates")
    return board


def compute_features(
    wav_path: str | Path,
    preset_or_config: str | Path | FrontendConfig | Mapping[str, Any],
    model_path: str | Path | None = None,
    board: str | None = None,
) -> np.ndarray:
    """int8 [frames, coeffs] features of a WAV file, as the device computes them."""
    cfg = resolve_config(preset_or_config)
    quant = model_input_quant(model_path, cfg) if model_path is not None else Quantization.default(cfg)
    audio = read_wav(wav_path, cfg)
    if board is None:
        return mfcc_int8(audio, cfg, quant.scale, quant.zero_point)
    with tempfile.TemporaryDirectory(prefix="kwsgen-features-") as tmp:
        work = Path(tmp)
        if board == "host":
            exe = build_host(cfg, quant, work, max_samples=audio.shape[0])
            return run_host(exe, audio[None], cfg, work, CLIP).clip[0].copy()
        target = _load_board(board)
        elf = build_firmware(target, cfg, quant, work, defines={"KWS_FE_MAX_SAMPLES": str(audio.shape[0])})
        out, _ = run_firmware(target, elf, audio[None], cfg, work, modes=CLIP)
        return out.clip[0].copy()
