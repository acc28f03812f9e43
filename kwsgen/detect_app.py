"""The keyword-spotting firmware: render the C app, build it for the host or an emulated board, run it.

`render_kws_app` turns (model, front end, labels, detection settings, audio source) into the C files of the
application (`templates/kws_app/`): the app with its ring buffer, scheduling and reporting, the recognizer
(smoothing and triggers), the streaming front end, the audio-source interface and one implementation of it,
and, for file sources, a main(). Its semantics are `kwsgen.detect`'s docstring; the Python twin there is the
oracle the firmware is tested against. `build_detector_firmware` / `run_detector` build and run it for
`kwsgen detect --board` and the tests, with kwsgen's own toolchain layer (no PlatformIO).

Audio sources:
    semihost-wav   a WAV file on the host, read through ARM semihosting (emulated boards)
    stdio-wav      a WAV file read with stdio (host builds)
    hook           weak defaults that the user's kws_audio_* functions replace (any real board)
    pdm-nrf52840   the Nano 33 BLE Sense's PDM microphone, nRF52840 registers, EasyDMA ring (nano33ble)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import __version__
from .codegen import make_env
from .detect import (
    SUMMARY_KEY, Detection, DetectSettings, frontend_quant, parse_labels, queue_capacity, score_table,
)
from .errors import KwsgenError
from .frontend.codegen import render_frontend
from .frontend.config import FrontendConfig
from .legalize import Model
from .targets import Board, check_fit, load_board

AUDIO_SOURCES = ("semihost-wav", "stdio-wav", "hook", "pdm-nrf52840")
PROFILES = ("regions", "cycles", "none")
REGIONS = ("audio", "frontend", "inference", "postproc")
PEDANTIC = ("-pedantic",)
WAV_NAME = "stream.wav"
EXIT_BAD_AUDIO = 65
# cores with the DWT cycle counter (v7-M and v8-M Mainline); v6-M and v8-M Baseline have none
CYCLE_COUNTER_CPUS = {"cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p", "cortex-m55", "cortex-m85"}
PDM_BOARDS = {"nano33ble"}


def default_audio_source(board: Board) -> str:
    if board.kind == "host":
        return "stdio-wav"
    if board.kind == "qemu":
        return "semihost-wav"
    return "pdm-nrf52840" if board.name in PDM_BOARDS else "hook"


def default_profile(board: Board) -> str:
    if board.kind == "qemu":
        return "regions"
    if board.kind == "real" and board.cpu in CYCLE_COUNTER_CPUS:
        return "cycles"
    return "none"


def c_string(text: str) -> str:
    """A C string literal of printable ASCII text."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ring_samples(stride: int) -> int:
    """Input ring: at least 4 hops, a power of two (so indices wrap with a mask)."""
    n = 4 * stride
    return 1 << (n - 1).bit_length()


