"""Boards that name only their CMSIS device take core, FPU and memories from a CMSIS pack index.

The test writes its own small device family pack (.pdsc) and indexes it with cmsis-pack-manager
from the local file, with no network, in a private index directory (KWSGEN_PACK_INDEX).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURE_MODELS
from kwsgen.cli import main
from kwsgen.errors import KwsgenError
from kwsgen.packs import add_packs, device_facts, load_index
from kwsgen.platformio import cross_compile_check, link_check
from kwsgen.targets import load_board, parse_board

PDSC = """<?xml version="1.0" encoding="UTF-8"?>
<package schemaVersion="1.7.7" xmlns:xs="http://www.w3.org/2001/XMLSchema-instance">
  <vendor>Kwstest</vendor>
  <name>KWS_DFP</name>
  <description>kwsgen test devices</description>
  <url>http://example.invalid/packs/</url>
  <releases><release version="1.2.3">test</release></releases>
  <devices>
    <family Dfamily="KWS7 Series" Dvendor="ARM:82">
      <processor Dcore="Cortex-M7" DcoreVersion="r1p2" Dfpu="DP_FPU" Dmpu="MPU" Ddsp="DSP" Dendian="Little-endian" Dclock="480000000"/>
      <device Dname="KWS7ZI">
        <memory id="IROM1" start="0x08000000" size="0x00200000" startup="1" default="1"/>
        <memory id="IRAM1" start="0x20000000" size="0x00020000" init="0" default="1"/>
        <memory id="IRAM2" start="0x20020000" size="0x00040000" init="0" default="0"/>
        <memory id="IRAM3" start="0x30000000" size="0x00048000" init="0" default="0"/>
      </device>
    </family>
    <family Dfamily="KWS0 Series" Dvendor="ARM:82">
      <processor Dcore="Cortex-M0+" DcoreVersion="r0p1" Dfpu="NO_FPU" Dmpu="NO_MPU" Dendian="Little-endian" Dclock="133000000"/>
      <device Dname="KWS0XIP">
        <memory name="SRAM" access="rwx" start="0x20000000" size="0x00042000" default="1"/>
        <memory name="FLASH" access="rx" start="0x10000000" size="0x00200000" startup="1" default="1"/>
      </device>
    </family>
    <family Dfamily="KWS4 Series" Dvendor="ARM:82">
      <processor Dcore="Cortex-M4" Dfpu="SP_FPU" Ddsp="DSP" Dendian="Little-endian" Dclock="80000000"/>
      <device Dname="KWS4VG">
        <memory id="IROM1" start="0x08000000" size="0x00100000" startup="1" default="1"/>
        <memory id="IRAM1" start="0x20000000" size="0x00018000" default="1"/>
      </device>
    </family>
    <family Dfamily="KWSDUAL Series" Dvendor="ARM:82">
      <processor Pname="CM7" Dcore="Cortex-M7" Dfpu="DP_FPU" Dendian="Little-endian" Dclock="480000000"/>
      <processor Pname="CM4" Dcore="Cortex-M4" Dfpu="SP_FPU" Dendian="Little-endian" Dclock="240000000"/>
      <device Dname="KWSDUAL">
        <memory id="IROM1" start="0x08000000" size="0x00100000" startup="1" default="1"/>
        <memory id="IRAM1" start="0x24000000" size="0x00080000" default="1"/>
      </device>
    </family>
  </devices>
