"""How fast the NumPy twin computes the device's features (clips per second), for training pipelines.

    python benchmarks/frontend_throughput.py [--clips 400] [--repeat 3]

Times mfcc_int8 (the bit-exact twin, all clips and frames vectorised) and, for scale, the float
reference mfcc_float, on 1 s random clips; best of --repeat runs, single process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kwsgen.frontend import PRESETS, FrontendStream, mfcc_float, mfcc_int8  # noqa: E402
from kwsgen.frontend.signals import random_clips  # noqa: E402


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=400)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    clips = random_clips(args.clips, seed=1)
    for name in ("ds-cnn-mfcc", "micronet-mfcc"):
        cfg = PRESETS[name]
        mfcc_int8(clips[:2], cfg)  # tables
        t_fixed = best_of(args.repeat, lambda: mfcc_int8(clips, cfg))
        t_float = best_of(args.repeat, lambda: mfcc_float(clips, cfg))
        stream = FrontendStream(cfg)
        hops = [clips[0][i * cfg.stride:(i + 1) * cfg.stride] for i in range(clips.shape[1] // cfg.stride)]
        t_stream = best_of(args.repeat, lambda: [stream.push(h) for h in hops])
        print(f"{name}: twin mfcc_int8 {args.clips / t_fixed:7.0f} clips/s ({args.clips * cfg.num_frames / t_fixed:9.0f} frames/s); "
              f"float reference {args.clips / t_float:7.0f} clips/s; streaming twin {len(hops) / t_stream:5.0f} hops/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
