"""Fidelity of the fixed-point MFCC to TensorFlow's float MFCC, in features and in decisions.

    python benchmarks/frontend_fidelity.py [--voices en-us,en,...] [--speeds 150,190] [--json]

Clips: ../shared/audio (yes, no, silence, noise) and the 10 keywords synthesised offline with
espeak-ng + sox in several voices and speeds (needs both tools). Reports
  1. feature error of the integer pipeline vs the float reference (checked against TF in
     tests/test_frontend_reference.py), mean and max absolute per coefficient, before the int8 step,
     and how many int8 codes differ from TF's float features quantized by the model's QUANTIZE;
  2. the class ds_cnn_s/m/l pick with float features (the full float-I/O model, its QUANTIZE
     included) and with the front end's int8 features (straight into the int8 core), through
     kwsgen's reference interpreter (or the TFLM interpreter while kwsgen cannot load the model).
Goal: identical decisions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import wavfile

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kwsgen.errors import UnsupportedModelError  # noqa: E402
from kwsgen.frontend import PRESETS, mfcc_float, mfcc_int8, model_input_quant, quantize_float  # noqa: E402
from kwsgen.frontend.fixed import mfcc_fixed_float  # noqa: E402

SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))
LABELS = ("silence", "unknown", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
VOICES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029")
SPEEDS = (150, 190)


@dataclass(frozen=True)
class Clip:
    name: str
    audio: np.ndarray  # int16 [16000]
    label: str | None  # the word spoken, None for noise


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        sys.exit(f"{name} is not installed (apt-get install espeak-ng sox)")
    return path


def synthesise(words: tuple[str, ...], voices: tuple[str, ...], speeds: tuple[int, ...], work: Path) -> list[Clip]:
    """espeak-ng -> 16 kHz mono 16-bit, 0.2 s lead-in, cut or padded to 1 s. sox dithers the
    resampled audio with a random seed unless run with -R (repeatable), which keeps the figures stable."""
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    clips = []
    for voice in voices:
        for speed in speeds:
            for word in words:
                raw, out = work / "w.wav", work / f"{voice}_{speed}_{word}.wav"
                subprocess.run([espeak, "-v", voice, "-s", str(speed), "-w", str(raw), word], check=True, capture_output=True)
                subprocess.run([sox, "-R", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", "0.2", "0", "trim", "0", "1"],
                               check=True, capture_output=True)
                audio = wavfile.read(out)[1]
                audio = np.pad(audio, (0, max(0, 16000 - audio.shape[0])))[:16000]
                clips.append(Clip(f"{voice}/{speed}/{word}", audio.astype(np.int16), word))
    return clips


def shared_clips() -> list[Clip]:
    expected = {"yes": "yes", "no": "no", "silence": "silence", "noise": None}
    return [Clip(f"shared/{n}", wavfile.read(SHARED / "audio" / f"{n}_1000ms.wav")[1], label) for n, label in expected.items()]


class Classifier:
    """Top-1 of a DS-CNN for float features (full model) and for int8 features (int8 core)."""

    def __init__(self, path: Path):
        from kwsgen.legalize import load_model

        self.path = path
        self.quant = model_input_quant(path, PRESETS["ds-cnn-mfcc"])
        try:
            self.model = load_model(path)
            self.engine = "kwsgen reference interpreter"
        except UnsupportedModelError:
            from tflite_micro import runtime

            self.model = None
            self.tflm = runtime.Interpreter.from_file(str(path))
            self.engine = "TFLM interpreter"

    def _tflm(self, x: np.ndarray) -> np.ndarray:
        outs = []
        for row in x:
            self.tflm.set_input(row[None].astype(np.float32), 0)
            self.tflm.invoke()
            outs.append(np.asarray(self.tflm.get_output(0)).reshape(-1))
        return np.argmax(np.array(outs), axis=1)

    def float_path(self, features: np.ndarray) -> np.ndarray:
        x = features.reshape(features.shape[0], -1).astype(np.float32)
        if self.model is None:
            return self._tflm(x)
        from kwsgen.interpreter import run

        return np.argmax(run(self.model, [x]).outputs[0].reshape(x.shape[0], -1), axis=1)

    def int8_path(self, codes: np.ndarray) -> np.ndarray:
        q = codes.reshape(codes.shape[0], -1)
        if self.model is None:  # TFLM runs the whole model: its QUANTIZE maps s * (q - zp) back to exactly q
            deq = (q.astype(np.float32) - np.float32(self.quant.zero_point)) * np.float32(self.quant.scale)
            assert np.array_equal(quantize_float(deq, self.quant.scale, self.quant.zero_point), q)
            return self._tflm(deq)
        from kwsgen.interpreter import run

        return np.argmax(run(self.model, [q], core_only=True).outputs[0].reshape(q.shape[0], -1), axis=1)


def feature_report(audio: np.ndarray, scale: float, zero_point: int) -> dict:
    cfg = PRESETS["ds-cnn-mfcc"]
    ref = mfcc_float(audio, cfg)
    err = np.abs(mfcc_fixed_float(audio, cfg) - ref).reshape(-1, cfg.num_coefficients)
    codes = mfcc_int8(audio, cfg, scale, zero_point)
    code_diff = codes.astype(int) - quantize_float(ref, scale, zero_point).astype(int)
    return {
        "frames": int(err.shape[0]),
        "mean_abs_per_coeff": [float(v) for v in err.mean(axis=0)],
        "max_abs_per_coeff": [float(v) for v in err.max(axis=0)],
        "mean_abs": float(err.mean()), "max_abs": float(err.max()),
        "int8_codes_differing": int(np.count_nonzero(code_diff)), "int8_codes": int(code_diff.size),
        "int8_max_code_difference": int(np.abs(code_diff).max(initial=0)),
    }


def decision_report(clips: list[Clip], audio: np.ndarray) -> dict:
    cfg = PRESETS["ds-cnn-mfcc"]
    float_feats = mfcc_float(audio, cfg)
    report = {}
    for size in "sml":
        clf = Classifier(SHARED / "models" / "arm-ds-cnn" / f"ds_cnn_{size}_quantized.tflite")
        codes = mfcc_int8(audio, cfg, clf.quant.scale, clf.quant.zero_point)
        f_top, q_top = clf.float_path(float_feats), clf.int8_path(codes)
        labelled = [i for i, c in enumerate(clips) if c.label is not None]
        truth = np.array([LABELS.index(clips[i].label) for i in labelled])
        report[f"ds_cnn_{size}"] = {
            "engine": clf.engine,
            "agree": int(np.sum(f_top == q_top)), "clips": len(clips),
            "disagreements": [f"{clips[i].name}: float {LABELS[f_top[i]]}, fixed {LABELS[q_top[i]]}" for i in np.flatnonzero(f_top != q_top)],
            "correct_float": int(np.sum(f_top[labelled] == truth)), "correct_fixed": int(np.sum(q_top[labelled] == truth)),
            "labelled": len(labelled),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--voices", default=",".join(VOICES))
    p.add_argument("--speeds", default=",".join(map(str, SPEEDS)))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kwsgen-espeak-") as tmp:
        words = synthesise(KEYWORDS, tuple(args.voices.split(",")), tuple(int(s) for s in args.speeds.split(",")), Path(tmp))
    clips = shared_clips() + words
    audio = np.stack([c.audio for c in clips])
    quant = model_input_quant(SHARED / "models" / "arm-ds-cnn" / "ds_cnn_s_quantized.tflite", PRESETS["ds-cnn-mfcc"])
    result = {"clips": len(clips), "espeak_words": len(words), "features": feature_report(audio, quant.scale, quant.zero_point),
              "decisions": decision_report(clips, audio)}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    f = result["features"]
    print(f"{len(clips)} clips ({len(words)} espeak-ng words, 4 shared), {f['frames']} frames, ds-cnn-mfcc")
    print("feature error of the fixed-point MFCC vs TF's float MFCC (before the int8 step):")
    print("  coeff " + " ".join(f"{k:>8d}" for k in range(len(f["mean_abs_per_coeff"]))))
    print("  mean  " + " ".join(f"{v:8.1e}" for v in f["mean_abs_per_coeff"]))
    print("  max   " + " ".join(f"{v:8.1e}" for v in f["max_abs_per_coeff"]))
    print(f"  overall mean {f['mean_abs']:.2e}, max {f['max_abs']:.2e}; int8 codes differing from quantized float features: "
          f"{f['int8_codes_differing']} of {f['int8_codes']} (max difference {f['int8_max_code_difference']})")
    print("decisions (top-1), float features through the float model vs int8 features into the int8 core:")
    for name, d in result["decisions"].items():
        print(f"  {name}: identical {d['agree']}/{d['clips']}; correct float {d['correct_float']}/{d['labelled']}, "
              f"fixed {d['correct_fixed']}/{d['labelled']} ({d['engine']})")
        for line in d["disagreements"]:
            print(f"      differs: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