def render_kws_app(
    model: Model,
    compiled_library_files: Mapping[str, str],
    cfg: FrontendConfig,
    labels: Sequence[str],
    settings: DetectSettings = DetectSettings(),
    audio_source: str = "semihost-wav",
    *,
    profile: str | None = None,
    main: bool | None = None,
    report_hops: int = 0,
    source_name: str = "model.tflite",
) -> dict[str, str]:
    """The application's C files (name -> text) for a project's src/, next to the model library.

    `compiled_library_files` is `Compiled.library.files` of the same model (its kws_model.h and
    kws_fixedpoint.h are used from the library, not repeated here). `profile`: "regions" (QEMU instruction
    counts; needs kwsgen's platform layer, kws_profile.h), "cycles" (DWT cycle sums in the summary line),
    "none"; default by audio source. `main`: add kws_app_main.c (default: for the WAV sources only; a real
    board's project provides the loop and kws_app_output). `report_hops`: also print the summary every so
    many hops (for live sources)."""
    if audio_source not in AUDIO_SOURCES:
        raise KwsgenError(f"audio source {audio_source!r}: choose one of {', '.join(AUDIO_SOURCES)}")
    labels = parse_labels(labels)
    profile = profile or {"semihost-wav": "regions", "pdm-nrf52840": "cycles"}.get(audio_source, "none")
    if profile not in PROFILES:
        raise KwsgenError(f"profile {profile!r}: choose one of {', '.join(PROFILES)}")
    if main is None:
        main = audio_source.endswith("-wav")
    if main and not audio_source.endswith("-wav"):
        raise KwsgenError(f"kws_app_main.c reads a WAV file; audio source {audio_source!r} needs the project's own main")
    if audio_source == "pdm-nrf52840" and cfg.sample_rate != 16000:
        raise KwsgenError(f"the nRF52840 PDM source runs at 16000 Hz, front end {cfg.name!r} needs {cfg.sample_rate} Hz")
    if not isinstance(report_hops, int) or report_hops < 0:
        raise KwsgenError(f"report_hops must be a non-negative integer, got {report_hops!r}")
    if "kws_model.h" not in compiled_library_files:
        raise KwsgenError("render_kws_app needs the model library's files (Compiled.library.files)")
    quant = frontend_quant(model, cfg)
    table = score_table(model, labels)
    capacity = queue_capacity(cfg, settings)
    out_t = model.graph.tensors[model.core_outputs[0]]
    frontend = render_frontend(cfg, quant, model.rounding)
    shared = frontend.pop("kws_fixedpoint.h")
    if compiled_library_files.get("kws_fixedpoint.h", shared) != shared:
        raise KwsgenError("internal: the model library and the front end disagree on kws_fixedpoint.h")
    if "kws_fixedpoint.h" not in compiled_library_files:
        frontend["kws_fixedpoint.h"] = shared

    labels_json = [json.dumps(x) for x in labels]
    ignored = [x for x in labels if x in settings.ignore]
    ctx = dict(
        version=__version__, cfg=cfg, s=settings, labels=labels, labels_json=[c_string(x) for x in labels_json],
        reported=[0 if x in settings.ignore else 1 for x in labels], ignored=ignored, num_labels=len(labels),
        capacity=capacity, ring=_ring_samples(cfg.stride), report_hops=report_hops, profile=profile,
        score_table=table, out_scale=repr(float(out_t.quant.s)), out_zero_point=int(out_t.quant.zp),
        line_bytes=80 + max(len(x) for x in labels_json), summary_bytes=400, source_name=source_name,
        sample_rate=cfg.sample_rate,
        source_doc={"semihost-wav": "a WAV file on the host, read through ARM semihosting (kws_audio_wav.c)",
                    "stdio-wav": "a WAV file read with stdio (kws_audio_wav.c)",
                    "hook": "your own implementation; weak defaults in kws_audio_hook.c",
                    "pdm-nrf52840": "the nRF52840 PDM microphone (kws_audio_pdm_nrf52840.c)"}[audio_source],
    )
    env = make_env()

    def render(name: str, **extra: object) -> str:
        return env.get_template(f"kws_app/{name}.j2").render(**ctx, **extra)

    files = dict(frontend)
    for name in ("kws_app.h", "kws_app.c", "kws_recognize.h", "kws_recognize.c", "kws_audio.h"):
        files[name] = render(name)
    if audio_source.endswith("-wav"):
        io = "semihost" if audio_source == "semihost-wav" else "stdio"
        files["kws_audio_wav.c"] = render("kws_audio_wav.c", io=io)
        if main:
            files["kws_app_main.c"] = render("kws_app_main.c", io=io)
    elif audio_source == "hook":
        files["kws_audio_hook.c"] = render("kws_audio_hook.c")
    else:
        files["kws_audio_pdm_nrf52840.c"] = render("kws_audio_pdm_nrf52840.c")
    return files


def render_recognizer_harness(num_labels: int, capacity: int, settings: DetectSettings) -> dict[str, str]:
    """The recognizer alone plus a file-in/file-out main (tests: Python logic vs C logic)."""
    env = make_env()
    ctx = dict(version=__version__, num_labels=num_labels, capacity=capacity, s=settings)
    return {name: env.get_template(f"kws_app/{name}.j2").render(**ctx)
            for name in ("kws_recognize.h", "kws_recognize.c", "kws_recognize_main.c")}


def render_wav_source_harness(sample_rate: int) -> dict[str, str]:
    """The stdio WAV source alone plus a main that dumps its samples (tests of the RIFF parser)."""
    env = make_env()
    ctx = dict(version=__version__, sample_rate=sample_rate, source_doc="a WAV file read with stdio (kws_audio_wav.c)")
    return {
        "kws_audio.h": env.get_template("kws_app/kws_audio.h.j2").render(**ctx),
        "kws_audio_wav.c": env.get_template("kws_app/kws_audio_wav.c.j2").render(**ctx, io="stdio"),
        "kws_audio_dump_main.c": env.get_template("kws_app/kws_audio_dump_main.c.j2").render(**ctx),
    }


# ------------------------------------------------------------------ building and running


@dataclass(frozen=True)
class DetectorBuild:
    board: Board
    kernels: str
    binary: Path
    workdir: Path


