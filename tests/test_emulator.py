"""The platform layer proven by running code: kwsgen's startup, linker scripts and semihosting on
every emulated board, the instruction-count plugin, and the toolchain's errors.

One probe program (below) runs on each board and on the host: it reads a binary file through
semihosting, does integer work (branch-free, so each round costs the same) and a little float
work, writes a result file and a line of stdout, and returns a chosen exit status. It also
carries 600 KB of constant data and 150 KB of .bss (the size of the largest model), probes the
board's memory map, and can fault or hang on request. Every result is checked bit for bit
against Python.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kwsgen.emulator import (
    MARKER_OVERHEAD,
    FirmwareFault,
    plugin_path,
    plugin_sources,
    qemu_command,
    region_markers,
    run_qemu,
)
from kwsgen.errors import KwsgenError, ToolMissingError
from kwsgen.targets import Board, check_fit, list_boards, load_board
from kwsgen.toolchain import (
    BuildError,
    build_firmware,
    compile_host,
    compile_objects,
    elf_sizes,
    elf_symbols,
    platform_dir,
    platform_sources,
)

EMULATED = [b for b in list_boards() if b.kind == "qemu"]
BIG_BYTES = 600 * 1024
BSS_BYTES = 150 * 1024
IN_BYTES = 4096
ROM_REGIONS = {("mps3_an547", "flash")}  # QEMU models AN547's QSPI flash as ROM: writes are ignored
FNV_OFFSET, FNV_PRIME = 2166136261, 16777619

PROBE_C = r"""
#include <stdint.h>
#include <string.h>

#include "kws_profile.h"
#include "kws_semihost.h"

KWS_REGION_DEFINE(work);
KWS_REGION_DEFINE(empty);

#define MAX_IN 8192
extern const uint8_t probe_big[PROBE_BIG_BYTES];
static uint8_t g_in[MAX_IN];
static uint8_t g_out[MAX_IN + 8];
static uint8_t g_scratch[PROBE_BSS_BYTES];

