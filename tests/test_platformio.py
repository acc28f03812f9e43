"""PlatformIO projects: emulated boards build with a real, offline `pio run` and run under QEMU;
real boards render and their sources cross-compile with the board's flags and -Werror.

Offline PlatformIO as in ../shared/notes/platformio-offline.md: one fresh PLATFORMIO_CORE_DIR per
test session (per xdist worker) seeded with tool-scons, telemetry off, a timeout on every call.
The expected outputs come from the reference interpreter run here on the input parsed back from
the generated C, so the firmware is checked against an oracle, not against itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURE_MODELS, cmsis_nn_path
from kwsgen import __version__
from kwsgen.cli import main
from kwsgen.emulator import run_qemu
from kwsgen.interpreter import run
from kwsgen.legalize import load_model
from kwsgen.platformio import (
    PLATFORM_NAME, SELFTEST_SEED, board_manifest_json, cross_compile_check, link_check, platform_source_dir,
    prepare_offline_core, run_pio,
)
from kwsgen.targets import list_boards, load_board, targets_dir

MODEL = FIXTURE_MODELS / "ds_cnn_mean.tflite"
EMULATED = [b.name for b in list_boards() if b.kind == "qemu"]
REAL = [b.name for b in list_boards() if b.kind == "real"]
PIO_TIMEOUT = 240


@pytest.fixture(scope="session")
def pio_core(tmp_path_factory) -> Path:
    return prepare_offline_core(tmp_path_factory.mktemp("platformio-core"))


def _compile(out: Path, board: str, *extra: str) -> Path:
    assert main(["compile", str(MODEL), "--board", board, "-o", str(out), *extra]) == 0
    return out


def _c_array(text: str, name: str) -> np.ndarray:
    body = re.search(rf"{name}\[[A-Z_]+\] = \{{(.*?)\}};", text, re.S)
    assert body, name
    return np.array([int(v) for v in body.group(1).replace("\n", " ").split(",") if v.strip()], dtype=np.int8)


def _reference(project: Path) -> tuple[np.ndarray, np.ndarray]:
    """(input compiled into the project, the reference interpreter's output for it)."""
    data = (project / "src" / "kws_selftest_data.c").read_text()
    x = _c_array(data, "kws_selftest_input")
    model = load_model(MODEL.read_bytes())
    shape = model.graph.tensors[model.core_inputs[0]].shape
    y = run(model, [x.reshape((1,) + shape)], core_only=True).outputs[0]
    return x, np.asarray(y).reshape(-1)


def _firmware_lines(stdout: str) -> dict[str, str]:
    """The self-test's lines by their label; the output lines (16 values each) joined."""
    lines: dict[str, str] = {}
    for ln in stdout.splitlines():
        key, _, value = ln.partition(":")
        if key == "output" and key in lines:
            lines[key] += " " + value.strip()
        elif key in ("kwsgen selftest", "input", "output", "result", "time", "memory"):
            lines[key] = value.strip()
    return lines


def _run_exec(project: Path, core: Path):
    proc = run_pio(project, ["-t", "exec"], core, timeout=PIO_TIMEOUT)
    return proc, _firmware_lines(proc.stdout)


def _check_pass(project: Path, lines: dict[str, str], kernels: str) -> np.ndarray:
    x, want = _reference(project)
    assert np.array_equal(x, np.random.default_rng(SELFTEST_SEED).integers(-128, 128, x.size, dtype=np.int8))
    assert lines["kwsgen selftest"] == f"model {MODEL.name}, board {project.name}, kernels {kernels}"
    got = np.array([int(v) for v in lines["output"].split()], dtype=np.int8)
    assert np.array_equal(got, want), (got, want)
    assert lines["result"] == f"PASS ({want.size} of {want.size} values bit-exact)"
    # DWT reads 0 under QEMU: the app says so, deterministically, and names its profiling region
    assert lines["time"].startswith("no cycle counter") and "'invoke'" in lines["time"]
    return want


@pytest.mark.parametrize("board", EMULATED)
def test_emulated_project_builds_offline_and_runs_under_qemu(board, tmp_path, pio_core):
    project = _compile(tmp_path / board, board, "--kernels", "portable")
    ini = (project / "platformio.ini").read_text()
    assert f"platform = symlink://${{PROJECT_DIR}}/platform/{PLATFORM_NAME}" in ini
    assert "/tmp" not in ini and str(tmp_path) not in ini, "platformio.ini names no path of this machine"
    proc, lines = _run_exec(project, pio_core)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[SUCCESS]" in proc.stdout
    _check_pass(project, lines, "portable")
    elf = project / ".pio" / "build" / board / "firmware.elf"
    assert elf.is_file()
    if board == "mps2_an386":
        # the same ELF, run by kwsgen's QEMU runner with the instruction-count plugin: the printed
        # lines are identical and the 'invoke' region is counted the same on every run
        first = run_qemu(load_board(board), elf, regions=("invoke",))
        second = run_qemu(load_board(board), elf, regions=("invoke",))
        assert first.exit_code == 0 and first.stdout == second.stdout
        assert _firmware_lines(first.stdout.decode()) == lines
        assert first.instructions["invoke"] == second.instructions["invoke"] > 100_000
        assert first.region_entries["invoke"] == 1


def test_a_wrong_expected_output_fails_the_run(tmp_path, pio_core):
    """The app really compares: one flipped expected value gives FAIL and a failing `pio run`."""
    project = _compile(tmp_path / "mps2_an386", "mps2_an386", "--kernels", "portable")
    data = project / "src" / "kws_selftest_data.c"
    text = data.read_text()
    want = _c_array(text, "kws_selftest_expected")
    bad = want.copy()
    bad[3] = want[3] + 1 if want[3] < 127 else want[3] - 1
    values = ", ".join(str(int(v)) for v in bad)
    text = re.sub(r"(kws_selftest_expected\[[A-Z_]+\] = \{)(.*?)(\};)", rf"\g<1>\n    {values}\n\g<3>", text, flags=re.S)
    data.write_text(text)
    proc, lines = _run_exec(project, pio_core)
    assert proc.returncode != 0
    assert lines["result"] == f"FAIL (1 of {want.size} values differ; first at [3]: got {want[3]}, expected {bad[3]})"
    assert "exited with status 1" in proc.stderr


def test_cmsis_nn_project_builds_offline_and_runs_under_qemu(tmp_path, pio_core, monkeypatch):
    monkeypatch.setenv("CMSIS_NN_PATH", str(cmsis_nn_path()))
    project = _compile(tmp_path / "mps2_an386", "mps2_an386")  # cmsis-nn is the default on Arm boards
    lib = project / "lib" / "cmsis_nn"
    assert json.loads((lib / "library.json").read_text())["build"]["srcDir"] == "Source"
    sources = [p.relative_to(lib).as_posix() for p in lib.rglob("*.c")]
    assert sources and not [s for s in sources if "Bindings" in s or s.endswith(("_f16.c", "_f32.c"))]
    assert "arm_nnfunctions.h" in (project / "lib" / "kws_model" / "src" / "kws_model.c").read_text()
    proc, lines = _run_exec(project, pio_core)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_pass(project, lines, "cmsis-nn")


def test_missing_cmsis_nn_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CMSIS_NN_PATH", raising=False)
    out = tmp_path / "out"
    assert main(["compile", str(MODEL), "--board", "nucleo_f746zg", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CMSIS_NN_PATH" in err and "--cmsis-nn" in err and "--kernels portable" in err
    assert not out.exists()


@pytest.mark.parametrize("board", REAL)
def test_real_board_project_renders_and_cross_compiles(board, tmp_path):
    b = load_board(board)
    project = _compile(tmp_path / board, board, "--kernels", "portable")
    ini = (project / "platformio.ini").read_text()
    for key, value in (("platform", b.platformio.platform), ("board", b.platformio.board),
                       ("framework", b.platformio.framework)):
        assert f"\n{key} = {value}\n" in ini
    assert "symlink://" not in ini and not (project / "platform").exists() and not (project / "lib" / "kws_platform").exists()
    impl = {"arduino": "kws_board_arduino.cpp", "stm32cube": "kws_board_stm32cube.c"}[b.platformio.framework]
    assert (project / "src" / impl).is_file() and (project / "src" / "kws_board_baremetal.c").is_file()
    objects = cross_compile_check(project, b, tmp_path / "objects")
    names = {p.name.split("_", 1)[1] for p in objects}
    assert {"kws_model.o", "kws_kernels.o", "kws_selftest.o", "kws_board_baremetal.o"} <= names
    elf = link_check(b, objects, tmp_path / "check.elf")
    assert elf.stat().st_size > 0


def test_real_boards_cross_compile_with_cmsis_nn(tmp_path, monkeypatch):
    """Generated library + app with CMSIS-NN calls on every real board; CMSIS-NN's own sources
    with -Werror once per code path (scalar: pico; DSP: the M4 Discovery), cached by flags."""
    monkeypatch.setenv("CMSIS_NN_PATH", str(cmsis_nn_path()))
    for board in REAL:
        b = load_board(board)
        project = _compile(tmp_path / board, board)
        assert (project / "lib" / "cmsis_nn" / "library.json").is_file()
        strict = board in ("pico", "disco_l475vg_iot01a")
        objects = cross_compile_check(project, b, tmp_path / f"objects-{board}", cmsis_sources=strict)
        if strict:
            link_check(b, objects, tmp_path / f"{board}.elf")


def test_platform_boards_agree_with_target_files(tmp_path):
    root = platform_source_dir()
    assert json.loads((root / "platform.json").read_text())["version"] == __version__
    listed = sorted(p.stem for p in (root / "boards").glob("*.json"))
    assert listed == sorted(EMULATED)
    for name in EMULATED:
        assert (root / "boards" / f"{name}.json").read_text() == board_manifest_json(load_board(name)), name
    # the project carries a byte-identical copy, and compiling twice gives identical projects
    a = _compile(tmp_path / "a" / "mps3_an547", "mps3_an547", "--kernels", "portable")
    b = _compile(tmp_path / "b" / "mps3_an547", "mps3_an547", "--kernels", "portable")
    for p in root.rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts:
            assert (a / "platform" / PLATFORM_NAME / p.relative_to(root)).read_bytes() == p.read_bytes()
    tree = lambda r: {str(p.relative_to(r)): p.read_bytes() for p in sorted(r.rglob("*")) if p.is_file()}  # noqa: E731
    assert tree(a) == tree(b)
    # a user's own emulated board file brings its PlatformIO board manifest into the project
    mine = tmp_path / "my_board.toml"
    mine.write_text((targets_dir() / "mps2_an386.toml").read_text().replace('name = "mps2_an386"', 'name = "my_board"'))
    c = _compile(tmp_path / "c", str(mine), "--kernels", "portable")
    manifest = json.loads((c / "platform" / PLATFORM_NAME / "boards" / "my_board.json").read_text())
    assert manifest["build"]["qemu_machine"] == "mps2-an386" and "\nboard = my_board\n" in (c / "platformio.ini").read_text()