def _board(board: str | Board) -> Board:
    b = board if isinstance(board, Board) else load_board(board)
    if b.kind == "real":
        raise KwsgenError(f"--board {b.name}: a real board; `kwsgen detect --board` runs on the host or an emulated "
                          "board (see `kwsgen boards`); use `kwsgen compile` for a real board's firmware")
    return b


def build_detector_firmware(board: str | Board, model: Model, cfg: FrontendConfig, labels: Sequence[str],
                            settings: DetectSettings, workdir: Path, *, kernels: str | None = None,
                            cmsis_nn: Path | str | None = None, source_name: str = "model.tflite",
                            source_bytes: bytes = b"", sanitize: bool = False) -> DetectorBuild:
    """Generate library + app and build: a host executable (gcc, optionally ASan/UBSan) or an ELF for an
    emulated board (kwsgen's platform layer, QEMU instruction-count regions per stage)."""
    from .backends.cmsis_nn import firmware_archive, host_archive, locate
    from .compiler import default_kernels
    from .project import lower
    from .toolchain import arm_gcc, build_firmware, compile_host, host_gcc

    b = _board(board)
    if sanitize and b.kind != "host":
        raise KwsgenError("sanitizers apply to host builds only")
    kernels = default_kernels(b.kind, kernels)
    cmsis = locate(cmsis_nn) if kernels == "cmsis-nn" else None
    compiled = lower(model, b.emit_target(kernels), board=b.name, source_name=source_name, source_bytes=source_bytes)
    if b.kind == "qemu":
        check_fit(b, compiled.library.weights_bytes, compiled.plan.arena_bytes)
    files = dict(compiled.library.files)
    files.update(render_kws_app(model, compiled.library.files, cfg, labels, settings, default_audio_source(b),
                                profile=default_profile(b), source_name=source_name))
    workdir = Path(workdir)
    src = workdir / "src"
    src.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(files.items()):
        (src / name).write_text(text)
    sources: list[Path] = sorted(src / n for n in files if n.endswith(".c"))
    includes = [src]
    flags = PEDANTIC if cmsis is None else ()  # CMSIS-NN's headers are not -pedantic clean
    if b.kind == "host":
        if cmsis is not None:
            includes.append(cmsis.include)
            sources.append(host_archive(cmsis, host_gcc(), ("-O2", "-std=c99", "-fPIC")))
        exe = compile_host(sources, includes, {}, workdir / "kws_app", extra_cflags=flags, sanitize=sanitize)
        return DetectorBuild(b, kernels, exe, workdir)
    if cmsis is not None:
        includes.append(cmsis.include)
        sources.append(firmware_archive(cmsis, arm_gcc(), (*b.cflags(), "-O2", "-std=c99", "-ffunction-sections",
                                                           "-fdata-sections")))
    elf = build_firmware(b, sources, includes, {}, workdir / "build", extra_cflags=flags)
    return DetectorBuild(b, kernels, elf, workdir)


@dataclass(frozen=True)
class DetectorRun:
    board: str
    kernels: str
    detections: list[Detection]
    summary: dict
    instructions: dict[str, int] = field(default_factory=dict)  # region -> instructions, plus "total"
    entries: dict[str, int] = field(default_factory=dict)  # region -> times entered

    def per_stage(self) -> dict[str, int]:
        """Instructions per entry of each stage: audio and front end per hop, inference and post-processing
        per inference (each includes its markers' 2-5 instructions, see kwsgen.emulator)."""
        return {r: self.instructions[r] // self.entries[r] for r in REGIONS if self.entries.get(r)}

    def summary_json(self) -> dict:
        out = {"board": self.board, "kernels": self.kernels, **self.summary}
        if self.instructions:
            stage = self.per_stage()
            hops = max(int(self.summary.get("hops", 0)), 1)
            out["instructions"] = {
                "audio_per_hop": self.instructions.get("audio", 0) // hops,
                "frontend_per_hop": stage.get("frontend"),
                "inference_per_inference": stage.get("inference"),
                "postproc_per_inference": stage.get("postproc"),
                "total": self.instructions.get("total"),
            }
        return out


def parse_output(text: str, where: str) -> tuple[list[Detection], dict]:
    """Detection lines and the summary line the app prints; an error line becomes a KwsgenError."""
    detections: list[Detection] = []
    summary: dict | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("kws-audio: error: ", "kws-app: error: ")):
            raise KwsgenError(line.split("error: ", 1)[1])
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise KwsgenError(f"{where}: unreadable output line {line[:120]!r}") from None
        if SUMMARY_KEY in obj:
            summary = obj[SUMMARY_KEY]
        else:
            detections.append(Detection(int(obj["t_ms"]), str(obj["label"]), int(obj["score"])))
    if summary is None:
        raise KwsgenError(f"{where}: the app printed no summary (it did not finish)")
    return detections, summary