static long parse_long(const char *s)
{
    long v = 0;
    if (s[0] == '0' && s[1] == 'x') {
        for (s += 2; *s; s++) {
            v = v * 16 + (*s <= '9' ? *s - '0' : (*s | 0x20) - 'a' + 10);
        }
        return v;
    }
    for (; *s; s++) {
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* Requantisation-like integer work with the same control flow in every round. */
__attribute__((noipa)) static void round_work(const int8_t *x, int8_t *y, long n)
{
    long i;
    for (i = 0; i < n; i++) {
        int32_t acc = (((int32_t)x[i] * 77 + 64) >> 7) - (int32_t)(i & 15) + 3;
        y[i] = (int8_t)(acc < -128 ? -128 : acc > 127 ? 127 : acc);
    }
}

__attribute__((noipa)) static uint32_t fnv1a(uint32_t h, const uint8_t *p, long n)
{
    long i;
    for (i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

__attribute__((noipa)) static float float_work(const int8_t *x, long n)
{
    float f = 0.0f;
    long i;
    for (i = 0; i < n; i++) {
        f = f * 0.5f + (float)x[i] * 0.25f;
    }
    return f;
}

__attribute__((noipa)) static int divide(int a, int b)
{
    return a / b;
}

/* Write, read back and restore one word: 1 if the memory kept the value (RAM), else 0. */
__attribute__((noipa)) static int probe_word(uintptr_t addr)
{
    volatile uint32_t *p = (volatile uint32_t *)addr;
    uint32_t old = *p, pattern = ~old ^ 0x5A5AA5A5u, back;
    *p = pattern;
    back = *p;
    *p = old;
    return back == pattern;
}

static int run_work(const char *in_path, const char *out_path, long rounds)
{
    long n = kws_semihost_read_file(in_path, g_in, sizeof g_in), r;
    uint32_t h = 2166136261u, fbits;
    float f;
    if (n < 0) {
        kws_semihost_printf("cannot read %s\n", in_path);
        return 1;
    }
    KWS_REGION_BEGIN(empty);
    KWS_REGION_END(empty);
    KWS_REGION_BEGIN(work);
    for (r = 0; r < rounds; r++) {
        round_work((const int8_t *)g_in, (int8_t *)g_out, n);
        h = fnv1a(h, g_out, n);
    }
    KWS_REGION_END(work);
    f = float_work((const int8_t *)g_in, n);
    memcpy(&fbits, &f, sizeof fbits);
    memcpy(g_out + n, &h, 4);
    memcpy(g_out + n + 4, &fbits, 4);
    if (kws_semihost_write_file(out_path, g_out, (size_t)n + 8) != 0) {
        kws_semihost_printf("cannot write %s\n", out_path);
        return 1;
    }
    kws_semihost_printf("probe n=%ld rounds=%ld checksum=%08lx float=%08lx\n", n, rounds, (unsigned long)h,
                        (unsigned long)fbits);
    return 0;
}

static void run_big(void)
{
    uint32_t hb = fnv1a(2166136261u, probe_big, PROBE_BIG_BYTES), hs;
    long i;
    for (i = 0; i < PROBE_BSS_BYTES; i++) {
        g_scratch[i] = (uint8_t)(i * 7 + (long)(hb & 0xFF));
    }
    hs = fnv1a(2166136261u, g_scratch, PROBE_BSS_BYTES);
    kws_semihost_printf("big rodata=%08lx bss=%08lx rodata_at=%p bss_at=%p\n", (unsigned long)hb, (unsigned long)hs,
                        (const void *)probe_big, (void *)g_scratch);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    int i;
    if (strcmp(mode, "work") == 0 && argc == 6) {
        int rc = run_work(argv[2], argv[3], parse_long(argv[4]));
        return rc != 0 ? rc : (int)parse_long(argv[5]);
    }
    if (strcmp(mode, "big") == 0) {
        run_big();
        return 0;
    }
    if (strcmp(mode, "mem") == 0) {
        for (i = 2; i < argc; i++) {
            kws_semihost_printf("mem %s %d\n", argv[i], probe_word((uintptr_t)parse_long(argv[i])));
        }
        return 0;
    }
    if (strcmp(mode, "divzero") == 0) {
        return divide(argc, argc - 2);
    }
    if (strcmp(mode, "hang") == 0) {
        for (;;) {
        }
    }
    kws_semihost_printf("usage: probe work IN OUT ROUNDS EXIT | big | mem ADDR... | divzero | hang\n");
    return 2;
}
"""

DEFINES = {"PROBE_BIG_BYTES": BIG_BYTES, "PROBE_BSS_BYTES": BSS_BYTES}


# ----------------------------------------------------------------------- Python oracle ---

def fnv1a(h: int, data: bytes) -> int:
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFF
    return h


def expected_work(data: bytes, rounds: int) -> bytes:
    """The probe's result file: y, then the FNV-1a of y over every round, then the float bits."""
    x = np.frombuffer(data, np.int8).astype(np.int32)
    acc = ((x * 77 + 64) >> 7) - (np.arange(x.size) & 15) + 3
    y = np.clip(acc, -128, 127).astype(np.int8).tobytes()
    h = FNV_OFFSET
    for _ in range(rounds):
        h = fnv1a(h, y)
    f = np.float32(0.0)
    for v in x:  # sequential float32 arithmetic, one rounding per operation (C99: no contraction)
        f = np.float32(f * np.float32(0.5)) + np.float32(np.float32(v) * np.float32(0.25))
    return y + struct.pack("<II", h, int(np.float32(f).view(np.uint32)))


def expected_big(big: bytes) -> tuple[int, int]:
    hb = fnv1a(FNV_OFFSET, big)
    scratch = ((np.arange(BSS_BYTES, dtype=np.int64) * 7 + (hb & 0xFF)) & 0xFF).astype(np.uint8).tobytes()
    return hb, fnv1a(FNV_OFFSET, scratch)


# ---------------------------------------------------------------------------- fixtures ---

@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    """probe.c, big.c (600 KB of constant data as a string literal: fast to compile) and in.bin."""
    d = tmp_path_factory.mktemp("probe")
    rng = np.random.default_rng(20261122)
    big = rng.integers(0, 256, BIG_BYTES, dtype=np.uint8).tobytes()
    lines = ['"' + "".join(f"\\x{b:02x}" for b in big[i:i + 64]) + '"' for i in range(0, len(big), 64)]
    body = "\n".join(lines)
    (d / "big.c").write_text(f"#include <stdint.h>\nconst uint8_t probe_big[{BIG_BYTES}] __attribute__((aligned(16))) =\n"
                             f"{body};\n")
    (d / "big.bin").write_bytes(big)
    (d / "probe.c").write_text(PROBE_C)
    (d / "in.bin").write_bytes(rng.integers(0, 256, IN_BYTES, dtype=np.uint8).tobytes())
    return d


def _sources(probe: Path) -> list[Path]:
    return [probe / "probe.c", probe / "big.c"]


def _run_work(board: Board, elf: Path, cwd: Path, rounds: int, status: int):
    out = f"out_{board.name}_{rounds}.bin"
    run = run_qemu(board, elf, args=["work", "in.bin", out, str(rounds), str(status)], cwd=cwd, timeout=60)
    return run, (cwd / out).read_bytes()


# ----------------------------------------------------------------------------- tests ---

@pytest.mark.qemu
@pytest.mark.parametrize("board", EMULATED, ids=lambda b: b.name)
def test_probe_runs_bit_exact_on_board(board: Board, probe: Path, tmp_path: Path):
    elf = build_firmware(board, _sources(probe), [], DEFINES, tmp_path / "build")
    sizes = elf_sizes(elf)
    assert sizes.rodata >= BIG_BYTES and sizes.bss >= BSS_BYTES
    check_fit(board, sizes.flash, sizes.ram)
    symbols = elf_symbols(elf)
    soft_float = "__aeabi_fmul" in symbols
    assert soft_float == (not board.has_fpu), "float work must use the FPU exactly when the board has one"

    data = (probe / "in.bin").read_bytes()
    runs = {}
    for rounds in (1, 2, 4):
        run, result = _run_work(board, elf, probe, rounds, status=3)
        want = expected_work(data, rounds)
        assert result == want, f"result file differs on {board.name} ({rounds} rounds)"
        h, fbits = struct.unpack("<II", want[-8:])
        assert run.stdout == f"probe n={IN_BYTES} rounds={rounds} checksum={h:08x} float={fbits:08x}\n".encode()
        assert run.exit_code == 3, "main's return value is QEMU's exit status"
        assert run.region_entries == {"empty": 1, "main": 1, "work": 1}
        runs[rounds] = run

    again, _ = _run_work(board, elf, probe, 1, status=3)
    assert again.instructions == runs[1].instructions, "instruction counts must repeat exactly"

    work = {r: runs[r].instructions["work"] for r in runs}
    assert work[4] - work[2] == 2 * (work[2] - work[1]), "each round of identical work costs the same instructions"
    assert 1.9 < work[2] / work[1] <= 2.0 and 3.8 < work[4] / work[1] <= 4.0
    assert MARKER_OVERHEAD <= runs[1].instructions["empty"] <= MARKER_OVERHEAD + 4
    total, main = runs[1].instructions["total"], runs[1].instructions["main"]
    assert work[1] < main < total

    big = run_qemu(board, elf, args=["big"], count=False)
    match = re.fullmatch(rb"big rodata=(\w+) bss=(\w+) rodata_at=0x(\w+) bss_at=0x(\w+)\n", big.stdout)
    assert match and big.exit_code == 0, big.stdout
    assert (int(match[1], 16), int(match[2], 16)) == expected_big((probe / "big.bin").read_bytes())
    rodata_mem, bss_mem = board.memory(board.region_of("rodata")), board.memory(board.region_of("bss"))
    assert rodata_mem.origin <= int(match[3], 16) < rodata_mem.end - BIG_BYTES
    assert bss_mem.origin <= int(match[4], 16) < bss_mem.end - BSS_BYTES

    # The declared memory map, probed at both ends of every region: RAM keeps what is written.
    addrs = {f"0x{a:x}": name for name, m in board.memories for a in (m.origin, m.end - 4)}
    mem = run_qemu(board, elf, args=["mem", *addrs], count=False)
    seen = dict(re.findall(r"mem (0x\w+) (\d)", mem.stdout.decode()))
    assert seen.keys() == addrs.keys()
    for addr, region in addrs.items():
        assert seen[addr] == ("0" if (board.name, region) in ROM_REGIONS else "1"), f"{region} at {addr}"

    with pytest.raises(FirmwareFault, match=rf"firmware fault on {board.name}: UsageFault \(DIVBYZERO\) at pc "
                                            r"0x\w+ in divide\+0x"):
        run_qemu(board, elf, args=["divzero"], count=False, timeout=30)


def test_probe_runs_bit_exact_on_host_under_sanitizers(probe: Path, tmp_path: Path):
    """The same program on the host (semihosting API over stdio), clean under ASan and UBSan."""
    host = load_board("host")
    exe = compile_host([*_sources(probe), *platform_sources(host)], [platform_dir()], DEFINES, tmp_path / "probe",
                       sanitize=True)
    out = tmp_path / "out.bin"
    proc = subprocess.run([str(exe), "work", "in.bin", str(out), "2", "5"], cwd=probe, capture_output=True, timeout=60,
                          check=False)
    assert proc.returncode == 5, proc.stderr
    assert out.read_bytes() == expected_work((probe / "in.bin").read_bytes(), 2)
    assert elf_sizes(exe).rodata >= BIG_BYTES  # the ELF reader on a 64-bit host executable
    big = subprocess.run([str(exe), "big"], cwd=probe, capture_output=True, timeout=60, check=True)
    hb, hs = expected_big((probe / "big.bin").read_bytes())
    assert big.stdout.startswith(f"big rodata={hb:08x} bss={hs:08x} ".encode())


SMALL_C = r"""
#include <stdint.h>
#include "kws_semihost.h"
__attribute__((noipa)) static uint32_t deep(uint32_t n)
{
    volatile uint32_t frame[64];
    uint32_t i;
    for (i = 0; i < 64; i++) {
        frame[i] = n + i;
    }
    return n == 0 ? frame[5] : deep(n - 1) + frame[3];
}
int main(int argc, char **argv)
{
    kws_semihost_puts("started\n");
    if (argc > 1 && argv[1][0] == 'h') { /* hang */
        for (;;) {
        }
    }
    if (argc > 1 && argv[1][0] == 'l') { /* lockup: vector table moved to zeroed RAM, then a fault */
        *(volatile uint32_t *)0xE000ED08u = 0x20200000u;
        __asm__ volatile("udf #0");
    }
    if (argc > 1 && argv[1][0] == 's') { /* about 24 KB of stack: more than the board's 16 KB */
        return (int)(deep(90) & 1);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def small_elf(tmp_path_factory) -> tuple[Board, Path]:
    d = tmp_path_factory.mktemp("small")
    (d / "small.c").write_text(SMALL_C)
    board = load_board("mps2_an386")
    return board, build_firmware(board, [d / "small.c"], [], {}, d / "build")


@pytest.mark.qemu
def test_hang_times_out_with_a_clear_error(small_elf):
    board, elf = small_elf
    with pytest.raises(KwsgenError, match=r"did not finish within 1\.5 s on mps2_an386"):
        run_qemu(board, elf, args=["hang"], timeout=1.5, count=False)


@pytest.mark.qemu
def test_stack_overflow_is_caught_on_v7m(small_elf):
    """No MSPLIM before v8-M: the startup's painted stack reveals the overflow at exit."""
    board, elf = small_elf
    with pytest.raises(FirmwareFault, match=r"firmware fault on mps2_an386: stack overflow: more than 16384 bytes"):
        run_qemu(board, elf, args=["stack"], timeout=30, count=False)


@pytest.mark.qemu
def test_lockup_is_a_clear_error(small_elf):
    board, elf = small_elf
    with pytest.raises(FirmwareFault, match=r"firmware on mps2_an386 locked up .*Lockup"):
        run_qemu(board, elf, args=["lockup"], timeout=30, count=False)


@pytest.mark.qemu
def test_no_regions_and_argument_checks(small_elf):
    board, elf = small_elf
    run = run_qemu(board, elf)
    assert run.stdout == b"started\n" and run.exit_code == 0
    assert set(run.instructions) == {"total", "main"} and run.instructions["main"] < run.instructions["total"]
    assert region_markers(elf).keys() == {"main"}
    with pytest.raises(KwsgenError, match="no KWS_REGION_DEFINE marker for region.*invoke"):
        run_qemu(board, elf, regions=["invoke"])
    with pytest.raises(KwsgenError, match="whitespace"):
        run_qemu(board, elf, args=["a b"])
    with pytest.raises(KwsgenError, match="command line too long"):
        run_qemu(board, elf, args=["x"] * 40)
    cmd = qemu_command(board, elf, ["x,y"])
    assert cmd[cmd.index("-semihosting-config") + 1].endswith(",arg=firmware.elf,arg=x,,y")
    with pytest.raises(KwsgenError, match="not emulated"):
        run_qemu(load_board("nucleo_f746zg"), elf)


def test_elf_sizes_agree_with_binutils(small_elf):
    _, elf = small_elf
    sizes = elf_sizes(elf)
    berkeley = subprocess.run([shutil.which("arm-none-eabi-size") or "arm-none-eabi-size", str(elf)],
                              capture_output=True, text=True, check=True).stdout.splitlines()[1].split()
    text, data, bss = map(int, berkeley[:3])
    assert (sizes.text + sizes.rodata, sizes.data, sizes.bss) == (text, data, bss)
    assert sizes.flash == sizes.text + sizes.rodata + sizes.data and sizes.ram == sizes.data + sizes.bss
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    want = {name: int(addr, 16) for addr, _, name in (line.split() for line in nm.splitlines() if line.count(" ") == 2)}
    got = elf_symbols(elf)
    assert all(got[name] & ~1 == addr & ~1 for name, addr in want.items())


def test_overflowing_ram_is_a_one_line_fit_error(tmp_path):
    src = tmp_path / "huge.c"
    src.write_text("#include <stdint.h>\nstatic uint8_t huge[5u << 20];\n"
                   "int main(void) { huge[12345] = 1; return huge[(uintptr_t)&huge & 7]; }\n")
    with pytest.raises(BuildError) as e:
        build_firmware(load_board("mps2_an385"), [src], [], {}, tmp_path / "build")
    assert re.fullmatch(r"firmware build for mps2_an385: does not fit: region ram overflowed by [\d,]+ B", str(e.value))


def test_compile_errors_are_reported(tmp_path):
    src = tmp_path / "bad.c"
    src.write_text("int main(void) { int unused; return 0; }\n")
    with pytest.raises(BuildError, match=r"unused variable") as e:
        compile_objects(load_board("nucleo_f746zg"), [src], [], {}, tmp_path / "obj")
    assert "-Werror" in e.value.log or "unused" in e.value.log


def test_real_board_sources_cross_compile(tmp_path, probe):
    """Real boards: the platform headers and a program compile with the board's flags and -Werror."""
    for name in ("nucleo_f746zg", "pico"):
        objs = compile_objects(load_board(name), [probe / "probe.c"], [], DEFINES, tmp_path / name)
        assert objs[0].stat().st_size > 0


def test_plugin_is_built_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KWSGEN_CACHE", str(tmp_path / "cache"))
    first = plugin_path()
    assert first.parent == tmp_path / "cache" and first.is_file()
    mtime = first.stat().st_mtime_ns
    assert plugin_path() == first and first.stat().st_mtime_ns == mtime
    nm = subprocess.run(["nm", "-D", "--defined-only", str(first)], capture_output=True, text=True, check=True).stdout
    assert "qemu_plugin_install" in nm and "qemu_plugin_version" in nm
    edited = tmp_path / "edited"
    edited.mkdir()
    for src in plugin_sources():
        shutil.copy(src, edited / src.name)
    (edited / "insn_count.c").write_text((edited / "insn_count.c").read_text() + "\n/* edited */\n")
    monkeypatch.setattr("kwsgen.emulator.plugin_sources", lambda: [edited / "insn_count.c", edited / "kws_qemu_plugin.h"])
    assert plugin_path() != first, "an edited plugin source gets a new cache entry"


def test_missing_tools_say_what_to_install(tmp_path, monkeypatch, small_elf):
    board, elf = small_elf
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("KWSGEN_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "x.c"
    src.write_text("int main(void) { return 0; }\n")
    with pytest.raises(ToolMissingError, match=r"arm-none-eabi-gcc.*apt-get install gcc-arm-none-eabi "
                                               r"libnewlib-arm-none-eabi"):
        build_firmware(board, [src], [], {}, tmp_path / "b")
    with pytest.raises(ToolMissingError, match=r"qemu-system-arm.*apt-get install qemu-system-arm"):
        run_qemu(board, elf)
    with pytest.raises(ToolMissingError, match=r"gcc.*apt-get install gcc"):
        compile_host([src], [], {}, tmp_path / "x")
    with pytest.raises(ToolMissingError, match=r"gcc.*apt-get install gcc"):
        plugin_path()
    assert ToolMissingError("x").exit_code == 3
