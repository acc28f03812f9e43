"""Output projects: the generated library plus an application and build files, written atomically.

Every project has the same layout whatever the board, so a user finds the model in the same place:

    kwsgen-report.json        plan, sizes and per-layer figures
    lib/kws_model/            the generated C library (library.json makes it a PlatformIO library)
    src/                      the application (host: a harness; boards: a demo app)
    Makefile | platformio.ini how to build it
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .backends.cmsis_nn import CmsisNN, firmware_archive, host_archive, locate
from .emulator import run_qemu
from .targets import Board, check_fit, load_board
from .toolchain import arm_gcc, build_firmware, elf_sizes, platform_dir
from .codegen import TEMPLATES, Library, make_env, render_library
from .errors import KwsgenError
from .fixedpoint import Rounding
from .legalize import Model
from .ops import EmitTarget
from .planner import Plan, check_plan, plan

if TYPE_CHECKING:
    from .platformio import App

REPORT_NAME = "kwsgen-report.json"
LIB_DIR = Path("lib") / "kws_model"


@dataclass(frozen=True)
class Compiled:
    """A model lowered for one target: plan, rendered library and the report."""

    model: Model
    target: EmitTarget
    plan: Plan
    library: Library
    report: dict


def lower(model: Model, target: EmitTarget, *, board: str, source_name: str, source_bytes: bytes,
          alignment: int = 16) -> Compiled:
    p = plan(model, target, alignment)
    problems = check_plan(p)
    assert not problems, problems
    lib = render_library(model, p, target, source_name=source_name, source_bytes=source_bytes)
    return Compiled(model, target, p, lib, make_report(model, p, lib, target, board))


def make_report(model: Model, p: Plan, lib: Library, target: EmitTarget, board: str) -> dict:
    g = model.graph
    layers = []
    for step, layer in enumerate(model.core_layers):
        outs = [g.tensors[t] for t in layer.op.outputs]
        layers.append({
            "step": step,
            "op": layer.op.kind,
            "source_operator": layer.op.index,
            "macs": layer.opdef.macs(layer.op, g),
            "output_bytes": sum(t.nbytes for t in outs),
            "output_shape": [list(t.shape) for t in outs],
            "arena_offset": p.offset_of_tensor(layer.op.outputs[0]),
            "view": layer.opdef.view,
            "scratch_bytes": (p.scratch(step) or (0, 0))[1],
        })
    return {
        "kwsgen_version": __version__,
        "board": board,
        "kernels": target.kernels,
        "isa": target.isa,
        "rounding": model.rounding.value,
        "arena_bytes": p.arena_bytes,
        "arena_lower_bound_bytes": p.lower_bound_bytes,
        "scratch_bytes": sum(b.size for b in p.buffers if b.scratch_of is not None),
        "weights_bytes": lib.weights_bytes,
        "macs": sum(layer["macs"] for layer in layers),
        "float_io": model.float_io,
        "plan": p.to_json(),
        "layers": layers,
    }


# ---- writing files ----


def library_files(lib: Library) -> dict[str, str]:
    manifest = {
        "name": "kws_model",
        "version": __version__,
        "description": "kwsgen-generated keyword-spotting model",
        "build": {"srcDir": "src", "includeDir": "src", "flags": ["-std=c99"]},
    }
    files = {str(LIB_DIR / "src" / name): text for name, text in lib.files.items()}
    files[str(LIB_DIR / "library.json")] = json.dumps(manifest, indent=2) + "\n"
    return files


def harness_files(emulated: bool) -> dict[str, str]:
    """The verification harness: reads input vectors, writes outputs (stdio on the host, semihosting on QEMU)."""
    env = make_env()
    io = "kws_io_semihost.h" if emulated else "kws_io_host.h"
    return {
        "src/main.c": env.get_template("app/verify_main.c.j2").render(version=__version__),
        "src/kws_io.h": (TEMPLATES / "app" / io).read_text(),
    }


def host_files(compiled: Compiled) -> dict[str, str]:
    files = harness_files(False)
    files["Makefile"] = make_env().get_template("app/Makefile.host.j2").render(version=__version__)
    return files


def verify_files(compiled: Compiled, board: Board) -> dict[str, str]:
    files = library_files(compiled.library)
    files.update(harness_files(board.kind == "qemu"))
    return files


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> None:
    """Text files as text, copied third-party files (CMSIS-NN) as the bytes they were."""
    for rel, data in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)


def _is_kwsgen_dir(path: Path) -> bool:
    return (path / REPORT_NAME).is_file()


def write_project_atomically(out_dir: Path, files: Mapping[str, str | bytes], *, force: bool = False) -> None:
    """Render into a sibling temp dir, then swap it in: a failure never leaves a half-written project."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise KwsgenError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not _is_kwsgen_dir(out_dir) and not force:
        raise KwsgenError(f"{out_dir}: directory is not empty and was not made by kwsgen (use --force to replace it)")
    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.kwsgen-", dir=parent))
    except OSError as e:
        raise KwsgenError(f"{out_dir}: cannot write there ({e.strerror})") from None
    try:
        write_tree(tmp, files)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
            os.replace(out_dir, old / "d")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise KwsgenError(f"{out_dir}: cannot write project ({e.strerror})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def project_files(compiled: Compiled, board: str | Board, *, source_name: str = "model.tflite",
                  cmsis: CmsisNN | None = None, app: "App | None" = None) -> dict[str, str | bytes]:
    """All files of the output project: the host harness and Makefile, or for an Arm board a
    PlatformIO project (kwsgen.platformio) with `app` in src/ (default: the self-test)."""
    from .platformio import project_files as platformio_files

    b = board if isinstance(board, Board) else load_board(board)
    files: dict[str, str | bytes] = dict(library_files(compiled.library))
    if b.kind == "host" and app is not None:
        files.update({f"src/{name}": text for name, text in app.files})
        files["Makefile"] = make_env().get_template("app/Makefile.host.j2").render(version=__version__, app=app)
    elif b.kind == "host":
        files.update(host_files(compiled))
    else:
        files.update(platformio_files(compiled, b, source_name=source_name, cmsis=cmsis, app=app))
    files[REPORT_NAME] = json.dumps(compiled.report, indent=2, sort_keys=True) + "\n"
    return files


