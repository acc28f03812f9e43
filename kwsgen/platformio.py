"""PlatformIO projects for Arm boards, and running PlatformIO with no registry access.

`kwsgen compile MODEL --board B -o DIR` for any board but the host writes:

    platformio.ini            one environment, named after the board
    kwsgen-report.json        plan, sizes and per-layer figures
    src/                      the application (an `App`: the self-test by default) plus the board
                              layer it is written against: kws_board.h, kws_cycles.h and one
                              implementation per framework (kws_board_<framework>.c/.cpp)
    lib/kws_model/            the generated model library
    lib/cmsis_nn/             CMSIS-NN's integer sources (--kernels cmsis-nn), so the build is offline
    emulated boards only:
    lib/kws_platform/         kwsgen's startup code, semihosting, newlib hooks, profiling markers
                              and the linker script rendered for the board
    platform/kwsgen-qemu/     kwsgen's PlatformIO development platform (a copy of
                              targets/platformio/kwsgen-qemu), referenced as
                              `platform = symlink://${PROJECT_DIR}/platform/kwsgen-qemu`

Why the platform is copied into the project: the project then builds and runs (`pio run -t exec`)
wherever it is moved, with the platform of the kwsgen that generated it, and platformio.ini names
no path of the generating machine. Real boards use PlatformIO's official platforms (ststm32,
nordicnrf52, raspberrypi) and the framework their board file names (stm32cube or arduino), which
PlatformIO downloads on first build.

Offline PlatformIO (see `prepare_offline_core`): a fresh PLATFORMIO_CORE_DIR seeded with the core
package tool-scons (PyPI's scons behind PlatformIO's package metadata), telemetry and update
checks off, and a timeout around every `pio` call.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .backends import cmsis_nn as cmsis_backend
from .backends.cmsis_nn import CmsisNN
from .codegen import TEMPLATES, make_env
from .errors import KwsgenError, ToolMissingError
from .interpreter import run
from .targets import Board, targets_dir
from .toolchain import arm_gcc, compile_objects, platform_dir, render_linker_script

PLATFORM_NAME = "kwsgen-qemu"
PLATFORM_DIR = Path("platform") / PLATFORM_NAME
PLATFORM_LIB = Path("lib") / "kws_platform"
LINKER_SCRIPT = PLATFORM_LIB / "kws_link.ld"
SELFTEST_SEED = 20261122
PIO_TIMEOUT_S = 600

# kwsgen's platform layer, copied into lib/kws_platform of emulated-board projects.
_PLATFORM_SOURCES = ("kws_platform.h", "kws_profile.c", "kws_profile.h", "kws_semihost.c", "kws_semihost.h",
                     "kws_startup.c", "kws_newlib.c")
# The board layer every project's src/ gets, whatever the framework.
_BOARD_COMMON = ("kws_board.h", "kws_cycles.h")
FRAMEWORKS = ("arduino", "stm32cube")


@dataclass(frozen=True)
class App:
    """An application for src/: what it is, and its files (src/-relative name -> text).

    The renderer adds the board layer (kws_board.h and the framework's implementation, which owns
    the entry point and calls the app's `int kws_app_run(void)`), so another application (the
    keyword spotter) plugs in by providing a different `App`.
    """

    name: str
    description: str
    files: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Stm32Console:
    """The UART wired to the ST-LINK virtual COM port of an STM32 board, for the STM32Cube board layer."""

    uart: str
    port: str
    tx_pin: str
    rx_pin: str
    alternate: str
    note: str = "the ST-LINK virtual COM port"

    @property
    def gpio_clock_enable(self) -> str:
        return f"__HAL_RCC_{self.port}_CLK_ENABLE"

    @property
    def uart_clock_enable(self) -> str:
        return f"__HAL_RCC_{self.uart}_CLK_ENABLE"


# By PlatformIO board id (user manuals UM1974 for the Nucleo-144 boards, UM2153 for the B-L475E-IOT01A).
STM32CUBE_CONSOLES = {
    "nucleo_f746zg": Stm32Console("USART3", "GPIOD", "GPIO_PIN_8", "GPIO_PIN_9", "GPIO_AF7_USART3"),
    "nucleo_h743zi": Stm32Console("USART3", "GPIOD", "GPIO_PIN_8", "GPIO_PIN_9", "GPIO_AF7_USART3"),
    "disco_l475vg_iot01a": Stm32Console("USART1", "GPIOB", "GPIO_PIN_6", "GPIO_PIN_7", "GPIO_AF7_USART1"),
}


def platform_source_dir() -> Path:
    """kwsgen's local PlatformIO platform for the emulated boards (in the repository's targets/)."""
    return targets_dir() / "platformio" / PLATFORM_NAME


# ------------------------------------------------------------------------------ the app ---

def c_string(text: str) -> str:
    """A C string literal of `text` (printable ASCII kept, everything else escaped)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~" and ch != "?":  # '?' escaped: no trigraphs
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def _env():
    env = make_env()
    env.filters["cstring"] = c_string
    return env


