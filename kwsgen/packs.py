"""Device facts from the user's CMSIS pack index, for board files that name only their device.

Why: every Cortex-M vendor publishes its devices' core, FPU and memory map in CMSIS device family
packs (.pdsc), and cmsis-pack-manager indexes them. A board file may then give just
`cmsis_device = "STM32F746ZGTx"` (plus name, kind, stdout and [platformio]) instead of copying
those facts by hand; kwsgen.targets fills cpu, fpu, float_abi, isa and [memory] from here.

The index is cmsis-pack-manager's `index.json`: in $KWSGEN_PACK_INDEX (a directory) when set,
else in cmsis-pack-manager's own default directory. Fill it on a networked machine with
`pack-manager cache descriptors`, or offline from a pack file with
`pack-manager add-packs Vendor.DFP.pdsc [--json-path DIR]` (see `add_packs`).

What the index does not say (it keeps Dcore, Dfpu and memories, not Ddsp or Dmve): the CMSIS-NN
code path is the richest the core can have (kwsgen.targets.CPU_ISA); a board whose core lacks
the DSP or MVE option (some Cortex-M33/M55 parts) states `isa` in its file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import KwsgenError

# cmsis-pack-manager's core names -> gcc -mcpu.
CORES = {
    "CortexM0": "cortex-m0",
    "CortexM0Plus": "cortex-m0plus",
    "CortexM1": "cortex-m1",
    "CortexM3": "cortex-m3",
    "CortexM4": "cortex-m4",
    "CortexM7": "cortex-m7",
    "CortexM23": "cortex-m23",
    "CortexM33": "cortex-m33",
    "CortexM35P": "cortex-m35p",
    "CortexM55": "cortex-m55",
    "CortexM85": "cortex-m85",
}
# gcc -mfpu for a core's single- (SP) or double-precision (DP) FPU; "auto" lets -mcpu decide
# (Cortex-M55/M85: the FPU option comes with the core and MVE).
_FPUS = {
    "cortex-m4": {"SP": "fpv4-sp-d16"},
    "cortex-m7": {"SP": "fpv5-sp-d16", "DP": "fpv5-d16"},
    "cortex-m33": {"SP": "fpv5-sp-d16"},
    "cortex-m35p": {"SP": "fpv5-sp-d16"},
    "cortex-m55": {"SP": "auto", "DP": "auto"},
    "cortex-m85": {"SP": "auto", "DP": "auto"},
}
_FPU_KINDS = {"SinglePrecision": "SP", "DoublePrecision": "DP", "SP_FPU": "SP", "DP_FPU": "DP", "FPU": "SP"}
_NO_FPU = {None, "", "None", "NoFpu", "NO_FPU", "0"}
INDEX_ENV = "KWSGEN_PACK_INDEX"
HOW_TO_INDEX = ("index its pack with `pack-manager add-packs VENDOR.DFP.pdsc --json-path DIR` (offline) or "
                "`pack-manager cache descriptors` (networked), and set KWSGEN_PACK_INDEX=DIR when not the default")


@dataclass(frozen=True)
class Region:
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class DeviceFacts:
    """What a board needs from a CMSIS device description."""

    device: str
    pack: str  # Vendor.Pack.version it came from
    cpu: str
    fpu: str  # gcc -mfpu, "auto" or "none"
    float_abi: str
    flash: Region
    ram: Region

    def board_table(self) -> dict[str, Any]:
        """The board-file keys these facts stand for (cpu, fpu, float_abi, memory)."""
        return {
            "cpu": self.cpu,
            "fpu": self.fpu,
            "float_abi": self.float_abi,
            "memory": {"flash": {"origin": self.flash.start, "length": self.flash.size},
                       "ram": {"origin": self.ram.start, "length": self.ram.size}},
        }


def default_index_dir() -> Path:
    """Where cmsis-pack-manager keeps index.json unless told otherwise."""
    try:
        from appdirs import user_data_dir  # a dependency of cmsis-pack-manager
    except ImportError:  # cmsis-pack-manager absent: load_index() says so when an index is needed
        return Path.home() / ".local" / "share" / "cmsis-pack-manager"
    return Path(user_data_dir("cmsis-pack-manager"))


def index_dir() -> Path:
    value = os.environ.get(INDEX_ENV)
    return Path(value).expanduser() if value else default_index_dir()


def index_stamp() -> tuple[str, float]:
    """Changes whenever the index does: a cache key for boards resolved through it."""
    path = index_dir() / "index.json"
    try:
        return str(path), path.stat().st_mtime
    except OSError:
        return str(path), -1.0


def _cache(json_dir: Path, data_dir: Path | None = None):
    try:
        from cmsis_pack_manager import Cache
    except ImportError:
        raise KwsgenError("boards resolved from CMSIS packs need cmsis-pack-manager: pip install cmsis-pack-manager") from None
    data = data_dir or json_dir
    return Cache(True, True, json_path=str(json_dir), data_path=str(data))


def load_index(json_dir: Path | None = None) -> Mapping[str, Any]:
    """cmsis-pack-manager's device index (device name -> description); empty if there is none."""
    json_dir = json_dir or index_dir()
    index = _cache(json_dir).index
    return index if isinstance(index, Mapping) else {}


