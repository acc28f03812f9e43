"""Board definitions: `targets/<name>.toml` files become frozen `Board` values.

Why data files: a board is a handful of facts (core, FPU and float ABI, which CMSIS-NN code path,
memory map, how it runs and prints) that the code generator, the fit check, the linker-script
template, the emulator and the PlatformIO renderer all read. Adding a board is adding one file.

Schema (unknown keys are errors, so a typo never silently falls back to a default):

    name, description        the file's stem, and one line for `kwsgen boards`
    kind                     "host" | "qemu" | "real"
    cpu                      gcc -mcpu (not for host)
    fpu                      gcc -mfpu, "auto" (let -mcpu decide), or "none"
    float_abi                "hard" | "softfp" | "soft" ("soft" when fpu = "none")
    isa                      CMSIS-NN code path: "scalar" | "dsp" | "mve", at most what the core has
    stdout                   "semihosting" | "uart" | "usb-cdc" | "stdio"
    stack_bytes              stack reserved at the top of the stack memory (default 16384)
    cmsis_device             CMSIS device name (e.g. "STM32F746xx"), optional; a board that gives
                             no cpu or no [memory] takes cpu, fpu, float_abi, isa and [memory]
                             from the CMSIS pack index (kwsgen.packs); keys it does give win
    [memory.<region>]        origin, length; "flash" and "ram" are required except for host
    [layout]                 which region holds text / rodata / data / bss / stack
                             (default: text, rodata -> flash; data, bss, stack -> ram)
    [qemu] machine           qemu-system-arm -M value (kind = "qemu")
    [platformio]             platform, board, framework (kind = "real", optional)
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import kwsgen

from .errors import KwsgenError
from .ops import EmitTarget

KINDS = ("host", "qemu", "real")
ISAS = ("scalar", "dsp", "mve")
FLOAT_ABIS = ("hard", "softfp", "soft")
STDOUTS = ("semihosting", "uart", "usb-cdc", "stdio")
SECTIONS = ("text", "rodata", "data", "bss", "stack")
DEFAULT_LAYOUT = {"text": "flash", "rodata": "flash", "data": "ram", "bss": "ram", "stack": "ram"}
DEFAULT_STACK_BYTES = 16384

# The richest CMSIS-NN code path each core can run (DSP = the v7E-M/v8-M SIMD instructions).
CPU_ISA = {
    "cortex-m0": "scalar",
    "cortex-m0plus": "scalar",
    "cortex-m1": "scalar",
    "cortex-m3": "scalar",
    "cortex-m23": "scalar",
    "cortex-m4": "dsp",
    "cortex-m7": "dsp",
    "cortex-m33": "dsp",
    "cortex-m35p": "dsp",
    "cortex-m55": "mve",
    "cortex-m85": "mve",
}

_TOP_KEYS = {"name", "description", "kind", "cpu", "fpu", "float_abi", "isa", "stdout", "stack_bytes",
             "cmsis_device", "memory", "layout", "qemu", "platformio"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def targets_dir() -> Path:
    """The repository's `targets/` folder, next to the kwsgen package (works from a checkout)."""
    return Path(kwsgen.__file__).resolve().parent.parent / "targets"


@dataclass(frozen=True)
class Memory:
    """One contiguous memory of the board's address map."""

    origin: int
    length: int

    @property
    def end(self) -> int:
        return self.origin + self.length