def run_detector(build: DetectorBuild, wav: Path, *, timeout: float = 900, count: bool = True) -> DetectorRun:
    """Run the built app over a WAV file: natively on the host, under QEMU (WAV streamed by semihosting).
    Under QEMU `count` adds per-stage instruction counts (about twice the run time)."""
    from .emulator import run_qemu

    wav = Path(wav)
    work = build.workdir / "run"
    work.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(wav, work / WAV_NAME)
    except OSError as e:
        raise KwsgenError(f"{wav}: cannot read ({e.strerror})") from None
    where = f"{build.board.name} / {build.kernels}"
    if build.board.kind == "host":
        try:
            proc = subprocess.run([str(build.binary), WAV_NAME], cwd=work, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise KwsgenError(f"the keyword-spotting app did not finish within {timeout:g} s on the host") from None
        out, err, code = proc.stdout, proc.stderr, proc.returncode
        instructions: dict[str, int] = {}
        entries: dict[str, int] = {}
    else:
        run = run_qemu(build.board, build.binary, args=(WAV_NAME,), cwd=work, timeout=timeout,
                       regions=REGIONS if count else (), count=count)
        out, err, code = run.stdout.decode("utf-8", "replace"), run.stderr.decode("utf-8", "replace"), run.exit_code
        instructions, entries = run.instructions, run.region_entries
    for line in (out + "\n" + err).splitlines():  # the app's own one-line errors first
        if line.startswith(("kws-audio: error: ", "kws-app: error: ")):
            raise KwsgenError(f"{wav}: " + line.split("error: ", 1)[1].replace(WAV_NAME + ": ", ""))
    if code != 0:
        detail = " ".join((err or out).split())[:300]
        raise KwsgenError(f"the keyword-spotting app failed on {where} (exit {code}): {detail}")
    detections, summary = parse_output(out, where)
    return DetectorRun(build.board.name, build.kernels, detections, summary, instructions, entries)


def run_detector_cli(model: Model, source_bytes: bytes, source_name: str, wav: Path, cfg: FrontendConfig,
                     labels: Sequence[str], settings: DetectSettings, *, board: str, kernels: str | None,
                     cmsis_nn: str | None) -> DetectorRun:
    """`kwsgen detect --board B`: build in a temporary directory, run, clean up."""
    import os

    cmsis = cmsis_nn or os.environ.get("CMSIS_NN_PATH")
    with tempfile.TemporaryDirectory(prefix="kwsgen-detect-") as tmp:
        build = build_detector_firmware(board, model, cfg, labels, settings, Path(tmp), kernels=kernels,
                                        cmsis_nn=cmsis, source_name=source_name, source_bytes=source_bytes)
        return run_detector(build, wav)


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """A 16-bit mono PCM WAV file of int16 samples (for tests and benchmarks)."""
    import struct

    data = np.ascontiguousarray(audio, dtype="<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


EMULATED_AUDIO_FILE = "audio.wav"


def kws_firmware_app(model: Model, compiled, board: Board, cfg: FrontendConfig, labels: Sequence[str],
                     settings: DetectSettings = DetectSettings(), *, source_name: str = "model.tflite") -> dict[str, str]:
    """The keyword spotter as the src/ application of a `kwsgen compile --frontend` project.

    Host: a stdio program (`kws_app AUDIO.wav`). Arm boards: the board layer calls kws_app_run();
    emulated boards read `audio.wav` from the project directory through semihosting, real boards use
    their live source (nano33ble's PDM microphone, elsewhere the documented kws_audio_* hook).
    """
    source = default_audio_source(board)
    if board.kind == "host":
        return render_kws_app(model, compiled.library.files, cfg, labels, settings, source, main=True,
                              source_name=source_name)
    files = render_kws_app(model, compiled.library.files, cfg, labels, settings, source, main=False,
                           profile=default_profile(board), report_hops=500 if board.kind == "real" else 0,
                           source_name=source_name)
    ctx = dict(version=__version__, audio_name=c_string(EMULATED_AUDIO_FILE) if source.endswith("-wav") else "NULL",
               source_doc={"semihost-wav": f"the WAV file {EMULATED_AUDIO_FILE} on the host, read through ARM semihosting",
                           "hook": "your own kws_audio_* implementation (weak defaults in kws_audio_hook.c)",
                           "pdm-nrf52840": "the nRF52840 PDM microphone"}[source])
    files["kws_app_board.c"] = make_env().get_template("kws_app/kws_app_board.c.j2").render(**ctx)
    return files