# ---- building and running for verification ----


HOST_CFLAGS = ("-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-O1", "-g")


def host_cc() -> str:
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None:
        raise KwsgenError("no host C compiler found: install gcc (apt-get install gcc)")
    return cc


def cmsis_defines(rounding: Rounding) -> tuple[str, ...]:
    """CMSIS-NN's compile-time rounding switch, matching the model's (the generated C #errors otherwise)."""
    return ("CMSIS_NN_USE_SINGLE_ROUNDING",) if rounding is Rounding.SINGLE else ()


def compile_host_exe(root: Path, out: Path, *, defines: tuple[str, ...] = (), sanitize: bool = False,
                     cmsis: CmsisNN | None = None, rounding: Rounding = Rounding.DOUBLE) -> Path:
    cc = host_cc()
    sources = sorted(str(p) for p in (root / LIB_DIR / "src").glob("*.c")) + sorted(str(p) for p in (root / "src").glob("*.c"))
    flags = list(HOST_CFLAGS) + (list(SANITIZE) if sanitize else [])
    extra: list[str] = []
    if cmsis is not None:  # its own flags: CMSIS-NN is not -pedantic clean, and is not ours to sanitize
        defines = defines + cmsis_defines(rounding)
        extra = [f"-I{cmsis.include}"]
        libs = [str(host_archive(cmsis, cc, ("-O2", "-std=c99", "-fPIC", *[f"-D{d}" for d in cmsis_defines(rounding)])))]
    else:
        libs = []
    cmd = [cc, *flags, *[f"-D{d}" for d in defines], f"-I{root / LIB_DIR / 'src'}", f"-I{root / 'src'}", *extra,
           *sources, *libs, "-o", str(out), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KwsgenError(f"host build failed: {proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else proc.returncode}")
    return out


@dataclass
class LibraryBuild:
    """A rendered verification project that can run batches of inputs on the host or under QEMU."""

    root: Path
    compiled: Compiled
    board: Board
    sanitize: bool
    cmsis: CmsisNN | None = None
    flash_bytes: int | None = None
    ram_bytes: int | None = None

    @property
    def arena_bytes(self) -> int:
        return self.compiled.plan.arena_bytes

    @property
    def weights_bytes(self) -> int:
        return self.compiled.library.weights_bytes

    @property
    def emulated(self) -> bool:
        return self.board.kind == "qemu"

    def _binary(self, trace: bool) -> Path:
        name = "harness_trace" if trace else "harness"
        defines = ("KWS_MODEL_TRACE",) if trace else ()
        if not self.emulated:
            exe = self.root / name
            if not exe.exists():
                compile_host_exe(self.root, exe, defines=defines, sanitize=self.sanitize, cmsis=self.cmsis,
                                 rounding=self.compiled.model.rounding)
            return exe
        workdir = self.root / f"build-{name}"
        elf = workdir / "firmware.elf"
        if not elf.exists():
            elf = build_firmware_exe(self.root, self.board, workdir, defines=defines, cmsis=self.cmsis,
                                     rounding=self.compiled.model.rounding)
            if not trace:
                sizes = elf_sizes(elf)
                self.flash_bytes, self.ram_bytes = sizes.flash, sizes.ram
        return elf

    def _run(self, binary: Path, inputs: bytes, workdir: Path, trace: bool) -> tuple[bytes, bytes, int | None]:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "inputs.bin").write_bytes(inputs)
        args = ["inputs.bin", "outputs.bin"] + (["trace.bin"] if trace else [])
        if self.emulated:
            result = run_qemu(self.board, binary, args=args, cwd=workdir, timeout=1800, regions=("invoke",))
            if result.exit_code != 0:
                detail = result.stdout.decode(errors="replace").strip().splitlines() or [f"exit code {result.exit_code}"]
                raise KwsgenError(f"generated code failed on {self.board.name}: {detail[-1]}")
            counted = result.instructions.get("invoke")
        else:
            proc = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=1800, cwd=workdir)
            if proc.returncode != 0:
                detail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
                raise KwsgenError(f"generated code failed on the host: {detail}")
            counted = None
        out = (workdir / "outputs.bin").read_bytes()
        return out, (workdir / "trace.bin").read_bytes() if trace else b"", counted

    def run(self, inputs: bytes, workdir: Path) -> tuple[bytes, int | None]:
        out, _, counted = self._run(self._binary(False), inputs, workdir, False)
        return out, counted

    def run_trace(self, inputs: bytes, workdir: Path) -> bytes:
        return self._run(self._binary(True), inputs, workdir / "trace", True)[1]


