"""Instructions per 20 ms hop of the fixed-point front end vs a float MFCC built with the FPU.

    python benchmarks/frontend_cost.py [--boards mps2_an386,mps3_an547] [--seconds 10] [--json]

Both run the same harness (templates/frontend/kws_frontend_main.c.j2) on the same audio under
QEMU; kwsgen's instruction-count plugin counts the `hop` region around every kws_frontend_push
(one new frame per hop once the first window is full). The float baseline
(templates/frontend/kws_mfcc_float.c.j2) follows Arm's KWS examples: float window and real FFT
(the same radix-2 structure), sqrtf, float mel weights, logf, float DCT, built with the board's
hard-float ABI. Each run is also checked: the fixed-point output bit-exact against the twin, the
float output against TF's float features quantized the same way. QEMU counts instructions, not
cycles (a 64-bit multiply-accumulate counts 1, like a VFP multiply).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.io import wavfile

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kwsgen import toolchain  # noqa: E402
from kwsgen.emulator import MARKER_OVERHEAD, run_qemu  # noqa: E402
from kwsgen.frontend import PRESETS, mfcc_float, mfcc_int8, quantize_float, stream_frames  # noqa: E402
from kwsgen.frontend.api import PEDANTIC, parse_output, write_clips  # noqa: E402
from kwsgen.frontend.codegen import Quantization, render_float_baseline, render_frontend, render_harness  # noqa: E402
from kwsgen.frontend.signals import random_clips  # noqa: E402
from kwsgen.targets import load_board  # noqa: E402

SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))
BOARDS = ("mps2_an386", "mps3_an547")


def stream_audio(seconds: int) -> np.ndarray:
    """Speech first (the shared clips), then speech-like random clips: one int16 stream."""
    shared = [wavfile.read(SHARED / "audio" / f"{n}_1000ms.wav")[1] for n in ("yes", "no", "noise", "silence")]
    extra = list(random_clips(max(0, seconds - len(shared)), seed=77))
    return np.concatenate(shared + extra)[: seconds * 16000].astype(np.int16)


def front_end_bytes(board, work: Path) -> int:
    """Flash of the front end alone: .text + .rodata of kws_frontend.o."""
    obj = toolchain.compile_objects(board, [work / "kws_frontend.c"], [work], {}, work / "obj", extra_cflags=PEDANTIC)[0]
    return sum(s.size for s in toolchain.read_sections(obj) if s.name.startswith((".text", ".rodata")))


def measure(board, files: dict[str, str], audio: np.ndarray, work: Path) -> tuple[dict, object]:
    work.mkdir(parents=True, exist_ok=True)
    for name, text in {**files, **render_harness("semihost")}.items():
        (work / name).write_text(text)
    sources = sorted(work.glob("*.c"))
    elf = toolchain.build_firmware(board, sources, [work], {"KWS_FE_MAX_SAMPLES": audio.size}, work, extra_cflags=PEDANTIC)
    write_clips(work / "clips.bin", audio[None])
    run = run_qemu(board, elf, args=("clips.bin", "features.bin"), cwd=work, timeout=600, regions=("hop",))
    if run.exit_code != 0:
        raise SystemExit(f"{board.name}: harness failed (exit {run.exit_code}): {run.stderr[-500:]!r}")
    out = parse_output((work / "features.bin").read_bytes(), 1, audio.size, PRESETS["ds-cnn-mfcc"])
    hops = run.region_entries["hop"]
    per_hop = (run.instructions["hop"] - MARKER_OVERHEAD * hops) / hops
    return {"instructions_per_hop": per_hop, "hops": hops, "frontend_flash_bytes": front_end_bytes(board, work)}, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--boards", default=",".join(BOARDS))
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    cfg = PRESETS["ds-cnn-mfcc"]
    quant = Quantization(cfg.default_input_scale, cfg.default_input_zero_point)
    audio = stream_audio(args.seconds)
    want = stream_frames(audio, cfg)
    ref_codes = quantize_float(mfcc_float(audio, cfg), quant.scale, quant.zero_point)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kwsgen-fe-cost-") as tmp:
        for name in args.boards.split(","):
            board = load_board(name)
            fixed, out = measure(board, render_frontend(cfg, quant), audio, Path(tmp) / name / "fixed")
            if not (np.array_equal(out.stream[0], want) and np.array_equal(out.clip[0], mfcc_int8(audio, cfg))):
                raise SystemExit(f"{name}: fixed-point firmware output differs from the twin")
            flt, fout = measure(board, render_float_baseline(cfg, quant), audio, Path(tmp) / name / "float")
            rows.append({
                "board": name, "cpu": board.cpu, "hops": fixed["hops"],
                "fixed_instructions_per_hop": round(fixed["instructions_per_hop"]),
                "float_instructions_per_hop": round(flt["instructions_per_hop"]),
                "ratio_fixed_over_float": fixed["instructions_per_hop"] / flt["instructions_per_hop"],
                "fixed_flash_bytes": fixed["frontend_flash_bytes"], "float_flash_bytes": flt["frontend_flash_bytes"],
                "float_codes_differing_from_tf": int(np.count_nonzero(fout.clip[0] != ref_codes)), "codes": int(ref_codes.size),
            })
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"ds-cnn-mfcc, {args.seconds} s stream, instructions per 20 ms hop (QEMU count, average over every hop)")
    print(f"{'board':12s} {'cpu':11s} {'fixed':>9s} {'float+FPU':>10s} {'fixed/float':>11s} {'flash fixed':>12s} {'flash float':>12s}")
    for r in rows:
        print(f"{r['board']:12s} {r['cpu']:11s} {r['fixed_instructions_per_hop']:9,d} {r['float_instructions_per_hop']:10,d} "
              f"{r['ratio_fixed_over_float']:11.2f} {r['fixed_flash_bytes']:12,d} {r['float_flash_bytes']:12,d}")
    for r in rows:
        print(f"  {r['board']}: fixed output bit-exact with the twin; float baseline: {r['float_codes_differing_from_tf']} of "
              f"{r['codes']} int8 codes differ from TF's float features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
