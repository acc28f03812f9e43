"""Run firmware under qemu-system-arm and count its instructions.

Why a module of its own: `kwsgen verify`, the benchmarks and the front-end checks all need the
same things from an emulated board: the exact QEMU command line, semihosting file I/O relative
to a working directory, main()'s return value as the exit status, a timeout that turns a hang
into a clear error, a fault report instead of a lockup, and repeatable instruction counts from
kwsgen's own QEMU plugin (`templates/qemu/insn_count.c`), built once per source into a cache.

Instruction counts: "total" is every guest instruction from reset to exit; each region named
with KWS_REGION_BEGIN/END (kws_profile.h) counts from the first instruction of its begin marker
to the first instruction of its end marker, summed over entries. That includes at least
MARKER_OVERHEAD instructions per entry (the begin marker's return and the call of the end
marker) plus whatever the compiler schedules between the two calls: an empty region counts
2 at -Os, 2-5 at -O2, 6 at -O0 (measured on every emulated board).

Plugin cost: the total is counted with one inline add per guest instruction (exact, no helper
call): measured 1.5-1.7x QEMU's plain run time (574 M Cortex-M4 instructions: 0.31 s plain,
0.50 s counted). count=False runs without the plugin.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import KwsgenError, ToolMissingError
from .targets import Board
from .toolchain import STT_FUNC, host_gcc, qemu_system_arm, read_symbols, templates_dir

MARKER_BEGIN = "kws_region_begin_"
MARKER_END = "kws_region_end_"
MARKER_OVERHEAD = 2
TOTAL = "total"
FAULT_TAG = "kws-fault:"
EXIT_FAULT = 250
MAX_REGIONS = 64  # KWS_MAX_REGIONS in insn_count.c
CMDLINE_MAX, ARGV_MAX = 1024, 32  # KWS_CMDLINE_MAX, KWS_ARGV_MAX in kws_platform.h
PLUGIN_CFLAGS = ("-shared", "-fPIC", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden")
_REGION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class QemuRun:
    """One finished run: exit status (main's return value), console bytes, QEMU's own
    messages, and instruction counts ("total" plus one per region) with region entry counts."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    instructions: dict[str, int] = field(default_factory=dict)
    region_entries: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class FirmwareFault(KwsgenError):
    """The firmware took a fault (or overflowed its stack); the message decodes the report."""

    exit_code = 1

    def __init__(self, message: str, report: dict[str, str]):
        super().__init__(message)
        self.report = report


# ------------------------------------------------------------------------------ plugin ---

def cache_dir() -> Path:
    """$KWSGEN_CACHE, else ~/.cache/kwsgen: where built helpers (the QEMU plugin) are kept."""
    value = os.environ.get("KWSGEN_CACHE")
    return Path(value) if value else Path.home() / ".cache" / "kwsgen"


def plugin_sources() -> list[Path]:
    qemu = templates_dir() / "qemu"
    return [qemu / "insn_count.c", qemu / "kws_qemu_plugin.h"]


def plugin_path() -> Path:
    """The instruction-count plugin, built on first use into the cache under a name keyed by
    the hash of its sources and flags (so an edited plugin is rebuilt, never reused stale).
    Concurrent builders are safe: each builds to a private file, then renames it."""
    digest = hashlib.sha256()
    for src in plugin_sources():
        digest.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    digest.update(" ".join(PLUGIN_CFLAGS).encode())
    out = cache_dir() / f"kws_insn_count-{digest.hexdigest()[:16]}.so"
    if out.is_file():
        return out
    gcc = host_gcc()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=out.parent)
        os.close(fd)
    except OSError as e:
        raise KwsgenError(f"cannot write the plugin cache {out.parent} ({e.strerror}); set KWSGEN_CACHE") from None
    try:
        proc = subprocess.run([gcc, *PLUGIN_CFLAGS, "-o", tmp, str(plugin_sources()[0])], capture_output=True,
                              text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise KwsgenError(f"building the QEMU instruction-count plugin failed: {proc.stderr.strip()[:500]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


# ----------------------------------------------------------------------------- markers ---

def region_markers(elf: Path) -> dict[str, tuple[int, int]]:
    """{region: (begin address, end address)} for every marker pair in the ELF (Thumb bit cleared)."""
    funcs = {s.name: s.value & ~1 for s in read_symbols(elf) if s.type == STT_FUNC}
    out = {}
    for name, addr in funcs.items():
        if name.startswith(MARKER_BEGIN):
            region = name[len(MARKER_BEGIN):]
            end = funcs.get(MARKER_END + region)
            if end is not None:
                out[region] = (addr, end)
    return dict(sorted(out.items()))


def _select_regions(elf: Path, wanted: Sequence[str]) -> dict[str, tuple[int, int]]:
    found = region_markers(elf)
    if not wanted:
        return found
    bad = [r for r in wanted if not _REGION_NAME.match(r) or r == TOTAL]
    if bad:
        raise KwsgenError(f"invalid region name(s) {', '.join(map(repr, bad))}: C identifiers other than {TOTAL!r}")
    missing = [r for r in wanted if r not in found]
    if missing:
        raise KwsgenError(f"{elf.name}: no KWS_REGION_DEFINE marker for region(s) {', '.join(missing)}"
                          f" (defined: {', '.join(found) or 'none'})")
    return {r: found[r] for r in wanted}


# -------------------------------------------------------------------------------- QEMU ---

def _qemu_opt(value: str) -> str:
    """QEMU's option syntax escapes a comma by doubling it."""
    return value.replace(",", ",,")


def qemu_command(board: Board, elf: Path, args: Sequence[str] = (), plugin: str | None = None,
                 log: Path | None = None) -> list[str]:
    """The qemu-system-arm command line: no display, no monitor, the semihosting console on
    stdout, the program's name and args as its semihosting command line."""
    words = [Path(elf).name, *args]
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise KwsgenError(f"firmware argument {w!r}: semihosting passes a space-separated command line, "
                              "so arguments must be non-empty and contain no whitespace")
    if len(" ".join(words)) >= CMDLINE_MAX or len(words) >= ARGV_MAX:
        raise KwsgenError(f"firmware command line too long: at most {ARGV_MAX - 1} words and {CMDLINE_MAX - 1} "
                          "characters, program name included")
    semihosting = "enable=on,target=native,chardev=c0" + "".join(f",arg={_qemu_opt(w)}" for w in words)
    cmd = [qemu_system_arm(), "-M", str(board.qemu_machine), "-nographic", "-monitor", "none", "-serial", "none",
           "-chardev", "stdio,id=c0", "-semihosting-config", semihosting, "-kernel", str(elf)]
    if plugin is not None:
        cmd += ["-plugin", plugin]
    if log is not None:
        cmd += ["-d", "plugin", "-D", str(log)]
    return cmd


def parse_counts(log: str) -> tuple[dict[str, int], dict[str, int]]:
    """The plugin's report -> (instructions by region with "total", entries by region)."""
    instructions: dict[str, int] = {}
    entries: dict[str, int] = {}
    for line in log.splitlines():
        parts = line.split()
        if parts[:2] == ["kws-insn", "total"] and len(parts) == 3:
            instructions[TOTAL] = int(parts[2])
        elif parts[:2] == ["kws-insn", "region"] and len(parts) == 6:
            instructions[parts[2]] = int(parts[3])
            entries[parts[2]] = int(parts[4])
    return instructions, entries


_CFSR_BITS = {
    0: "IACCVIOL", 1: "DACCVIOL", 3: "MUNSTKERR", 4: "MSTKERR", 5: "MLSPERR",
    8: "IBUSERR", 9: "PRECISERR", 10: "IMPRECISERR", 11: "UNSTKERR", 12: "STKERR", 13: "LSPERR",
    16: "UNDEFINSTR", 17: "INVSTATE", 18: "INVPC", 19: "NOCP", 20: "STKOF", 24: "UNALIGNED", 25: "DIVBYZERO",
}
_HFSR_BITS = {1: "VECTTBL", 30: "FORCED"}


def _bits(value: int, names: dict[int, str]) -> list[str]:
    return [n for b, n in names.items() if value >> b & 1]


def _function_at(elf: Path, pc: int) -> str:
    for s in read_symbols(elf):
        start = s.value & ~1
        if s.type == STT_FUNC and start <= pc < start + max(s.size, 1):
            return f"{s.name}+{pc - start:#x}"
    return "unknown code"


def _below_stack(elf: Path, sp: str) -> bool:
    """v7-M has no stack limit register: a faulting SP under the reserved stack tells an overflow."""
    limit = next((s.value for s in read_symbols(elf) if s.name == "__stack_limit"), None)
    try:
        return limit is not None and int(sp, 16) < limit
    except ValueError:
        return False


def describe_fault(line: str, board: Board, elf: Path) -> FirmwareFault:
    """A startup fault line -> an error naming the fault, its causes and the faulting function."""
    body = line.split(FAULT_TAG, 1)[1].strip()
    fields = dict(kv.split("=", 1) for kv in body.split() if "=" in kv)
    if "pc" not in fields:  # e.g. the stack-overflow report
        return FirmwareFault(f"firmware fault on {board.name}: {body}", fields)
    kind = body.split()[0]
    try:
        pc = int(fields["pc"], 16)
        causes = _bits(int(fields.get("cfsr", "0"), 16), _CFSR_BITS) + _bits(int(fields.get("hfsr", "0"), 16), _HFSR_BITS)
    except ValueError:
        return FirmwareFault(f"firmware fault on {board.name}: {body}", fields)
    where = _function_at(elf, pc)
    cause = f" ({', '.join(causes)})" if causes else ""
    extra = ""
    if "DACCVIOL" in causes or "PRECISERR" in causes:
        extra = f", data address {fields.get('mmfar' if 'DACCVIOL' in causes else 'bfar')}"
    if "STKOF" in causes or _below_stack(elf, fields.get("sp", "")):
        extra += f"; stack overflow: more than the board's {board.stack_bytes:,} B of stack used (sp {fields.get('sp')})"
    return FirmwareFault(f"firmware fault on {board.name}: {kind}{cause} at pc {fields['pc']} in {where}{extra}",
                         fields)


def _check_outcome(board: Board, elf: Path, proc: subprocess.CompletedProcess) -> None:
    """Turn a fault report, a lockup or a QEMU start failure into one clear error."""
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    for line in out.splitlines():
        if line.startswith(FAULT_TAG):
            raise describe_fault(line, board, elf)
    if "Lockup" in err:
        raise FirmwareFault(f"firmware on {board.name} locked up (a fault while handling a fault, or a bad vector "
                            f"table): {err.strip().splitlines()[0]}", {})
    qemu_lines = [ln for ln in err.splitlines() if ln.startswith("qemu-system-arm:")]
    if proc.returncode != 0 and qemu_lines:
        raise KwsgenError(f"QEMU could not run {elf.name} on {board.name}: {qemu_lines[0]}")


def run_qemu(board: Board, elf: Path, *, args: Sequence[str] = (), cwd: Path | None = None, timeout: float = 120,
             regions: Sequence[str] = (), count: bool = True) -> QemuRun:
    """Run an ELF built by toolchain.build_firmware on an emulated board.

    Semihosting file paths are relative to `cwd` (default: the current directory). `regions`
    names the regions to count; empty means every region whose markers are in the ELF.
    count=False skips the plugin (faster; no instruction counts).
    """
    if board.kind != "qemu":
        raise KwsgenError(f"board {board.name} is not emulated (kind {board.kind!r}); emulated boards: "
                          "see `kwsgen boards`")
    elf = Path(elf).resolve()
    if not elf.is_file():
        raise KwsgenError(f"{elf}: no such firmware file")
    qemu_system_arm()  # a missing QEMU is reported before anything is built
    with tempfile.TemporaryDirectory(prefix="kwsgen-qemu-") as tmp:
        log = Path(tmp) / "plugin.log" if count else None
        plugin = None
        if count:
            selected = _select_regions(elf, regions)
            if len(selected) > MAX_REGIONS:
                raise KwsgenError(f"{elf.name} defines {len(selected)} profiling regions; the counter takes at most "
                                  f"{MAX_REGIONS}: pass `regions=` to choose")
            spec = ",".join(f"region={r}:{b:x}:{e:x}" for r, (b, e) in selected.items())
            plugin = f"file={_qemu_opt(str(plugin_path()))}" + (f",{spec}" if spec else "")
        cmd = qemu_command(board, elf, args, plugin, log)
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise KwsgenError(f"{elf.name} did not finish within {timeout:g} s on {board.name} under QEMU "
                              "(endless loop or hang)") from None
        except FileNotFoundError:
            raise ToolMissingError("qemu-system-arm could not be started; install it with "
                                   "`apt-get install qemu-system-arm`") from None
        seconds = time.monotonic() - start
        _check_outcome(board, elf, proc)
        instructions: dict[str, int] = {}
        entries: dict[str, int] = {}
        if log is not None:
            instructions, entries = parse_counts(log.read_text() if log.exists() else "")
            if TOTAL not in instructions:
                raise KwsgenError(f"the instruction-count plugin gave no report for {elf.name} on {board.name} "
                                  f"(QEMU exit status {proc.returncode})")
    return QemuRun(exit_code=proc.returncode, stdout=proc.stdout, stderr=proc.stderr, instructions=instructions,
                   region_entries=entries, seconds=seconds)
