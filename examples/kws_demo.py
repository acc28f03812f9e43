"""The worked example, end to end: spoken keywords in, detections out, on an emulated Cortex-M4.

1. Synthesise a stream (~25 s) of keywords with espeak-ng, between the shared yes/no/silence/noise clips.
2. `kwsgen compile` the example model (examples/kws_example) for mps2_an386 as a complete keyword-spotting
   PlatformIO project (--frontend ds-cnn-mfcc --labels ... --audio stream.wav).
3. Build it with a real `pio run` (offline: kwsgen's own local platform) and run it under QEMU.
4. Print the firmware's detections next to the words spoken, check they equal `kwsgen detect`'s (the
   bit-exact Python twin), and report precision and recall.
5. Compile the same example for the real board nucleo_f746zg and cross-compile it (no hardware here).

    python3 examples/kws_demo.py [--out DIR] [--seconds 25] [--kernels portable|cmsis-nn]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from scipy.io import wavfile

from kwsgen.cli import main as kwsgen
from kwsgen.detect import detect, parse_labels
from kwsgen.detect_stream import demo_stream, score
from kwsgen.frontend import resolve_config
from kwsgen.legalize import load_model
from kwsgen.platformio import cross_compile_check, prepare_offline_core, run_pio
from kwsgen.targets import load_board

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODEL = HERE / "kws_example" / "kws_ds_cnn.tflite"
LABELS = ",".join((HERE / "kws_example" / "labels.txt").read_text().split())
SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(argv: list[str]) -> None:
    print("$ kwsgen " + " ".join(argv), flush=True)
    code = kwsgen(argv)
    if code != 0:
        sys.exit(code)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "out" / "kws_demo")
    ap.add_argument("--seconds", type=int, default=25)
    ap.add_argument("--kernels", default="cmsis-nn" if os.environ.get("CMSIS_NN_PATH") else "portable")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    labels = parse_labels(LABELS)
    keywords = [x for x in labels if x not in ("silence", "unknown")]

    step(f"synthesising a {args.seconds} s stream of keywords (espeak-ng + the shared clips)")
    audio, words = demo_stream(SHARED / "audio", seconds=args.seconds, seed=1, keywords=keywords)
    stream = out / "stream.wav"
    wavfile.write(stream, 16000, audio)
    print(f"{stream}: {len(audio) / 16000:.1f} s, spoken: " + ", ".join(f"{w.label}@{w.start_ms}ms" for w in words))

    step("compiling the example model as a keyword spotter for mps2_an386 (Cortex-M4)")
    project = out / "kws_mps2_an386"
    run(["inspect", str(MODEL)])
    run(["compile", str(MODEL), "--board", "mps2_an386", "--kernels", args.kernels, "--frontend", "ds-cnn-mfcc",
         "--labels", LABELS, "--audio", str(stream), "-o", str(project), "--force"])
    run(["verify", str(MODEL), "--board", "mps2_an386", "--kernels", args.kernels, "-n", "20"])

    step("building the PlatformIO project offline and running it under QEMU (pio run -t exec)")
    core = prepare_offline_core(out / "platformio-core")
    result = run_pio(project, ["-t", "exec"], core)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:])
        return 1
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    firmware = [r for r in rows if "summary" not in r]
    for r in rows:
        print(json.dumps(r))

    step("the same stream through the bit-exact Python twin (kwsgen detect)")
    found = detect(load_model(MODEL), audio, resolve_config("ds-cnn-mfcc"), labels)
    twin = [{"t_ms": d.t_ms, "label": d.label, "score": d.score} for d in found]
    same = twin == firmware
    print(f"firmware and twin agree: {same} ({len(firmware)} detections)")
    for s in score(found, words, keywords):
        if s.label == "overall":
            print(f"precision {s.precision:.3f}, recall {s.recall:.3f} ({s.true_positives} correct of {s.detected} detected, "
                  f"{s.spoken} keywords spoken)")

    step("the same example for the real board nucleo_f746zg (Cortex-M7): render and cross-compile")
    nucleo = out / "kws_nucleo_f746zg"
    run(["compile", str(MODEL), "--board", "nucleo_f746zg", "--kernels", args.kernels, "--frontend", "ds-cnn-mfcc",
         "--labels", LABELS, "-o", str(nucleo), "--force"])
    objects = cross_compile_check(nucleo, load_board("nucleo_f746zg"), out / "nucleo-objects")
    print(f"{len(objects)} objects compiled for cortex-m7 with -Werror; flash it with `pio run -d {nucleo} -t upload`")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
