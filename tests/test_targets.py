"""Board definitions: every targets/*.toml loads, is self-consistent and agrees with the tools.

The facts themselves (memory maps) are proven by running code in test_emulator.py; here the
schema, the derived values (flags, capacities, fit check, linker script) and the agreement of
each board's flags with what arm-none-eabi-gcc and qemu-system-arm actually provide.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess

import pytest

from kwsgen.cli import main as cli_main
from kwsgen.errors import KwsgenError
from kwsgen.ops import EmitTarget
from kwsgen.targets import CPU_ISA, ISAS, Board, check_fit, list_boards, load_board, parse_board, targets_dir
from kwsgen.toolchain import arm_gcc, qemu_system_arm, render_linker_script

BOARDS = list_boards()
ARM_BOARDS = [b for b in BOARDS if b.is_arm]
EMULATED = {"mps2_an385", "mps2_an386", "mps2_an500", "mps2_an505", "mps3_an547"}
REAL = {"nucleo_f746zg", "nucleo_h743zi", "disco_l475vg_iot01a", "nano33ble", "pico"}


def test_every_board_file_loads_under_its_own_name():
    files = sorted(p.stem for p in targets_dir().glob("*.toml"))
    assert files == sorted(b.name for b in BOARDS)
    assert {b.name for b in BOARDS if b.kind == "qemu"} == EMULATED
    assert {b.name for b in BOARDS if b.kind == "real"} == REAL
    assert [b.name for b in BOARDS if b.kind == "host"] == ["host"]
    assert BOARDS[0].name == "host"  # host first, then emulated, then real


@pytest.mark.parametrize("board", ARM_BOARDS, ids=lambda b: b.name)
def test_board_is_consistent(board: Board):
    assert board.isa == CPU_ISA[board.cpu], "each board uses the richest CMSIS-NN path its core has"
    assert (board.fpu == "none") == (board.float_abi == "soft")
    regions = dict(board.memories)
    for section, region in board.layout:
        assert region in regions, section
    spans = sorted((m.origin, m.end) for m in regions.values())
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans)), "regions overlap"
    assert all(m.end <= 1 << 32 for m in regions.values())
    assert board.ram_capacity == sum(regions[r].length for r in {board.region_of("data"), board.region_of("bss")}) \
        - board.stack_bytes
    if board.kind == "qemu":
        assert board.qemu_machine and board.stdout == "semihosting" and board.platformio is None
    else:
        assert board.platformio is not None and board.cmsis_device and board.qemu_machine is None


def test_emulated_boards_hold_the_largest_model():
    """DS-CNN L: ~500 KB of weights + ~100 KB of activations and code, with room to spare."""
    for name in EMULATED:
        b = load_board(name)
        assert b.flash_capacity >= 1 << 20 and b.ram_capacity >= 512 << 10, name
        check_fit(b, 700_000, 300_000)


def test_cflags_and_emit_target():
    assert load_board("mps2_an386").cflags() == ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    assert load_board("mps2_an385").cflags() == ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"]
    assert load_board("mps2_an500").cflags()[-2:] == ["-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"]
    assert load_board("host").cflags() == []
    assert load_board("mps3_an547").emit_target("cmsis-nn") == EmitTarget(kernels="cmsis-nn", isa="mve")
    assert load_board("mps2_an505").emit_target("portable") == EmitTarget(kernels="portable", isa="dsp")
    assert load_board("host").emit_target("portable") == EmitTarget(kernels="portable", isa="scalar")


def _predefined(board: Board) -> set[str]:
    out = subprocess.run([arm_gcc(), *board.cflags(), "-dM", "-E", "-x", "c", "-"], input="", capture_output=True,
                         text=True, check=True).stdout
    return set(re.findall(r"#define (__ARM_\w+)", out))


@pytest.mark.parametrize("board", ARM_BOARDS, ids=lambda b: b.name)
def test_gcc_sees_what_the_board_declares(board: Board):
    """The board's isa and fpu are what its gcc flags really enable (DSP, MVE, hardware FP)."""
    macros = _predefined(board)
    assert ("__ARM_FEATURE_DSP" in macros) == (ISAS.index(board.isa) >= ISAS.index("dsp"))
    assert ("__ARM_FEATURE_MVE" in macros) == (board.isa == "mve")
    assert ("__ARM_FP" in macros) == board.has_fpu


def test_qemu_knows_every_emulated_machine():
    listing = subprocess.run([qemu_system_arm(), "-M", "help"], capture_output=True, text=True, check=True).stdout
    machines = {line.split()[0] for line in listing.splitlines()[1:] if line.strip()}
    for name in EMULATED:
        assert load_board(name).qemu_machine in machines


def test_unknown_board_names_the_available_ones():
    with pytest.raises(KwsgenError) as e:
        load_board("mps2_an999")
    assert "mps2_an999" in str(e.value) and "mps2_an386" in str(e.value) and "mps3_an547" in str(e.value)
    with pytest.raises(KwsgenError, match="unknown board"):
        load_board("../targets/host")


