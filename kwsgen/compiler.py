"""The top of the pipeline: model file + board + options -> project directory or verification result."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backends.cmsis_nn import locate
from .errors import KwsgenError
from .fixedpoint import Rounding
from .importer import read_bytes
from .legalize import load_model
from .detect_app import EMULATED_AUDIO_FILE
from .project import lower, project_files, write_project_atomically
from .targets import check_fit
from .verify import VerifyResult, verify


def default_kernels(board_kind: str, kernels: str | None) -> str:
    """CMSIS-NN on Arm boards, portable on the host, unless the user chose."""
    if kernels:
        return kernels
    return "portable" if board_kind == "host" else "cmsis-nn"


def _board(name: str):
    from .targets import load_board

    return load_board(name)


def compile_model(model_path: Path, *, board: str, out_dir: Path, kernels: str | None = None, force: bool = False,
                  cmsis_nn: Path | None = None, rounding: Rounding = Rounding.DOUBLE, alignment: int = 16,
                  frontend: str | None = None, labels: str | None = None, audio: Path | None = None,
                  settings=None) -> dict:
    source = read_bytes(model_path)
    model = load_model(source, rounding)
    b = _board(board)
    kernels = default_kernels(b.kind, kernels)
    if alignment <= 0 or alignment & (alignment - 1):
        raise KwsgenError(f"--alignment must be a power of two, got {alignment}")
    if bool(frontend) != bool(labels):
        raise KwsgenError("--frontend and --labels go together: they turn the project into a keyword spotter")
    if audio is not None and not (frontend and b.kind == "qemu"):
        raise KwsgenError("--audio is for keyword-spotter projects (--frontend, --labels) on emulated boards")
    # Arm boards copy CMSIS-NN into the project; a missing tree is reported before any work.
    cmsis = locate(cmsis_nn) if kernels == "cmsis-nn" and b.kind != "host" else None
    source_name = Path(model_path).name
    compiled = lower(model, b.emit_target(kernels), board=b.name, source_name=source_name,
                     source_bytes=source, alignment=alignment)
    if b.kind != "host":
        check_fit(b, compiled.library.weights_bytes, compiled.plan.arena_bytes)
    app = None
    if frontend:
        app = keyword_spotter_app(model, compiled, b, frontend, labels, settings, source_name)
    files = project_files(compiled, b, source_name=source_name, cmsis=cmsis, app=app)
    if audio is not None:
        files[EMULATED_AUDIO_FILE] = checked_wav(audio, frontend)
    write_project_atomically(out_dir, files, force=force)
    return compiled.report


def keyword_spotter_app(model, compiled, board, frontend: str, labels: str, settings, source_name: str):
    """The streaming keyword spotter (front end, model, smoothing, detection) as the project's app."""
    from .detect import DetectSettings, parse_labels
    from .detect_app import kws_firmware_app
    from .frontend import resolve_config
    from .platformio import App

    cfg = resolve_config(frontend)
    names = parse_labels(labels)
    n_out = model.graph.tensors[model.core_outputs[0]].size
    if len(names) != n_out:
        raise KwsgenError(f"--labels names {len(names)} classes, the model outputs {n_out}")
    files = kws_firmware_app(model, compiled, board, cfg, names, settings or DetectSettings(), source_name=source_name)
    return App("keyword-spotter", f"detects {', '.join(names)} in audio with the {cfg.name} front end",
               tuple(sorted(files.items())))


def checked_wav(path: Path, frontend: str) -> bytes:
    """A WAV the firmware can read (16-bit mono at the front end's rate), copied into the project."""
    from .frontend import resolve_config
    from .frontend.api import read_wav

    read_wav(path, resolve_config(frontend))  # one-line error if unusable
    return Path(path).read_bytes()


def verify_model(model_path: Path, *, board: str = "host", kernels: str | None = None, n: int = 100,
                 given: np.ndarray | None = None, cmsis_nn: Path | None = None,
                 rounding: Rounding = Rounding.DOUBLE, sanitize: bool = False) -> VerifyResult:
    if n < 0:
        raise KwsgenError(f"-n must be >= 0, got {n}")
    source = read_bytes(model_path)
    model = load_model(source, rounding)
    b = _board(board)
    kernels = default_kernels(b.kind, kernels)
    if n == 0 and given is None:
        raise KwsgenError("nothing to verify: -n 0 and no --input")
    return verify(model, board=b, kernels=kernels, n=n, given=given, sanitize=sanitize, cmsis_nn=cmsis_nn,
                  source_name=Path(model_path).name, source_bytes=source)
