"""Arena sizes: kwsgen's static plan vs TFLM's minimum arena (issue 3).

For every shared model and fixture model: TFLM's minimum arena (bisected with tflite-micro, one
probe process per size), kwsgen's arena, the lower bound (largest total of live activations at one
step), scratch included in kwsgen's arena, and weight bytes.

    python benchmarks/arena.py [--kernels portable|cmsis-nn] [--isa scalar|dsp|mve] [--no-tflm] [MODEL ...]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kwsgen.errors import KwsgenError
from kwsgen.legalize import load_model
from kwsgen.ops import EmitTarget
from kwsgen.planner import plan

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))


def default_models() -> list[Path]:
    shared = [SHARED / "models" / "arm-ds-cnn" / f"ds_cnn_{s}_quantized.tflite" for s in "sml"]
    shared.append(SHARED / "models" / "tflm-micro-speech" / "micro_speech_quantized.tflite")
    return shared + sorted((REPO / "tests" / "fixtures" / "models").glob("*.tflite"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--kernels", default="portable", choices=["portable", "cmsis-nn"])
    ap.add_argument("--isa", default="dsp", choices=["scalar", "dsp", "mve"])
    ap.add_argument("--no-tflm", action="store_true", help="skip the (slow) TFLM bisection")
    args = ap.parse_args()
    target = EmitTarget(args.kernels, args.isa)
    header = f"{'model':32s} {'TFLM min':>10s} {'kwsgen':>9s} {'bound':>9s} {'scratch':>8s} {'weights':>9s} {'vs TFLM':>8s} {'strategy'}"
    print(f"kernels {target.kernels}, isa {target.isa}; bytes")
    print(header)
    for path in args.models or default_models():
        try:
            model = load_model(path)
        except KwsgenError as e:
            print(f"{path.name:32s} not compilable: {e.one_line()[:80]}")
            continue
        p = plan(model, target)
        scratch = sum(b.size for b in p.buffers if b.scratch_of is not None)
        weights = sum(model.graph.tensors[t].nbytes for layer in model.core_layers for t in layer.op.inputs
                      if t >= 0 and model.graph.tensors[t].is_const)
        tflm = None
        if not args.no_tflm:
            from kwsgen.testing.oracle import tflm_min_arena

            tflm = tflm_min_arena(path.read_bytes())
        ratio = f"{100 * p.arena_bytes / tflm:.0f}%" if tflm else "-"
        print(f"{path.name:32s} {tflm if tflm else '-':>10} {p.arena_bytes:>9,} {p.lower_bound_bytes:>9,} {scratch:>8,} "
              f"{weights:>9,} {ratio:>8s} {p.strategy}")


if __name__ == "__main__":
    main()
