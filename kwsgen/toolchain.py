"""Compilers and ELF facts: build firmware for a board, build host programs, measure sizes.

Why one module: every caller (verify, benchmarks, the front end, tests) needs the same flags,
the same platform layer (startup, linker script, semihosting) and the same clear errors when a
tool is missing, so none of them assembles a gcc command line by hand.

Firmware builds link kwsgen's own platform layer (`templates/platform/`): the startup code,
the linker script rendered from the board's memories, semihosting I/O, profiling markers and
newlib-nano's system calls. Sizes come from the ELF section headers (a small reader below, no
dependency): flash = .text + .rodata + the .data load image, RAM = .data + .bss (the stack
reserved by the linker script is not a section; it is `board.stack_bytes`).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

import kwsgen

from .errors import KwsgenError, ToolMissingError
from .targets import Board

INSTALL_ARM = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
INSTALL_QEMU = "apt-get install qemu-system-arm"
INSTALL_GCC = "apt-get install gcc libc6-dev"

STRICT_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
SANITIZE_CFLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")
FIRMWARE_NAME = "firmware.elf"
BUILD_TIMEOUT_S = 600

Defines = Mapping[str, str | int | None] | Iterable[str]


class BuildError(KwsgenError):
    """The compiler or linker rejected the program; `log` holds its full output."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


def templates_dir() -> Path:
    """The repository's `templates/` folder, next to the kwsgen package."""
    return Path(kwsgen.__file__).resolve().parent.parent / "templates"


def platform_dir() -> Path:
    """Headers a firmware includes: kws_semihost.h, kws_profile.h, kws_platform.h."""
    return templates_dir() / "platform"


def platform_sources(board: Board) -> list[Path]:
    """kwsgen's platform C files for a board; on the host only the portable ones
    (semihosting over stdio, profiling markers as plain calls)."""
    names = ["kws_semihost.c", "kws_profile.c"]
    if board.kind != "host":
        names += ["kws_startup.c", "kws_newlib.c"]
    return [platform_dir() / n for n in names]


# ------------------------------------------------------------------------------- tools ---

def find_tool(name: str, install: str) -> str:
    """Absolute path of a program on PATH, or a ToolMissingError saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(f"{name} not found on PATH; install it with `{install}`")
    return path


def arm_gcc() -> str:
    return find_tool("arm-none-eabi-gcc", INSTALL_ARM)


def host_gcc() -> str:
    return find_tool("gcc", INSTALL_GCC)


def qemu_system_arm() -> str:
    return find_tool("qemu-system-arm", INSTALL_QEMU)


def _define_flags(defines: Defines) -> list[str]:
    """-D flags from {"NAME": value} (None: defined without a value) or ["NAME=value", ...]."""
    if isinstance(defines, Mapping):
        return [f"-D{k}" if v is None else f"-D{k}={v}" for k, v in defines.items()]
    return [f"-D{d}" for d in defines]


def _run(cmd: Sequence[str], what: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    except FileNotFoundError:  # the tool vanished between lookup and use
        raise ToolMissingError(f"{cmd[0]} could not be started") from None
    except subprocess.TimeoutExpired:
        raise KwsgenError(f"{what}: the compiler did not finish within {BUILD_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise _build_error(what, proc.stdout + proc.stderr)
    return proc


_OVERFLOW_RE = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")
_ERROR_LINE_RE = re.compile(r"(^|\s)(fatal )?error:|undefined reference")
_ASSERT_RE = re.compile(r"ld: kwsgen: ([^\n]*)")


def _build_error(what: str, log: str) -> BuildError:
    """The first meaningful line of a failed build; a memory overflow is named as such."""
    overflows = _OVERFLOW_RE.findall(log)
    if overflows:
        detail = ", ".join(f"region {r} overflowed by {int(n):,} B" for r, n in overflows)
        return BuildError(f"{what}: does not fit: {detail}", log)
    asserted = _ASSERT_RE.search(log)
    if asserted:  # an ASSERT of kwsgen's linker script
        return BuildError(f"{what}: {asserted.group(1)}", log)
    lines = [ln for ln in log.splitlines() if ln.strip()]
    first = next((ln for ln in lines if _ERROR_LINE_RE.search(ln)), lines[0] if lines else "no output")
    more = f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""
    return BuildError(f"{what} failed: {first.strip()}{more}", log)


# ---------------------------------------------------------------------- linker script ---

def render_linker_script(board: Board) -> str:
    """kws_link.ld.j2 filled with the board's memories and section placement."""
    if not board.memories:
        raise KwsgenError(f"board {board.name} has no memory map: no firmware to link")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(platform_dir())), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)
    return env.get_template("kws_link.ld.j2").render(
        board=board, memories=board.memories, place=dict(board.layout), stack_bytes=board.stack_bytes)