def add_packs(pdsc_files: Sequence[Path], json_dir: Path) -> Mapping[str, Any]:
    """Index local .pdsc files with cmsis-pack-manager (no network), merged into json_dir/index.json."""
    json_dir = Path(json_dir)
    json_dir.mkdir(parents=True, exist_ok=True)
    cache = _cache(json_dir)
    for p in pdsc_files:
        if not Path(p).is_file():
            raise KwsgenError(f"{p}: no such pack description")
        try:
            cache.add_pack_from_path(str(p))
        except Exception as e:  # cmsis-pack-manager raises bare Exceptions with the Rust message
            raise KwsgenError(f"{p}: cmsis-pack-manager cannot index it ({' '.join(str(e).split())})") from None
    return load_index(json_dir)


def _access(mem: Mapping[str, Any], name: str) -> dict[str, bool]:
    """A memory's access rights; indexes without them fall back on the pdsc id convention."""
    access = mem.get("access")
    if isinstance(access, Mapping):
        return {k: bool(access.get(k)) for k in ("read", "write", "execute", "peripheral")}
    rom = name.upper().startswith(("IROM", "FLASH", "ROM"))
    return {"read": True, "write": not rom, "execute": rom, "peripheral": False}


def _regions(memories: Mapping[str, Any]) -> list[tuple[str, Region, dict[str, bool], bool, bool]]:
    out = []
    for name, mem in sorted(memories.items()):
        try:
            region = Region(int(mem["start"]), int(mem["size"]))
        except (KeyError, TypeError, ValueError):
            continue
        if region.size <= 0:
            continue
        out.append((name, region, _access(mem, name), bool(mem.get("startup")), bool(mem.get("default"))))
    return out


def _merge(regions: list[Region]) -> list[Region]:
    """Adjacent RAM banks (e.g. DTCM + SRAM1 + SRAM2) become one region."""
    merged: list[Region] = []
    for r in sorted(regions, key=lambda r: r.start):
        if merged and merged[-1].end == r.start:
            merged[-1] = Region(merged[-1].start, merged[-1].size + r.size)
        elif not merged or r.start >= merged[-1].end:
            merged.append(r)
    return merged


def _pick_memories(device: str, memories: Mapping[str, Any]) -> tuple[Region, Region]:
    """Flash: the startup (boot) memory, else the default, else the largest executable read-only
    memory. RAM: the largest block of contiguous writable memory."""
    regions = [r for r in _regions(memories) if not r[2]["peripheral"]]
    roms = [r for r in regions if r[2]["execute"] and not r[2]["write"]]
    rams = [r[1] for r in regions if r[2]["write"]]
    if not roms or not rams:
        raise KwsgenError(f"CMSIS device {device}: its pack lists no {'flash' if not roms else 'RAM'} memory")
    flash = max(roms, key=lambda r: (r[3], r[4], r[1].size, -r[1].start))[1]
    ram = max(_merge(rams), key=lambda r: (r.size, -r.start))
    return flash, ram


def _core(device: str, processors: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(gcc -mcpu, FPU kind "SP"/"DP"/"none") of the device's one core."""
    kinds = {(str(p.get("core")), str(p.get("fpu"))) for p in processors}
    if not kinds:
        raise KwsgenError(f"CMSIS device {device}: its pack names no processor")
    if len(kinds) > 1:
        cores = ", ".join(sorted(c for c, _ in kinds))
        raise KwsgenError(f"CMSIS device {device} has several cores ({cores}): give cpu, fpu, float_abi and "
                          "[memory] in the board file")
    core, fpu = next(iter(kinds))
    if core not in CORES:
        raise KwsgenError(f"CMSIS device {device}: core {core!r} is not a Cortex-M core kwsgen supports "
                          f"({', '.join(CORES)})")
    return CORES[core], "none" if fpu in _NO_FPU else _FPU_KINDS.get(fpu, "?" + fpu)


def facts_from_entry(device: str, entry: Mapping[str, Any]) -> DeviceFacts:
    """DeviceFacts from one index entry (cmsis-pack-manager's JSON for a device)."""
    cpu, kind = _core(device, entry.get("processors") or [])
    if kind == "none":
        fpu, abi = "none", "soft"
    else:
        fpu = _FPUS.get(cpu, {}).get(kind)
        if fpu is None:
            raise KwsgenError(f"CMSIS device {device}: its pack declares FPU {kind.lstrip('?')!r} on {cpu}, "
                              "which gcc cannot target; give fpu and float_abi in the board file")
        abi = "hard"
    flash, ram = _pick_memories(device, entry.get("memories") or {})
    origin = entry.get("from_pack") or {}
    pack = ".".join(str(origin.get(k, "?")) for k in ("vendor", "pack", "version"))
    return DeviceFacts(device, pack, cpu, fpu, abi, flash, ram)


def device_facts(device: str, index: Mapping[str, Any] | None = None) -> DeviceFacts:
    """The facts of a CMSIS device from the pack index; a one-line error naming close matches."""
    index = load_index() if index is None else index
    entry = index.get(device)
    if entry is None:
        folded = {k.upper(): k for k in index}
        hit = folded.get(device.upper())
        if hit is not None:
            entry, device = index[hit], hit
    if entry is None:
        where = index_dir() / "index.json"
        close = difflib.get_close_matches(device, list(index), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        if not index:
            raise KwsgenError(f"CMSIS device {device}: no CMSIS pack index at {where}; {HOW_TO_INDEX}, "
                              "or give cpu, fpu, float_abi and [memory] in the board file")
        raise KwsgenError(f"CMSIS device {device} is not in the CMSIS pack index at {where}{hint}; {HOW_TO_INDEX}")
    return facts_from_entry(device, entry)