def selftest_vectors(compiled, seed: int = SELFTEST_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic int8 input for every core input (concatenated) and the reference output for it."""
    model = compiled.model
    g = model.graph
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(-128, 128, size=(1,) + g.tensors[i].shape, dtype=np.int8) for i in model.core_inputs]
    outputs = run(model, inputs, core_only=True).outputs
    flat_in = np.concatenate([x.reshape(-1) for x in inputs]).astype(np.int8)
    flat_out = np.concatenate([np.asarray(y).reshape(-1) for y in outputs]).astype(np.int8)
    return flat_in, flat_out


def selftest_app(compiled, board: Board, source_name: str, seed: int = SELFTEST_SEED) -> App:
    """The default application: one inference on a compiled-in input, checked bit for bit."""
    x, y = selftest_vectors(compiled, seed)
    env = _env()
    ctx = {
        "version": __version__,
        "model_name": source_name,
        "board_name": board.name,
        "kernels": compiled.target.kernels,
        "input_origin": f"uniform random int8, numpy default_rng({seed})",
        "weights_bytes": compiled.library.weights_bytes,
        "input": x,
        "expected": y,
    }
    files = {
        "kws_selftest.c": env.get_template("app/kws_selftest.c.j2").render(ctx),
        "kws_selftest_data.h": env.get_template("app/kws_selftest_data.h.j2").render(ctx),
        "kws_selftest_data.c": env.get_template("app/kws_selftest_data.c.j2").render(ctx),
    }
    return App("selftest", "runs the model once on a compiled-in input and checks the output bit for bit",
               tuple(sorted(files.items())))


# ----------------------------------------------------------------------- board layer ---

def framework_of(board: Board) -> str:
    """`kwsgen-qemu` for emulated boards, else the framework of the board's [platformio] table."""
    if board.kind == "qemu":
        return PLATFORM_NAME
    if board.kind != "real":
        raise KwsgenError(f"board {board.name}: PlatformIO projects are for Arm boards (the host gets a Makefile)")
    if board.platformio is None:
        raise KwsgenError(f"board {board.name} has no [platformio] table (platform, board, framework): "
                          "kwsgen cannot write its platformio.ini")
    fw = board.platformio.framework
    if fw not in FRAMEWORKS:
        raise KwsgenError(f"board {board.name}: framework {fw!r} is not supported by kwsgen's board layer "
                          f"(supported: {', '.join(FRAMEWORKS)})")
    return fw


def stm32_hal_header(board: Board) -> str:
    """stm32<family>xx_hal.h from the CMSIS device name (STM32F746xx -> stm32f7xx_hal.h)."""
    m = re.match(r"^STM32([A-Z][A-Z0-9])", board.cmsis_device or "", re.IGNORECASE)
    if m is None:
        raise KwsgenError(f"board {board.name}: framework stm32cube needs cmsis_device = \"STM32...\" "
                          "to pick the HAL header")
    return f"stm32{m.group(1).lower()}xx_hal.h"


def stm32_console(board: Board) -> Stm32Console:
    pio_board = board.platformio.board if board.platformio else ""
    console = STM32CUBE_CONSOLES.get(pio_board)
    if console is None:
        raise KwsgenError(f"board {board.name}: kwsgen knows the console UART of {', '.join(sorted(STM32CUBE_CONSOLES))} "
                          f"under stm32cube, not of PlatformIO board {pio_board!r}; use framework = \"arduino\"")
    return console


def board_layer_files(board: Board) -> dict[str, str]:
    """src/ files of the board layer: the API, the cycle counter and the framework's implementation.

    Real boards also get the bare-metal implementation (compiled only when no framework macro is
    defined): it is the fallback for other SDKs and what kwsgen's cross-compile check builds."""
    files = {name: (TEMPLATES / "app" / name).read_text() for name in _BOARD_COMMON}
    fw = framework_of(board)
    if fw == PLATFORM_NAME:
        files["kws_board_kwsgen.c"] = (TEMPLATES / "app" / "kws_board_kwsgen.c").read_text()
        return files
    files["kws_board_baremetal.c"] = (TEMPLATES / "app" / "kws_board_baremetal.c").read_text()
    if fw == "arduino":
        files["kws_board_arduino.cpp"] = (TEMPLATES / "app" / "kws_board_arduino.cpp").read_text()
    else:
        files["kws_board_stm32cube.c"] = _env().get_template("app/kws_board_stm32cube.c.j2").render(
            version=__version__, board=board, hal_header=stm32_hal_header(board), console=stm32_console(board))
    return files


# ------------------------------------------------------------------ platform and ini ---

def board_manifest(board: Board) -> dict:
    """The PlatformIO board manifest (boards/<name>.json) of an emulated board, from its targets/*.toml."""
    if board.kind != "qemu":
        raise KwsgenError(f"board {board.name} is not an emulated board")
    return {
        "build": {
            "cpu": board.cpu,
            "float_abi": board.float_abi,
            "fpu": board.fpu,
            "isa": board.isa,
            "mcu": board.cpu,
            "qemu_machine": board.qemu_machine,
        },
        "frameworks": [],
        "name": board.description,
        "upload": {
            "maximum_ram_size": board.ram_capacity,
            "maximum_size": board.flash_capacity,
            "protocol": "qemu",
            "protocols": ["qemu"],
        },
        "url": "https://www.qemu.org/docs/master/system/arm/mps2.html",
        "vendor": "Arm (emulated by QEMU)",
    }


def board_manifest_json(board: Board) -> str:
    """boards/<name>.json as committed in targets/platformio/kwsgen-qemu (and regenerated from it)."""
    return json.dumps(board_manifest(board), indent=2, sort_keys=True) + "\n"


def platform_files() -> dict[str, bytes]:
    """The local platform, copied byte for byte into platform/kwsgen-qemu of the project."""
    root = platform_source_dir()
    if not (root / "platform.json").is_file():
        raise KwsgenError(f"kwsgen's PlatformIO platform is missing ({root}): reinstall kwsgen")
    return {
        str(PLATFORM_DIR / p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def kws_platform_files(board: Board) -> dict[str, str]:
    """kwsgen's startup/semihosting layer as the PlatformIO library lib/kws_platform.

    libArchive false: its objects are linked directly, so the vector table and reset handler are
    kept although nothing references them."""
    files = {str(PLATFORM_LIB / "src" / n): (platform_dir() / n).read_text() for n in _PLATFORM_SOURCES}
    files[str(LINKER_SCRIPT)] = render_linker_script(board)
    manifest = {
        "name": "kws_platform",
        "version": __version__,
        "description": f"kwsgen's startup code, semihosting and newlib system calls for {board.name} under QEMU",
        "build": {"srcDir": "src", "includeDir": "src", "libArchive": False, "flags": ["-std=c99"]},
    }
    files[str(PLATFORM_LIB / "library.json")] = json.dumps(manifest, indent=2) + "\n"
    return files


def platformio_ini(board: Board, compiled, app: App, source_name: str) -> str:
    fw = framework_of(board)
    ctx = {
        "version": __version__,
        "board": board,
        "framework": fw,
        "emulated": fw == PLATFORM_NAME,
        "platform_dir": PLATFORM_DIR.as_posix(),
        "ldscript": LINKER_SCRIPT.as_posix(),
        "kernels": compiled.target.kernels,
        "isa": compiled.target.isa,
        "source_name": source_name,
        "app": app,
    }
    return _env().get_template("app/platformio.ini.j2").render(ctx)


GITIGNORE = ".pio/\n.vscode/\n"


def project_files(compiled, board: Board, *, source_name: str, cmsis: CmsisNN | None = None,
                  app: App | None = None) -> dict[str, str | bytes]:
    """Every file of a board's PlatformIO project except the model library and the report
    (kwsgen.project adds those, as for the host)."""
    if compiled.target.kernels == "cmsis-nn" and cmsis is None:
        raise ValueError("cmsis-nn kernels need the CMSIS-NN tree (kwsgen.backends.cmsis_nn.locate)")
    app = app or selftest_app(compiled, board, source_name)
    files: dict[str, str | bytes] = {"platformio.ini": platformio_ini(board, compiled, app, source_name),
                                     ".gitignore": GITIGNORE}
    layer = board_layer_files(board)
    clash = set(layer) & {n for n, _ in app.files}
    if clash:
        raise KwsgenError(f"app {app.name!r} overrides board-layer file(s) {', '.join(sorted(clash))}")
    for name, text in [*layer.items(), *app.files]:
        files[f"src/{name}"] = text
    if board.kind == "qemu":
        files.update(kws_platform_files(board))
        files.update(platform_files())
        # a user's own emulated board file (kwsgen compile --board my.toml) gets its manifest too
        files[str(PLATFORM_DIR / "boards" / f"{board.name}.json")] = board_manifest_json(board)
    if cmsis is not None:
        files.update(cmsis_backend.project_files(cmsis))
    return files


# ------------------------------------------------------------ cross-compile checking ---

STRICT_CHECK_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")


def project_c_sources(root: Path) -> tuple[list[Path], list[Path]]:
    """(C sources, include dirs) of a rendered project, as PlatformIO would build them, without
    framework code: the model library, the app with the bare-metal board layer, kwsgen's platform
    library on emulated boards. CMSIS-NN is handled separately (see `cross_compile_check`)."""
    root = Path(root)
    dirs = [root / "lib" / "kws_model" / "src", root / "src", root / PLATFORM_LIB / "src"]
    dirs = [d for d in dirs if d.is_dir()]
    sources = [p for d in dirs for p in sorted(d.glob("*.c"))]
    includes = list(dirs)
    if (root / "lib" / "cmsis_nn" / "Include").is_dir():
        includes.append(root / "lib" / "cmsis_nn" / "Include")
    return sources, includes


def cross_compile_check(root: Path, board: Board, workdir: Path, *, jobs: int = 2,
                        cmsis_sources: bool = True) -> list[Path]:
    """Compile (no link) every C source of a project with the board's flags and -std=c99 -Wall
    -Wextra -Werror; returns the objects. Framework-specific files are excluded by their own
    macros (ARDUINO, USE_HAL_DRIVER), so the bare-metal board layer stands in for them.
    lib/cmsis_nn, when present and `cmsis_sources`, is compiled with the same strict flags into a
    cached archive (keyed by its sources, compiler and flags)."""
    root = Path(root)
    sources, includes = project_c_sources(root)
    defines = {"KWSGEN_QEMU": None} if board.kind == "qemu" else {}
    chunks = [sources[i::jobs] for i in range(max(1, jobs))]

    def compile_chunk(k: int) -> list[Path]:
        return compile_objects(board, chunks[k], includes, defines, Path(workdir) / f"part{k}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        objects = [o for part in pool.map(compile_chunk, range(len(chunks))) for o in part]
    cmsis_root = root / "lib" / "cmsis_nn"
    if cmsis_sources and (cmsis_root / "Source").is_dir():
        flags = (*board.cflags(), *STRICT_CHECK_FLAGS, "-O2", "-ffunction-sections", "-fdata-sections")
        objects.append(cmsis_backend.firmware_archive(CmsisNN(cmsis_root), arm_gcc(), flags))
    return objects


def link_check(board: Board, objects: Sequence[Path], out: Path) -> Path:
    """Link a real board's checked objects with newlib-nano and its no-OS stubs (default linker
    script): proves the bare-metal program is complete, with no undefined symbol."""
    if board.kind != "real":
        raise KwsgenError(f"board {board.name}: the link check is for real boards (emulated ones link with pio)")
    cmd = [arm_gcc(), *board.cflags(), *map(str, objects), "--specs=nano.specs", "--specs=nosys.specs",
           "-Wl,--gc-sections", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIO_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln or "undefined" in ln), lines[0] if lines else "?")
        raise KwsgenError(f"link check for {board.name} failed: {first.strip()}")
    return Path(out)


# ------------------------------------------------------------------ offline PlatformIO ---

def tool_scons_version() -> str:
    """A tool-scons version inside PlatformIO Core's own pin (platformio.dependencies)."""
    try:
        import semantic_version
        from platformio.dependencies import get_core_dependencies
    except ImportError:
        raise ToolMissingError("PlatformIO Core is not installed: pip install platformio") from None
    requirement = get_core_dependencies()["tool-scons"]
    candidate = requirement.lstrip("~^=>< ")
    if not semantic_version.SimpleSpec(requirement).match(semantic_version.Version(candidate)):
        raise KwsgenError(f"cannot pick a tool-scons version for PlatformIO's requirement {requirement!r}")
    return candidate


_SCONS_ENTRY = '''"""tool-scons seeded by kwsgen: runs PyPI's scons, so PlatformIO needs no registry."""
from SCons.Script.Main import main

main()
'''


def prepare_offline_core(core_dir: Path) -> Path:
    """Seed a PlatformIO core dir so `pio run` needs no registry for its core package tool-scons.

    PlatformIO installs tool-scons from its registry unless <core>/packages/tool-scons has a
    .piopm whose version satisfies its pin; the entry point scons.py runs the `scons` package
    installed next to PlatformIO (pip install scons). Idempotent."""
    try:
        import SCons  # noqa: F401
    except ImportError:
        raise ToolMissingError("the scons package is needed for offline PlatformIO builds: pip install scons") from None
    core_dir = Path(core_dir).resolve()  # PlatformIO resolves a relative core dir against the project
    pkg = core_dir / "packages" / "tool-scons"
    pkg.mkdir(parents=True, exist_ok=True)
    version = tool_scons_version()
    (pkg / "scons.py").write_text(_SCONS_ENTRY)
    (pkg / "package.json").write_text(json.dumps({"name": "tool-scons", "version": version}) + "\n")
    meta = {"type": "tool", "name": "tool-scons", "version": version,
            "spec": {"owner": "platformio", "id": None, "name": "tool-scons", "requirements": None, "uri": None}}
    (pkg / ".piopm").write_text(json.dumps(meta) + "\n")
    return core_dir


def pio_environment(core_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for `pio`: its own core dir, no telemetry, no upgrade checks."""
    env = dict(os.environ if base is None else base)
    env.update({
        "PLATFORMIO_CORE_DIR": str(core_dir),
        "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No",
        "PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL": "3650",
        "PLATFORMIO_DISABLE_UPGRADE_CHECK": "true",
        "PLATFORMIO_NO_ANSI": "true",
    })
    return env


def pio_command() -> list[str]:
    """PlatformIO as a module of this Python (kwsgen depends on it), else `pio` from PATH."""
    try:
        import platformio  # noqa: F401
    except ImportError:
        exe = shutil.which("pio")
        if exe is None:
            raise ToolMissingError("PlatformIO is not installed: pip install platformio") from None
        return [exe]
    return [sys.executable, "-m", "platformio"]


def run_pio(project: Path, args: Sequence[str], core_dir: Path, *, timeout: float = PIO_TIMEOUT_S
            ) -> subprocess.CompletedProcess:
    """`pio run -d PROJECT ARGS...` in the given core dir, bounded by `timeout` seconds."""
    cmd = [*pio_command(), "run", "-d", str(project), *args]
    try:
        return subprocess.run(cmd, env=pio_environment(core_dir), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise KwsgenError(f"`pio run {' '.join(args)}` did not finish within {timeout:g} s (a registry lookup "
                          "with no network takes about 60 s per retry: is something missing from the core dir?)") from None
