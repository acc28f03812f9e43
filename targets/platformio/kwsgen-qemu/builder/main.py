"""SCons build script of kwsgen's `kwsgen-qemu` PlatformIO platform (runs inside PlatformIO).

Why a platform of kwsgen's own: QEMU's MPS2/MPS3 machines have no vendor framework, and kwsgen's
emulated boards must build and run with a real `pio run` on machines with no registry access. So:

* Toolchain: `arm-none-eabi-gcc` from PATH (Debian's gcc-arm-none-eabi + libnewlib-arm-none-eabi).
  PlatformIO puts the `bin/` of a `toolchain-gccarmnoneeabi` package first on PATH when the project
  asks for one (`platform_packages = toolchain-gccarmnoneeabi@...`, a registry or a local folder).
* Flags: the board manifest's `build.cpu`, `build.fpu`, `build.float_abi` (kwsgen's targets/*.toml).
* Startup, linker script, semihosting and newlib system calls: the project's `lib/kws_platform`
  (rendered by `kwsgen compile`); the linker script is `board_build.ldscript`.
* Targets: `pio run` builds `.pio/build/<env>/firmware.elf`; `pio run -t exec` (or `-t upload`)
  runs it on `qemu-system-arm -M <build.qemu_machine>` with semihosting on the console; the
  firmware's exit status (main's return value) becomes the target's result.
  Project options: `custom_qemu_timeout` (seconds, default 600), `custom_qemu_extra_args`
  (appended to the QEMU command line, e.g. a `-plugin` for instruction counts).
"""

import os
import shlex
import shutil
import subprocess
import sys

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment  # pylint: disable=import-error

env = DefaultEnvironment()
board = env.BoardConfig()
PREFIX = "arm-none-eabi-"


def _fail(message):
    sys.stderr.write("Error: kwsgen-qemu: %s\n" % message)
    env.Exit(1)


if shutil.which(PREFIX + "gcc", path=env["ENV"].get("PATH")) is None:
    _fail("%sgcc not found on PATH: install it (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi) "
          "or add `platform_packages = toolchain-gccarmnoneeabi` to platformio.ini" % PREFIX)

machine = [
    "-mcpu=%s" % board.get("build.cpu"),
    "-mthumb",
    "-mfloat-abi=%s" % board.get("build.float_abi", "soft"),
]
if board.get("build.fpu", "none") != "none":
    machine.append("-mfpu=%s" % board.get("build.fpu"))

env.Replace(
    AR=PREFIX + "gcc-ar",
    AS=PREFIX + "as",
    CC=PREFIX + "gcc",
    CXX=PREFIX + "g++",
    GDB=PREFIX + "gdb",
    OBJCOPY=PREFIX + "objcopy",
    RANLIB=PREFIX + "gcc-ranlib",
    SIZETOOL=PREFIX + "size",
    ARFLAGS=["rc"],
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
    SIZEPROGREGEXP=r"^(?:\.text|\.rodata|\.data|\.ARM\.exidx|\.ARM\.extab)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.data|\.bss)\s+(\d+).*",
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
)
env.Append(
    ASFLAGS=machine,
    CCFLAGS=machine + ["-O2", "-g", "-ffunction-sections", "-fdata-sections"],
    CPPDEFINES=["KWSGEN_QEMU"],
    LINKFLAGS=machine + [
        "-nostartfiles",
        "--specs=nano.specs",
        "-Wl,--gc-sections",
        "-Wl,--no-warn-rwx-segments",
        "-Wl,-Map,${BUILD_DIR}/firmware.map",
    ],
    LIBS=["c", "m", "gcc"],
)

ldscript = board.get("build.ldscript", "")
if not ldscript:
    _fail("no linker script: set `board_build.ldscript` (kwsgen compile renders lib/kws_platform/kws_link.ld)")
if not os.path.isabs(ldscript):
    ldscript = os.path.join(env.subst("$PROJECT_DIR"), ldscript)
if not os.path.isfile(ldscript):
    _fail("linker script %s not found" % ldscript)
env.Replace(LDSCRIPT_PATH=ldscript)

target_elf = env.BuildProgram()
target_size = env.AddPlatformTarget(
    "size", target_elf, env.VerboseAction("$SIZEPRINTCMD", "Calculating size $SOURCE"), "Program Size",
    "Calculate program size")


def qemu_command(elf):
    """The same command line as kwsgen.emulator: semihosting console on stdout, no display."""
    qemu = shutil.which("qemu-system-arm", path=env["ENV"].get("PATH"))
    if qemu is None:
        return None
    cmd = [qemu, "-M", board.get("build.qemu_machine"), "-nographic", "-monitor", "none", "-serial", "none",
           "-chardev", "stdio,id=c0", "-semihosting-config", "enable=on,target=native,chardev=c0,arg=firmware",
           "-kernel", elf]
    extra = env.GetProjectOption("custom_qemu_extra_args", "")
    return cmd + shlex.split(extra)


def run_in_qemu(target, source, env):  # pylint: disable=unused-argument,redefined-outer-name
    cmd = qemu_command(str(source[0]))
    if cmd is None:
        sys.stderr.write("Error: kwsgen-qemu: qemu-system-arm not found on PATH (apt-get install qemu-system-arm)\n")
        return 1
    timeout = float(env.GetProjectOption("custom_qemu_timeout", "600"))
    sys.stdout.flush()
    try:
        code = subprocess.run(cmd, stdin=subprocess.DEVNULL, timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        sys.stderr.write("Error: kwsgen-qemu: the firmware did not finish within %g s (custom_qemu_timeout)\n" % timeout)
        return 1
    if code != 0:
        sys.stderr.write("Error: kwsgen-qemu: the firmware exited with status %d\n" % code)
    return code


run_action = env.VerboseAction(run_in_qemu, "Running $SOURCE on QEMU %s" % board.get("build.qemu_machine"))
env.AddPlatformTarget("exec", target_elf, run_action, "Execute", "Run the firmware under QEMU")
env.AddPlatformTarget("upload", target_elf, run_action, "Upload", "Run the firmware under QEMU")

AlwaysBuild(env.Alias("nobuild", target_elf))
Default([target_elf, target_size])
