"""Emulated Cortex-M matrix: bit-exactness and cost per board, model and kernel backend (issues 4, 5).

For every (board, model, kernels) runs `kwsgen verify -n N` under QEMU and prints mismatches,
instructions per inference, flash and RAM. CMSIS-NN columns need CMSIS_NN_PATH (v7.0.0).

    python benchmarks/targets.py                       # cost table: ds_cnn_s/l, micro_speech on M4 and M55
    python benchmarks/targets.py --all -n 200          # the full matrix: 5 boards x (shared + fixture models)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from kwsgen.errors import KwsgenError
from kwsgen.legalize import load_model
from kwsgen.verify import verify

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))
EMULATED = ["mps2_an385", "mps2_an386", "mps2_an500", "mps2_an505", "mps3_an547"]
COST_MODELS = [SHARED / "models" / "arm-ds-cnn" / "ds_cnn_s_quantized.tflite",
               SHARED / "models" / "arm-ds-cnn" / "ds_cnn_l_quantized.tflite",
               SHARED / "models" / "tflm-micro-speech" / "micro_speech_quantized.tflite"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="every emulated board and every fixture model")
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--boards", nargs="*")
    ap.add_argument("--kernels", nargs="*", default=None, help="portable and/or cmsis-nn (default: both if CMSIS_NN_PATH)")
    args = ap.parse_args()
    boards = args.boards or (EMULATED if args.all else ["mps2_an386", "mps3_an547"])
    models = COST_MODELS + (sorted((REPO / "tests" / "fixtures" / "models").glob("*.tflite")) if args.all else [])
    kernels = args.kernels or (["portable", "cmsis-nn"] if os.environ.get("CMSIS_NN_PATH") else ["portable"])
    print(f"{'board':12s} {'model':24s} {'kernels':9s} {'inputs':>6s} {'mismatch':>8s} {'instr/inference':>16s} "
          f"{'flash B':>9s} {'RAM B':>8s} {'arena B':>8s} {'time s':>7s}")
    failures = 0
    for board in boards:
        for path in models:
            model = load_model(path)
            for k in kernels:
                t0 = time.perf_counter()
                try:
                    r = verify(model, board=board, kernels=k, n=args.n, source_bytes=path.read_bytes())
                except KwsgenError as e:
                    print(f"{board:12s} {path.stem[:24]:24s} {k:9s} error: {e.one_line()}")
                    failures += 1
                    continue
                failures += not r.ok
                print(f"{board:12s} {path.stem.replace('_quantized', '')[:24]:24s} {k:9s} {r.inputs:>6d} {r.mismatches:>8d} "
                      f"{r.instructions_per_inference:>16,} {r.flash_bytes:>9,} {r.ram_bytes:>8,} {r.arena_bytes:>8,} "
                      f"{time.perf_counter() - t0:>7.1f}", flush=True)
    print(f"{failures} failing run(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