def build_firmware_exe(root: Path, board: Board, workdir: Path, *, defines: tuple[str, ...] = (),
                       cmsis: CmsisNN | None = None, rounding: Rounding = Rounding.DOUBLE) -> Path:
    """Cross-compile the library and harness with kwsgen's platform layer for an emulated board."""
    sources = sorted((root / LIB_DIR / "src").glob("*.c")) + sorted((root / "src").glob("*.c"))
    includes = [root / LIB_DIR / "src", root / "src", platform_dir()]
    if cmsis is not None:
        includes.append(cmsis.include)
        defines = defines + cmsis_defines(rounding)
        flags = (*board.cflags(), "-O2", "-std=c99", "-ffunction-sections", "-fdata-sections", *[f"-D{d}" for d in cmsis_defines(rounding)])
        sources.append(firmware_archive(cmsis, arm_gcc(), flags))
    return build_firmware(board, sources, includes, list(defines), workdir)


def render_verify_project(model: Model, root: Path, *, board: str | Board, kernels: str, cmsis_nn: Path | None,
                          source_name: str, source_bytes: bytes, sanitize: bool = False) -> LibraryBuild:
    b = board if isinstance(board, Board) else load_board(board)
    if b.kind == "real":
        raise KwsgenError(f"board {b.name!r} is a real board: verify runs on the host or an emulated board "
                          "(see `kwsgen boards`); compile a project with `kwsgen compile` instead")
    if sanitize and b.kind != "host":
        raise KwsgenError("--sanitize applies to host builds only")
    target = b.emit_target(kernels)
    cmsis = locate(cmsis_nn) if kernels == "cmsis-nn" else None
    compiled = lower(model, target, board=b.name, source_name=source_name, source_bytes=source_bytes)
    if b.kind == "qemu":
        check_fit(b, compiled.library.weights_bytes, compiled.plan.arena_bytes)
    write_tree(root, verify_files(compiled, b))
    return LibraryBuild(root, compiled, b, sanitize, cmsis)