def _firmware_flags(board: Board, include_dirs: Sequence[Path], defines: Defines, extra_cflags: Sequence[str],
                    opt: str) -> list[str]:
    return [
        *board.cflags(), *STRICT_CFLAGS, opt, "-g", "-ffunction-sections", "-fdata-sections",
        f'-DKWS_BOARD_NAME="{board.name}"', *_define_flags(defines),
        *(f"-I{d}" for d in [*include_dirs, platform_dir()]), *extra_cflags,
    ]


def _require_arm(board: Board) -> None:
    if board.kind == "host":
        raise KwsgenError("board host: use compile_host for host programs")


def build_firmware(board: Board, sources: Sequence[Path], include_dirs: Sequence[Path], defines: Defines,
                   workdir: Path, extra_cflags: Sequence[str] = (), opt: str = "-O2") -> Path:
    """Cross-compile and link a bare-metal ELF for an emulated board; returns its path.

    The program's main() gets the semihosting command line as argc/argv and its return value
    becomes QEMU's exit status. The linker script (workdir/kws_link.ld) and map file
    (workdir/firmware.map) stay next to the ELF for inspection.
    """
    _require_arm(board)
    if board.kind != "qemu":
        raise KwsgenError(f"board {board.name} is a real board: its firmware is built by PlatformIO, "
                          "not by kwsgen's emulator platform layer")
    gcc = arm_gcc()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ld = workdir / "kws_link.ld"
    ld.write_text(render_linker_script(board))
    elf = workdir / FIRMWARE_NAME
    cmd = [
        gcc, *_firmware_flags(board, include_dirs, defines, extra_cflags, opt),
        *map(str, sources), *map(str, platform_sources(board)),
        "-nostartfiles", "--specs=nano.specs", f"-T{ld}", "-Wl,--gc-sections", "-Wl,--no-warn-rwx-segments",
        "-Xlinker", f"-Map={workdir / 'firmware.map'}", "-Wl,--start-group", "-lc", "-lm", "-lgcc", "-Wl,--end-group",
        "-o", str(elf),
    ]
    _run(cmd, f"firmware build for {board.name}")
    return elf


def compile_objects(board: Board, sources: Sequence[Path], include_dirs: Sequence[Path], defines: Defines,
                    workdir: Path, extra_cflags: Sequence[str] = (), opt: str = "-O2") -> list[Path]:
    """Compile (no link) with a board's flags and -Werror: the check for real boards, whose
    firmware PlatformIO links with the vendor's startup code."""
    _require_arm(board)
    gcc = arm_gcc()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    objects = []
    for i, src in enumerate(sources):
        obj = workdir / f"{i:03d}_{Path(src).stem}.o"
        _run([gcc, *_firmware_flags(board, include_dirs, defines, extra_cflags, opt), "-c", str(src), "-o", str(obj)],
             f"compile of {Path(src).name} for {board.name}")
        objects.append(obj)
    return objects


def compile_host(sources: Sequence[Path], include_dirs: Sequence[Path], defines: Defines, out: Path,
                 extra_cflags: Sequence[str] = (), sanitize: bool = False) -> Path:
    """Build a host executable with gcc and kwsgen's strict flags (optionally ASan + UBSan)."""
    gcc = host_gcc()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = [*STRICT_CFLAGS, "-g", *(("-O1", *SANITIZE_CFLAGS) if sanitize else ("-O2",))]
    cmd = [gcc, *flags, *_define_flags(defines), *(f"-I{d}" for d in include_dirs), *extra_cflags,
           *map(str, sources), "-o", str(out), "-lm"]
    _run(cmd, f"host build of {out.name}")
    return out


# ------------------------------------------------------------------------- ELF reader ---

SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHT_SYMTAB, SHT_NOBITS = 2, 8
STT_FUNC = 2


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int
    size: int
    type: int  # STT_*
    shndx: int


@dataclass(frozen=True)
class Sizes:
    """Bytes per kind of allocated section. flash = text + rodata + data (the .data initial
    values are stored in flash and copied at reset); ram = data + bss (stack excluded)."""

    text: int
    rodata: int
    data: int
    bss: int
    flash: int
    ram: int


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise KwsgenError(f"{path}: cannot read ({e.strerror})") from None


def _elf_layout(blob: bytes, where: Path) -> tuple[str, bool]:
    """The struct byte-order prefix and whether the file is 64-bit; rejects non-ELF input."""
    if len(blob) < 52 or blob[:4] != b"\x7fELF" or blob[4] not in (1, 2) or blob[5] not in (1, 2):
        raise KwsgenError(f"{where}: not an ELF file")
    return ("<" if blob[5] == 1 else ">"), blob[4] == 2


def read_sections(path: Path) -> list[Section]:
    """Section headers of an ELF32 or ELF64 file, names resolved."""
    blob = _read_bytes(path)
    bo, is64 = _elf_layout(blob, path)
    try:
        if is64:
            shoff, = struct.unpack_from(bo + "Q", blob, 0x28)
            shentsize, shnum, shstrndx = struct.unpack_from(bo + "HHH", blob, 0x3A)
            fmt = bo + "IIQQQQIIQQ"
        else:
            shoff, = struct.unpack_from(bo + "I", blob, 0x20)
            shentsize, shnum, shstrndx = struct.unpack_from(bo + "HHH", blob, 0x2E)
            fmt = bo + "IIIIIIIIII"
        raw = [struct.unpack_from(fmt, blob, shoff + i * shentsize) for i in range(shnum)]
        strtab_off, strtab_size = raw[shstrndx][4], raw[shstrndx][5]
        strtab = blob[strtab_off:strtab_off + strtab_size]
    except (struct.error, IndexError):
        raise KwsgenError(f"{path}: truncated or corrupt ELF section table") from None

    def name(off: int) -> str:
        return strtab[off:strtab.find(b"\0", off)].decode("ascii", "replace")

    return [Section(name(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in raw]


def read_symbols(path: Path) -> list[Symbol]:
    """Entries of the ELF's .symtab (empty for a stripped file)."""
    blob = _read_bytes(path)
    bo, is64 = _elf_layout(blob, path)
    sections = read_sections(path)
    symtab = next((s for s in sections if s.type == SHT_SYMTAB), None)
    if symtab is None:
        return []
    strsec = sections[symtab.link]
    strtab = blob[strsec.offset:strsec.offset + strsec.size]
    size = 24 if is64 else 16
    out = []
    try:
        for off in range(symtab.offset, symtab.offset + symtab.size, size):
            if is64:
                nm, info, _other, shndx, value, sz = struct.unpack_from(bo + "IBBHQQ", blob, off)
            else:
                nm, value, sz, info, _other, shndx = struct.unpack_from(bo + "IIIBBH", blob, off)
            out.append(Symbol(strtab[nm:strtab.find(b"\0", nm)].decode("ascii", "replace"), value, sz, info & 0xF, shndx))
    except struct.error:
        raise KwsgenError(f"{path}: truncated ELF symbol table") from None
    return out


def elf_symbols(path: Path) -> dict[str, int]:
    """Global and local symbol addresses by name (functions keep the Thumb bit, as in the ELF)."""
    return {s.name: s.value for s in read_symbols(path) if s.name}


def elf_sizes(path: Path) -> Sizes:
    """Bytes of code, constants, initialised and zeroed data, classified by section flags:
    executable -> text; read-only -> rodata; writable with contents -> data; no contents -> bss."""
    text = rodata = data = bss = 0
    for s in read_sections(path):
        if not s.flags & SHF_ALLOC or s.size == 0:
            continue
        if s.type == SHT_NOBITS:
            bss += s.size
        elif s.flags & SHF_EXECINSTR:
            text += s.size
        elif s.flags & SHF_WRITE:
            data += s.size
        else:
            rodata += s.size
    return Sizes(text, rodata, data, bss, flash=text + rodata + data, ram=data + bss)