def test_user_board_file(tmp_path):
    spec = (targets_dir() / "mps2_an386.toml").read_text().replace('name = "mps2_an386"', 'name = "my_board"')
    path = tmp_path / "my_board.toml"
    path.write_text(spec)
    assert load_board(str(path)).name == "my_board"


GOOD = {
    "name": "b", "description": "d", "kind": "qemu", "cpu": "cortex-m4", "fpu": "fpv4-sp-d16", "float_abi": "hard",
    "isa": "dsp", "stdout": "semihosting", "memory": {"flash": {"origin": 0, "length": 4096},
                                                       "ram": {"origin": 0x20000000, "length": 65536}},
    "qemu": {"machine": "mps2-an386"},
}


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "unknown key"),
    ({"isa": "mve"}, "isa 'mve' needs more than cortex-m4"),
    ({"cpu": "cortex-m99"}, "not a known Cortex-M core"),
    ({"fpu": "none"}, "needs float_abi 'soft'"),
    ({"kind": "rocket"}, "'kind' is 'rocket'"),
    ({"memory": {"flash": {"origin": 0, "length": 4096}}}, r"\[memory.flash\] and \[memory.ram\] are required"),
    ({"memory": {"flash": {"origin": 0, "length": 4096}, "ram": {"origin": 4000, "length": 64}}}, "overlap"),
    ({"memory": {"flash": {"origin": 0xFFFFFF00, "length": 4096}, "ram": {"origin": 0, "length": 64}}}, "length"),
    ({"layout": {"text": "itcm"}}, "'itcm', which is not defined"),
    ({"qemu": None}, r"\[qemu\] machine is required"),
    ({"stdout": "uart"}, "semihosting"),
    ({"stack_bytes": 65536}, "leaves no RAM"),
    ({"platformio": {"platform": "p", "board": "b", "framework": "f"}}, "for kind 'real'"),
])
def test_schema_errors_are_one_line(change, message):
    data = {**GOOD, **change}
    data = {k: v for k, v in data.items() if v is not None}
    parse_board(GOOD, "good.toml")
    with pytest.raises(KwsgenError, match=message) as e:
        parse_board(data, "bad.toml")
    assert "\n" not in str(e.value) and str(e.value).startswith("bad.toml: ")


def test_check_fit_names_the_bytes_over():
    b = load_board("nucleo_f746zg")
    check_fit(b, b.flash_capacity, b.ram_capacity)  # exactly full fits
    with pytest.raises(KwsgenError) as e:
        check_fit(b, b.flash_capacity + 1234, b.ram_capacity + 1)
    msg = str(e.value)
    assert "nucleo_f746zg" in msg and "1,234 B over" in msg and "1 B over" in msg and "\n" not in msg
    with pytest.raises(KwsgenError, match=r"RAM needs 94,209 B of 94,208 B \(1 B over"):
        check_fit(load_board("disco_l475vg_iot01a"), 1000, 96 * 1024 - 4096 + 1)
    check_fit(load_board("host"), 10**12, 10**12)  # the host has no limits


@pytest.mark.parametrize("name", sorted(EMULATED))
def test_linker_script_places_sections_per_board(name: str):
    b = load_board(name)
    script = render_linker_script(b)
    for region, mem in b.memories:
        assert f"{region} (rwx) : ORIGIN = 0x{mem.origin:08X}, LENGTH = 0x{mem.length:08X}" in script
    assert f"}} > {b.region_of('text')}" in script
    assert f"> {b.region_of('data')} AT > {b.region_of('rodata')}" in script
    assert f"__kws_stack_bytes = {b.stack_bytes};" in script
    assert render_linker_script(b) == script  # deterministic


def test_an547_keeps_code_in_itcm_and_data_in_larger_memories():
    b = load_board("mps3_an547")
    assert b.memory(b.region_of("text")).origin == 0x10000000  # boot memory: the vector table
    assert b.memory(b.region_of("rodata")).length >= 1 << 20
    assert b.memory(b.region_of("bss")).length >= 1 << 20


def test_boards_command(capsys):
    assert cli_main(["boards"]) == 0
    table = capsys.readouterr().out
    for b in BOARDS:
        assert re.search(rf"^{b.name}\s", table, re.MULTILINE), b.name
    assert cli_main(["boards", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in listed] == [b.name for b in BOARDS]
    an547 = next(d for d in listed if d["name"] == "mps3_an547")
    assert an547["isa"] == "mve" and an547["qemu_machine"] == "mps3-an547"
    assert an547["memory"]["itcm"] == {"origin": 0x10000000, "length": 0x80000}
    f746 = next(d for d in listed if d["name"] == "nucleo_f746zg")
    assert f746["platformio"] == {"platform": "ststm32", "board": "nucleo_f746zg", "framework": "stm32cube"}
    assert f746["cmsis_device"] == "STM32F746xx"