@dataclass(frozen=True)
class PlatformIO:
    """Where PlatformIO finds the board: `platform`, `board` and `framework` of platformio.ini."""

    platform: str
    board: str
    framework: str


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    kind: str
    cpu: str
    fpu: str
    float_abi: str
    isa: str
    stdout: str
    memories: tuple[tuple[str, Memory], ...] = ()
    layout: tuple[tuple[str, str], ...] = ()
    stack_bytes: int = 0
    qemu_machine: str | None = None
    platformio: PlatformIO | None = None
    cmsis_device: str | None = None
    cmsis_pack: str | None = None  # the pack (Vendor.Pack.version) its facts came from, if any

    @property
    def is_arm(self) -> bool:
        return self.kind != "host"

    @property
    def has_fpu(self) -> bool:
        return self.is_arm and self.fpu != "none"

    def memory(self, region: str) -> Memory:
        for name, mem in self.memories:
            if name == region:
                return mem
        raise KwsgenError(f"board {self.name} has no memory region {region!r}")

    def region_of(self, section: str) -> str:
        """Memory region holding a section kind (text, rodata, data, bss, stack)."""
        return dict(self.layout)[section]

    @property
    def flash_capacity(self) -> int:
        """Bytes available to code + constant data + the .data image (their distinct regions)."""
        if not self.memories:
            return 0
        regions = {self.region_of("text"), self.region_of("rodata")}
        return sum(self.memory(r).length for r in regions)

    @property
    def ram_capacity(self) -> int:
        """Bytes available to .data + .bss: their regions minus the stack reserved there."""
        if not self.memories:
            return 0
        regions = {self.region_of("data"), self.region_of("bss")}
        stack = self.stack_bytes if self.region_of("stack") in regions else 0
        return sum(self.memory(r).length for r in regions) - stack

    def cflags(self) -> list[str]:
        """gcc flags selecting the core, instruction set and float ABI (none for the host)."""
        if not self.is_arm:
            return []
        flags = [f"-mcpu={self.cpu}", "-mthumb", f"-mfloat-abi={self.float_abi}"]
        if self.fpu != "none":
            flags.append(f"-mfpu={self.fpu}")
        return flags

    def emit_target(self, kernels: str) -> EmitTarget:
        return EmitTarget(kernels=kernels, isa=self.isa)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able facts, for `kwsgen boards --json` and reports."""
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "cpu": self.cpu if self.is_arm else None,
            "fpu": self.fpu if self.is_arm else None,
            "float_abi": self.float_abi if self.is_arm else None,
            "isa": self.isa,
            "cflags": self.cflags(),
            "stdout": self.stdout,
            "stack_bytes": self.stack_bytes,
            "memory": {n: {"origin": m.origin, "length": m.length} for n, m in self.memories},
            "layout": dict(self.layout),
            "flash_bytes": self.flash_capacity if self.memories else None,
            "ram_bytes": self.ram_capacity if self.memories else None,
            "qemu_machine": self.qemu_machine,
            "platformio": None if self.platformio is None else {
                "platform": self.platformio.platform, "board": self.platformio.board,
                "framework": self.platformio.framework},
            "cmsis_device": self.cmsis_device,
            "cmsis_pack": self.cmsis_pack,
        }


# ----------------------------------------------------------------------------- parsing ---

def _fail(where: str, msg: str) -> KwsgenError:
    return KwsgenError(f"{where}: {msg}")


def _str(data: Mapping[str, Any], key: str, where: str, choices: tuple[str, ...] | None = None,
         default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise _fail(where, f"'{key}' must be a non-empty string")
    if choices is not None and value not in choices:
        raise _fail(where, f"'{key}' is {value!r}, expected one of {', '.join(choices)}")
    return value


def _int(value: Any, where: str, key: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise _fail(where, f"'{key}' must be an integer in [{lo}, {hi:#x}], got {value!r}")
    return value


def _memories(data: Mapping[str, Any], where: str) -> tuple[tuple[str, Memory], ...]:
    table = data.get("memory", {})
    if not isinstance(table, dict):
        raise _fail(where, "[memory] must be a table of regions")
    regions: list[tuple[str, Memory]] = []
    for name, spec in table.items():
        if not isinstance(spec, dict) or set(spec) != {"origin", "length"}:
            raise _fail(where, f"[memory.{name}] needs exactly 'origin' and 'length'")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise _fail(where, f"memory region name {name!r} must be a lower-case identifier")
        origin = _int(spec["origin"], where, f"memory.{name}.origin", 0, 0xFFFFFFFF)
        length = _int(spec["length"], where, f"memory.{name}.length", 1, 0x100000000 - origin)
        regions.append((name, Memory(origin, length)))
    ordered = sorted(regions, key=lambda r: r[1].origin)
    for (a, ma), (b, mb) in itertools.pairwise(ordered):
        if mb.origin < ma.end:
            raise _fail(where, f"memory regions {a} and {b} overlap")
    return tuple(regions)


def _layout(data: Mapping[str, Any], regions: tuple[tuple[str, Memory], ...], where: str) -> tuple[tuple[str, str], ...]:
    given = data.get("layout", {})
    if not isinstance(given, dict) or set(given) - set(SECTIONS):
        raise _fail(where, f"[layout] keys must be among {', '.join(SECTIONS)}")
    layout = {**DEFAULT_LAYOUT, **given}
    names = {n for n, _ in regions}
    for section, region in layout.items():
        if region not in names:
            raise _fail(where, f"{section} is placed in memory region {region!r}, which is not defined")
    return tuple((s, layout[s]) for s in SECTIONS)


def _section(data: Mapping[str, Any], key: str, fields: tuple[str, ...], where: str) -> dict[str, str] | None:
    table = data.get(key)
    if table is None:
        return None
    if not isinstance(table, dict) or set(table) != set(fields):
        raise _fail(where, f"[{key}] needs exactly {', '.join(fields)}")
    return {f: _str(table, f, where) for f in fields}


def _with_pack_facts(data: Mapping[str, Any], where: str) -> tuple[Mapping[str, Any], str | None]:
    """A board that names its cmsis_device but not its cpu or [memory] gets cpu, fpu, float_abi,
    isa (the richest path of the core) and [memory] from the CMSIS pack index; given keys win."""
    device = data.get("cmsis_device")
    if data.get("kind") == "host" or not isinstance(device, str) or not device or {"cpu", "memory"} <= data.keys():
        return data, None
    from .packs import device_facts

    try:
        facts = device_facts(device)
    except KwsgenError as e:
        raise _fail(where, str(e)) from None
    table = facts.board_table()
    table["isa"] = CPU_ISA.get(str(data.get("cpu", facts.cpu)), "scalar")
    return {**table, **data}, facts.pack


def parse_board(data: Mapping[str, Any], where: str) -> Board:
    """Validate one board table; every inconsistency is a one-line error naming the file."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(sorted(unknown))}")
    data, pack = _with_pack_facts(data, where)
    name = _str(data, "name", where)
    if not _NAME_RE.match(name):
        raise _fail(where, f"name {name!r} must be lower-case letters, digits and underscores")
    kind = _str(data, "kind", where, KINDS)
    if kind != "host" and "cpu" not in data:
        raise _fail(where, "'cpu' is missing: give cpu, fpu, float_abi, isa and [memory], or cmsis_device "
                           "to take them from the CMSIS pack index")
    isa = _str(data, "isa", where, ISAS)
    if kind == "host":
        cpu, fpu, abi = "host", "none", "soft"
        if data.keys() & {"cpu", "fpu", "float_abi", "memory", "layout", "qemu", "platformio", "cmsis_device"}:
            raise _fail(where, "a host board takes no cpu, fpu, float_abi, memory, layout, qemu or platformio")
    else:
        cpu = _str(data, "cpu", where)
        fpu = _str(data, "fpu", where)
        abi = _str(data, "float_abi", where, FLOAT_ABIS)
        if cpu not in CPU_ISA:
            raise _fail(where, f"cpu {cpu!r} is not a known Cortex-M core ({', '.join(CPU_ISA)})")
        if ISAS.index(isa) > ISAS.index(CPU_ISA[cpu]):
            raise _fail(where, f"isa {isa!r} needs more than {cpu} has (at most {CPU_ISA[cpu]!r})")
        if fpu == "none" and abi != "soft":
            raise _fail(where, f"fpu 'none' needs float_abi 'soft', not {abi!r}")
    stdout = _str(data, "stdout", where, STDOUTS)
    regions = _memories(data, where)
    if kind != "host" and not {"flash", "ram"} <= {n for n, _ in regions}:
        raise _fail(where, "[memory.flash] and [memory.ram] are required")
    layout = _layout(data, regions, where) if kind != "host" else ()
    qemu = _section(data, "qemu", ("machine",), where)
    if (kind == "qemu") != (qemu is not None):
        raise _fail(where, "[qemu] machine is required for kind 'qemu' and only for it")
    if kind == "qemu" and stdout != "semihosting":
        raise _fail(where, "emulated boards print through stdout = 'semihosting'")
    pio = _section(data, "platformio", ("platform", "board", "framework"), where)
    if pio is not None and kind != "real":
        raise _fail(where, "[platformio] is for kind 'real' boards")
    cmsis_device = data.get("cmsis_device")
    if cmsis_device is not None and (not isinstance(cmsis_device, str) or not cmsis_device):
        raise _fail(where, "'cmsis_device' must be a non-empty string")
    stack = 0
    if kind != "host":
        stack = _int(data.get("stack_bytes", DEFAULT_STACK_BYTES), where, "stack_bytes", 1024, 1 << 24)
        if stack % 8:
            raise _fail(where, "'stack_bytes' must be a multiple of 8")
    board = Board(
        name=name, description=_str(data, "description", where), kind=kind, cpu=cpu, fpu=fpu, float_abi=abi,
        isa=isa, stdout=stdout, memories=regions, layout=layout, stack_bytes=stack,
        qemu_machine=qemu["machine"] if qemu else None,
        platformio=PlatformIO(**pio) if pio else None, cmsis_device=cmsis_device, cmsis_pack=pack,
    )
    if board.is_arm and board.ram_capacity <= 0:
        raise _fail(where, f"stack_bytes {stack} leaves no RAM for data")
    return board


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise KwsgenError(f"{path}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise KwsgenError(f"{path}: invalid TOML ({e})") from None


def board_names() -> list[str]:
    return sorted(p.stem for p in targets_dir().glob("*.toml"))


@cache
def _load_path(path: Path, pack_index: tuple[str, float]) -> Board:
    """One board file; `pack_index` (the pack index's path and time stamp) is only a cache key,
    so a board resolved through CMSIS packs follows changes of the index."""
    board = parse_board(_read_toml(path), f"{path.name}")
    if path.parent == targets_dir() and board.name != path.stem:
        raise KwsgenError(f"{path.name}: name {board.name!r} differs from the file name")
    return board


def load_board(name: str) -> Board:
    """A board by name (targets/<name>.toml), or by the path of a user's own .toml file."""
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise KwsgenError(f"{name}: no such board file")
        return _load_path(path.resolve(), _pack_index_stamp())
    path = targets_dir() / f"{name}.toml"
    if not _NAME_RE.match(name) or not path.is_file():
        raise KwsgenError(f"unknown board {name!r}; available: {', '.join(board_names())}")
    return _load_path(path, _pack_index_stamp())


def _pack_index_stamp() -> tuple[str, float]:
    from .packs import index_stamp

    return index_stamp()


def list_boards() -> list[Board]:
    """Every board, host first, then emulated, then real ones, each group by name."""
    boards = [load_board(n) for n in board_names()]
    return sorted(boards, key=lambda b: (KINDS.index(b.kind), b.name))


def _size(n: int) -> str:
    if n % (1 << 20) == 0:
        return f"{n >> 20} MB"
    if n % 1024 == 0:
        return f"{n >> 10} KB"
    return f"{n / 1024:.1f} KB"


def _runs_on(b: Board) -> str:
    if b.kind == "qemu":
        return f"qemu -M {b.qemu_machine}"
    if b.platformio is not None:
        return f"pio {b.platformio.platform}/{b.platformio.board}"
    return "gcc" if b.kind == "host" else "-"


def boards_report(as_json: bool) -> str:
    """`kwsgen boards`: an aligned table, or a JSON list of every board's facts."""
    boards = list_boards()
    if as_json:
        return json.dumps([b.to_dict() for b in boards], indent=2)
    header = ("board", "kind", "core", "fpu", "isa", "flash", "ram", "runs on")
    rows = [header] + [
        (b.name, b.kind, b.cpu if b.is_arm else "-", (f"{b.fpu}/{b.float_abi}" if b.has_fpu else "-"), b.isa,
         _size(b.flash_capacity) if b.memories else "-", _size(b.ram_capacity) if b.memories else "-", _runs_on(b))
        for b in boards
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def check_fit(board: Board, flash_bytes: int, ram_bytes: int) -> None:
    """Refuse a program larger than the board: one line naming the bytes over (host: no limit)."""
    if not board.memories:
        return
    over = []
    if flash_bytes > board.flash_capacity:
        over.append(f"flash needs {flash_bytes:,} B of {board.flash_capacity:,} B "
                    f"({flash_bytes - board.flash_capacity:,} B over)")
    if ram_bytes > board.ram_capacity:
        over.append(f"RAM needs {ram_bytes:,} B of {board.ram_capacity:,} B "
                    f"({ram_bytes - board.ram_capacity:,} B over; {board.stack_bytes:,} B reserved for the stack)")
    if over:
        raise KwsgenError(f"does not fit {board.name}: " + "; ".join(over))