</package>
"""


@pytest.fixture(scope="module")
def pack_index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("packs")
    pdsc = root / "Kwstest.KWS_DFP.1.2.3.pdsc"
    pdsc.write_text(PDSC)
    index = add_packs([pdsc], root / "index")
    assert sorted(index) == ["KWS0XIP", "KWS4VG", "KWS7ZI", "KWSDUAL"]
    return root / "index"


@pytest.fixture
def indexed(pack_index, monkeypatch) -> Path:
    monkeypatch.setenv("KWSGEN_PACK_INDEX", str(pack_index))
    return pack_index


def _board(**extra) -> dict:
    return {"name": "pack_board", "description": "from a pack", "kind": "real", "stdout": "uart",
            "stack_bytes": 4096, **extra}


def test_facts_come_from_the_pack(indexed):
    b = parse_board(_board(cmsis_device="KWS7ZI"), "pack_board.toml")
    assert (b.cpu, b.fpu, b.float_abi, b.isa) == ("cortex-m7", "fpv5-d16", "hard", "dsp")
    assert b.cflags() == ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"]
    # boot flash; the RAM banks IRAM1+IRAM2 are contiguous and become one region, larger than IRAM3
    assert dict(b.memories)["flash"].origin == 0x08000000 and dict(b.memories)["flash"].length == 0x200000
    assert dict(b.memories)["ram"].origin == 0x20000000 and dict(b.memories)["ram"].length == 0x60000
    assert b.ram_capacity == 0x60000 - 4096 and b.cmsis_pack == "Kwstest.KWS_DFP.1.2.3"

    m0 = parse_board(_board(cmsis_device="KWS0XIP"), "m0.toml")
    assert (m0.cpu, m0.fpu, m0.float_abi, m0.isa) == ("cortex-m0plus", "none", "soft", "scalar")
    assert [(n, m.origin, m.length) for n, m in m0.memories] == [("flash", 0x10000000, 0x200000),
                                                                   ("ram", 0x20000000, 0x42000)]
    m4 = device_facts("kws4vg")  # names match without regard to case, as in the CMSIS tools
    assert (m4.device, m4.cpu, m4.fpu) == ("KWS4VG", "cortex-m4", "fpv4-sp-d16")


def test_keys_in_the_board_file_win(indexed):
    b = parse_board(_board(cmsis_device="KWS7ZI", isa="scalar", fpu="fpv5-sp-d16"), "own.toml")
    assert (b.cpu, b.fpu, b.isa) == ("cortex-m7", "fpv5-sp-d16", "scalar")
    own_memory = {"flash": {"origin": 0x08000000, "length": 0x1000}, "ram": {"origin": 0x24000000, "length": 0x8000}}
    b = parse_board(_board(cmsis_device="KWS7ZI", memory=own_memory), "own.toml")
    assert dict(b.memories)["ram"].origin == 0x24000000 and b.cpu == "cortex-m7"
    # a board with every fact never reads the index (the repository's boards do not need one)
    full = parse_board(_board(cmsis_device="NOT_INDEXED", cpu="cortex-m4", fpu="fpv4-sp-d16", float_abi="hard",
                              isa="dsp", memory=own_memory), "full.toml")
    assert full.cmsis_pack is None


@pytest.mark.parametrize("device, message", [
    ("KWS7Z", r"KWS7Z is not in the CMSIS pack index at .*index\.json \(did you mean KWS7ZI\?\); index its pack"),
    ("KWSDUAL", r"several cores \(CortexM4, CortexM7\): give cpu"),
])
def test_pack_errors_are_one_line(indexed, device, message):
    with pytest.raises(KwsgenError, match=message) as e:
        parse_board(_board(cmsis_device=device), "bad.toml")
    assert str(e.value).startswith("bad.toml: ") and "\n" not in str(e.value)


def test_no_index_and_no_facts(tmp_path, monkeypatch):
    monkeypatch.setenv("KWSGEN_PACK_INDEX", str(tmp_path / "empty"))
    assert load_index() == {}
    with pytest.raises(KwsgenError, match="no CMSIS pack index at .* or give cpu, fpu, float_abi and"):
        parse_board(_board(cmsis_device="KWS7ZI"), "b.toml")
    with pytest.raises(KwsgenError, match="'cpu' is missing: give cpu, .* or cmsis_device"):
        parse_board(_board(), "b.toml")


def test_pack_manager_cli_indexes_offline(tmp_path):
    """The command the docs give users (`pack-manager add-packs --json-path`) gives the same index."""
    pdsc = tmp_path / "Kwstest.KWS_DFP.1.2.3.pdsc"
    pdsc.write_text(PDSC)
    (tmp_path / "cli").mkdir()
    subprocess.run(["pack-manager", "add-packs", "--json-path", str(tmp_path / "cli"), "--data-path",
                    str(tmp_path / "cli"), str(pdsc)], check=True, timeout=60, capture_output=True)
    assert device_facts("KWS7ZI", load_index(tmp_path / "cli")).ram.size == 0x60000


def test_pack_board_compiles_a_project(indexed, tmp_path):
    """A user's board file with only its device: the project renders and cross-compiles with -Werror."""
    path = tmp_path / "kws0_board.toml"
    path.write_text('name = "kws0_board"\ndescription = "RP2040-like"\nkind = "real"\nstdout = "usb-cdc"\n'
                    'stack_bytes = 4096\ncmsis_device = "KWS0XIP"\n\n'
                    '[platformio]\nplatform = "raspberrypi"\nboard = "pico"\nframework = "arduino"\n')
    board = load_board(str(path))
    assert board.cpu == "cortex-m0plus" and board.cmsis_pack == "Kwstest.KWS_DFP.1.2.3"
    out = tmp_path / "project"
    assert main(["compile", str(FIXTURE_MODELS / "dnn.tflite"), "--board", str(path), "--kernels", "portable",
                 "-o", str(out)]) == 0
    assert '"board": "kws0_board"' in (out / "kwsgen-report.json").read_text()
    objects = cross_compile_check(out, board, tmp_path / "objects")
    link_check(board, objects, tmp_path / "kws0.elf")
