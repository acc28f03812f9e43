"""Precision and recall of the streaming keyword detector against the words spoken in a long labelled stream.

    python benchmarks/detect_accuracy.py [--model M.tflite --labels a,b,... --frontend PRESET]
                                         [--words 150] [--seed 0] [--every 2] [--threshold T] [--window-ms W]
                                         [--suppression-ms S] [--min-count C] [--tolerance-ms 1000]
                                         [--sweep 80,100,...] [--json]

Default model: ../shared/models/arm-ds-cnn/ds_cnn_s_quantized.tflite with the ds-cnn-mfcc preset and the
DS-CNN labels. For the example model: --model examples/kws_example/kws_ds_cnn.tflite
--labels examples/kws_example/labels.txt (it uses the ds-cnn-mfcc front end too).

The stream (deterministic for a seed): keywords synthesised with espeak-ng in several voices, speeds, pitches
and loudnesses, some over background noise; non-keywords from Speech Commands' "unknown" words; the shared
yes/no clips; gaps of 1.6-2.4 s of silence, the shared silence/noise clips or quieter noise. Detections come
from kwsgen.detect (the bit-exact twin of the firmware) and are matched to spoken words: a detection of label
L counts if an unmatched word L started before it and ended at most --tolerance-ms before it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kwsgen.detect import DetectSettings, detect_trace, parse_labels  # noqa: E402
from kwsgen.detect_stream import (  # noqa: E402
    VOICES, Segment, Speaker, Utterance, compose, mix_noise, read_wav16, scaled, score, silence, trim,
)
from kwsgen.frontend import resolve_config  # noqa: E402
from kwsgen.legalize import load_model  # noqa: E402

SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))
DS_CNN = SHARED / "models" / "arm-ds-cnn" / "ds_cnn_s_quantized.tflite"
DS_LABELS = "silence,unknown,yes,no,up,down,left,right,on,off,stop,go"
UNKNOWN_WORDS = ("house", "bird", "cat", "dog", "bed", "tree", "happy", "wow", "seven", "marvin", "sheila", "learn")


def build_stream(keywords: list[str], n_words: int, seed: int, rate: int) -> tuple[np.ndarray, list]:
    """A labelled stream: n_words spoken words (80 % keywords), every one followed by a gap."""
    rng = np.random.default_rng(seed)
    speaker = Speaker(rate)
    noise = read_wav16(SHARED / "audio" / "noise_1000ms.wav", rate)
    clip_silence = read_wav16(SHARED / "audio" / "silence_1000ms.wav", rate)
    clips = {w: read_wav16(SHARED / "audio" / f"{w}_1000ms.wav", rate) for w in ("yes", "no")}
    segments = [silence(1000, rate)]
    for i in range(n_words):
        if i % 15 == 7 and set(clips) <= set(keywords) | set(clips):  # the real recordings, now and then
            word = ("yes", "no")[i // 15 % 2]
            audio, label = trim(clips[word], rate), word
        else:
            is_kw = rng.random() < 0.8
            word = str(rng.choice(keywords if is_kw else UNKNOWN_WORDS))
            u = Utterance(word, str(rng.choice(VOICES)), int(rng.integers(130, 201)), int(rng.integers(30, 71)))
            audio = scaled(speaker.say(u), float(rng.uniform(0.3, 1.0)))
            if rng.random() < 0.3:  # speech over background noise
                audio = mix_noise(audio, noise, float(rng.uniform(0.1, 0.4)), int(rng.integers(len(noise))))
            label = word if is_kw else "unknown"
        segments.append(Segment(audio, label))
        gap_ms = int(rng.integers(1600, 2401))
        kind = rng.random()
        gap = silence(gap_ms, rate).audio
        if kind < 0.35:
            gap = mix_noise(gap, noise, float(rng.uniform(0.05, 0.5)), int(rng.integers(len(noise))))
        elif kind < 0.5:
            gap = np.resize(clip_silence, len(gap))
        segments.append(Segment(gap))
    return compose(segments, rate)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DS_CNN))
    ap.add_argument("--labels", default=DS_LABELS, help="comma-separated, or a file with one label per line")
    ap.add_argument("--frontend", default="ds-cnn-mfcc")
    ap.add_argument("--words", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=None, help="inference every N hops")
    ap.add_argument("--threshold", type=int, default=None)
    ap.add_argument("--window-ms", type=int, default=None)
    ap.add_argument("--suppression-ms", type=int, default=None)
    ap.add_argument("--min-count", type=int, default=None)
    ap.add_argument("--tolerance-ms", type=int, default=1000)
    ap.add_argument("--sweep", help="comma-separated thresholds: one row of overall figures each")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    model = load_model(args.model)
    cfg = resolve_config(args.frontend)
    labels = parse_labels(Path(args.labels).read_text().split() if Path(args.labels).is_file() else args.labels)
    base = DetectSettings()
    settings = replace(base, **{k: v for k, v in dict(
        every_hops=args.every, threshold=args.threshold, average_window_ms=args.window_ms,
        suppression_ms=args.suppression_ms, minimum_count=args.min_count).items() if v is not None})
    keywords = [x for x in labels if x not in settings.ignore]

    t0 = time.time()
    audio, words = build_stream(keywords, args.words, args.seed, cfg.sample_rate)
    t1 = time.time()
    trace = detect_trace(model, audio, cfg, labels, settings)
    t2 = time.time()
    spoken_kw = sum(1 for w in words if w.label in keywords)
    print(f"model {Path(args.model).name}, front end {cfg.name}; stream {len(audio) / cfg.sample_rate:.0f} s, "
          f"{len(words)} words ({spoken_kw} keywords), seed {args.seed}; {len(trace.times_ms)} inferences "
          f"(synthesis {t1 - t0:.1f} s, detection {t2 - t1:.1f} s)", file=sys.stderr)

    def row(s: DetectSettings) -> list:
        rec = trace.recognitions if s == settings else None
        dets = trace.detections if rec is not None else detect_from_scores(trace, labels, cfg, s)
        return score(dets, words, keywords, args.tolerance_ms)

    if args.sweep:
        print(f"{'threshold':>9} {'precision':>9} {'recall':>7} {'detections':>10}")
        for thr in (int(x) for x in args.sweep.split(",")):
            overall = row(replace(settings, threshold=thr))[-1]
            print(f"{thr:>9} {overall.precision:9.3f} {overall.recall:7.3f} {overall.detected:>10}")
        return 0
    rows = row(settings)
    if args.json:
        print(json.dumps({"model": Path(args.model).name, "frontend": cfg.name, "settings": settings.__dict__,
                          "stream_s": len(audio) / cfg.sample_rate, "labels": [
                              {"label": r.label, "spoken": r.spoken, "detected": r.detected, "tp": r.true_positives,
                               "precision": r.precision, "recall": r.recall} for r in rows]}, default=list))
        return 0
    print(f"settings: every {settings.every_hops} hops, window {settings.average_window_ms} ms, threshold "
          f"{settings.threshold}, suppression {settings.suppression_ms} ms, minimum count {settings.minimum_count}; "
          f"tolerance {args.tolerance_ms} ms")
    print(f"{'label':>8} {'spoken':>6} {'detected':>8} {'correct':>7} {'precision':>9} {'recall':>6}")
    for r in rows:
        print(f"{r.label:>8} {r.spoken:>6} {r.detected:>8} {r.true_positives:>7} {r.precision:9.3f} {r.recall:6.3f}")
    return 0


def detect_from_scores(trace, labels, cfg, settings: DetectSettings) -> list:
    """Re-run only the smoothing/trigger step on the twin's scores (same schedule) with other settings."""
    from kwsgen.detect import Detection, queue_capacity, recognize

    rec = recognize(trace.times_ms, trace.scores, settings, queue_capacity(cfg, settings))
    return [Detection(int(trace.times_ms[k]), labels[int(rec.label[k])], int(rec.score[k]))
            for k in np.flatnonzero(rec.new) if labels[int(rec.label[k])] not in settings.ignore]


if __name__ == "__main__":
    sys.exit(main())
