"""Synthesise the example's keyword data set offline and compute the device's exact features.

espeak-ng speaks every word in many voices (accent + voice variant), speeds and pitches; sox
resamples it to 16 kHz (`-R`: repeatable) and colours it with a random microphone and room
(band limits, an equalizer band, reverb). Each word is trimmed, placed at a random offset in a
1 s window at a random level, and mixed with background noise (the shared recorded noise clip,
white, pink, brown or mains hum) at a random SNR. "silence" clips are noise alone, "unknown"
clips are other English words. Features come from `kwsgen.frontend.mfcc_int8`, the bit-exact
twin of the generated C front end, quantized into the model's input quantization (common.py),
so training sees exactly what the device computes.

The test split uses voice variants, accents and speeds that the training split never uses.
Everything is seeded: the same command gives the same files.

    python examples/kws_example/make_dataset.py [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLIP_SAMPLES, FRONTEND, INPUT_SCALE, INPUT_ZERO_POINT, KEYWORDS, LABELS, SILENCE, UNKNOWN, cache_dir, shared_dir  # noqa: E402

RATE = FRONTEND.sample_rate

# Other English words: Speech Commands' auxiliary words (what ds_cnn_s learnt as "unknown") plus
# common words and a few near misses of the keywords. No homophones of keywords (know, write).
UNKNOWN_WORDS = (
    "bed bird cat dog happy house marvin sheila tree wow zero one two three four five six seven eight nine "
    "backward forward follow learn visual hello water yellow table window music paper open close start time "
    "again never morning today number money maybe please thanks computer coffee garden orange river kitchen "
    "answer little people doctor listen under over apple later sister letter bet cup town lift light top"
).split()

ACCENTS_TRAIN = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan")
ACCENTS_TEST = ACCENTS_TRAIN + ("en-us-nyc", "en-gb-x-gbcwmd")  # two accents only the test set hears
VARIANTS_TRAIN = (
    "", "m1", "m2", "m3", "m5", "m6", "m8", "f1", "f2", "f4", "Alex", "Andy", "Annie", "adam", "anika", "aunty",
    "boris", "caleb", "croak", "david", "ed", "edward", "grandma", "grandpa", "john", "klatt", "klatt3", "klatt4",
    "Lee", "linda", "max", "norbert", "paul", "quincy", "rob", "robert", "shelby", "steph", "travis", "victor", "zac",
    "Gene", "Jacky", "Marco", "Nguyen", "antonio", "iven", "kaukovalta", "marcelo", "sandro",
)
VARIANTS_TEST = ("m4", "m7", "f3", "f5", "Alicia", "Mike", "belinda", "benjamin", "edward2", "steph2", "klatt2",
                 "iven3", "Michael", "Diogo")
SPEEDS_TRAIN = (105, 125, 145, 165, 185, 210, 240)  # espeak-ng words per minute (default 175)
SPEEDS_TEST = (115, 135, 155, 175, 200, 225)  # none of them used in training
PITCH_RANGE = (20, 80)  # espeak-ng -p, 0..99
PUNCTUATION = ("", ".", "!", "?")  # changes espeak-ng's intonation

HIGHPASS_HZ, LOWPASS_HZ = (50.0, 300.0), (3500.0, 7800.0)
EQ_HZ, EQ_DB = (300.0, 3000.0), 8.0
REVERB_FRACTION, REVERBERANCE, ROOM_SCALE, PRE_DELAY_MS = 0.5, (10.0, 70.0), (20.0, 100.0), (0.0, 20.0)

NOISE_KINDS = ("recorded", "white", "pink", "brown", "hum")
SNR_DB = (5.0, 30.0)  # uniform; a QUIET_FRACTION of the word clips gets QUIET_SNR_DB instead
QUIET_FRACTION, QUIET_SNR_DB = 0.15, (40.0, 60.0)
PEAK_DBFS = (-30.0, -1.0)  # the word's peak level
SILENCE_RMS_DBFS = (-85.0, -30.0)  # the "silence" class: noise alone at this level
DIGITAL_SILENCE_FRACTION = 0.05  # silence clips that are exact zeros (how a stream starts)


@dataclass(frozen=True)
class Split:
    """One data set: which voices and speeds, how many utterances per class, how many noisy copies of each."""

    name: str
    accents: tuple[str, ...]
    variants: tuple[str, ...]
    speeds: tuple[int, ...]
    per_keyword: int  # utterances of each keyword
    unknown: int  # utterances of other words
    silence: int  # noise-only clips
    copies: int  # placements/noises of each utterance
    seed: int
    keep_audio: bool = False


SPLITS = (
    Split("train", ACCENTS_TRAIN, VARIANTS_TRAIN, SPEEDS_TRAIN, per_keyword=320, unknown=480, silence=640, copies=2, seed=1),
    Split("val", ACCENTS_TRAIN, VARIANTS_TRAIN, SPEEDS_TRAIN, per_keyword=40, unknown=60, silence=40, copies=1, seed=2),
    Split("test", ACCENTS_TEST, VARIANTS_TEST, SPEEDS_TEST, per_keyword=100, unknown=150, silence=100, copies=1, seed=3,
          keep_audio=True),
)


@dataclass(frozen=True)
class Job:
    """One utterance (or, with an empty text, noise only) and the seed of its copies' placement and noise."""

    label: int
    text: str
    voice: str
    speed: int
    pitch: int
    channel: tuple[str, ...]  # sox effects: microphone and room
    copies: int
    seed: int


def channel(rng: np.random.Generator) -> tuple[str, ...]:
    """A random microphone and room as sox effects: band limits, one EQ bump or notch, reverb for half the words."""
    fx = ["gain", "-12", "highpass", f"{rng.uniform(*HIGHPASS_HZ):.0f}", "lowpass", f"{rng.uniform(*LOWPASS_HZ):.0f}",
          "equalizer", f"{rng.uniform(*EQ_HZ):.0f}", "1q", f"{rng.uniform(-EQ_DB, EQ_DB):.1f}"]
    if rng.random() < REVERB_FRACTION:
        fx += ["reverb", f"{rng.uniform(*REVERBERANCE):.0f}", "50", f"{rng.uniform(*ROOM_SCALE):.0f}", "100",
               f"{rng.uniform(*PRE_DELAY_MS):.0f}"]
    return tuple(fx)


def plan(split: Split) -> list[Job]:
    rng = np.random.default_rng(split.seed)
    jobs: list[Job] = []

    def voice() -> str:
        accent, variant = split.accents[rng.integers(len(split.accents))], split.variants[rng.integers(len(split.variants))]
        return f"{accent}+{variant}" if variant else accent

    def utterance(label: int, word: str) -> Job:
        text = word + PUNCTUATION[rng.integers(len(PUNCTUATION))]
        return Job(label, text, voice(), int(rng.choice(split.speeds)), int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
                   channel(rng), split.copies, int(rng.integers(2**31)))

    for k, word in enumerate(KEYWORDS):
        jobs += [utterance(2 + k, word) for _ in range(split.per_keyword)]
    jobs += [utterance(UNKNOWN, UNKNOWN_WORDS[i % len(UNKNOWN_WORDS)]) for i in rng.permutation(split.unknown)]
    jobs += [Job(SILENCE, "", "", 0, 0, (), 1, int(rng.integers(2**31))) for _ in range(split.silence)]
    return jobs


# ------------------------------------------------------------------ audio


def _run(cmd: list[str], data: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, input=data, capture_output=True, check=False)
    except FileNotFoundError:
        raise RuntimeError(f"{cmd[0]} not found (apt-get install espeak-ng sox)") from None


def synthesise(job: Job) -> np.ndarray:
    """espeak-ng -> sox -R -> float samples at 16 kHz in [-1, 1)."""
    speak = _run(["espeak-ng", "-v", job.voice, "-s", str(job.speed), "-p", str(job.pitch), "--stdout", job.text])
    if speak.returncode != 0 or len(speak.stdout) < 100:
        raise RuntimeError(f"espeak-ng -v {job.voice} {job.text!r} failed: {speak.stderr.decode(errors='replace').strip()}")
    conv = _run(["sox", "-R", "-t", "wav", "-", "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16",
                 "-e", "signed-integer", "-", *job.channel], speak.stdout)
    if conv.returncode != 0:
        raise RuntimeError(f"sox failed: {conv.stderr.decode(errors='replace').strip()}")
    return np.frombuffer(conv.stdout, dtype="<i2").astype(np.float64) / 32768.0


def trim(x: np.ndarray, rel: float = 0.03, pad: int = 320) -> np.ndarray:
    """Cut espeak-ng's leading and trailing silence: keep where a 10 ms running peak exceeds rel * peak."""
    env = np.abs(x)
    env = np.lib.stride_tricks.sliding_window_view(np.pad(env, (80, 79)), 160).max(axis=1)
    on = np.flatnonzero(env > rel * env.max())
    return x[max(0, on[0] - pad): on[-1] + pad + 1]


def spectral_noise(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f^alpha power spectrum (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / f ** (alpha / 2), n)


def make_noise(kind: str, n: int, rng: np.random.Generator, recorded: np.ndarray) -> np.ndarray:
    """Unit-RMS background noise of one kind."""
    if kind == "recorded":
        x = np.roll(recorded, rng.integers(recorded.size)) * rng.choice((-1.0, 1.0))
        x = x[::-1] if rng.random() < 0.5 else x
        x = np.resize(x, n)
    elif kind == "hum":
        t = np.arange(n) / RATE
        f0 = rng.choice((50.0, 60.0)) * rng.uniform(0.995, 1.005)
        x = sum(rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi)) for h in range(1, 9))
        x = x / np.sqrt(np.mean(x**2)) + 0.03 * rng.standard_normal(n)
    else:
        x = spectral_noise(n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind], rng)
    x = x - x.mean()
    return x / np.sqrt(np.mean(x**2))


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def render(job: Job, recorded: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """The job's copies as int16 [copies, 16000] and what went into each."""
    rng = np.random.default_rng(job.seed)
    clips, meta = [], []
    if job.label == SILENCE:
        kind = NOISE_KINDS[rng.integers(len(NOISE_KINDS))]
        if rng.random() < DIGITAL_SILENCE_FRACTION:
            return np.zeros((1, CLIP_SAMPLES), np.int16), [{"noise": "digital", "snr_db": float("nan"), "level_dbfs": float("-inf")}]
        level = rng.uniform(*SILENCE_RMS_DBFS)
        x = make_noise(kind, CLIP_SAMPLES, rng, recorded) * 10 ** (level / 20)
        return to_int16(x)[None], [{"noise": kind, "snr_db": float("nan"), "level_dbfs": float(level)}]
    word = trim(synthesise(job))
    if word.size > CLIP_SAMPLES:  # only the slowest voices: keep the middle second
        start = (word.size - CLIP_SAMPLES) // 2
        word = word[start: start + CLIP_SAMPLES]
    for _ in range(job.copies):
        peak = rng.uniform(*PEAK_DBFS)
        w = word * (10 ** (peak / 20) / np.abs(word).max())
        offset = int(rng.integers(CLIP_SAMPLES - w.size + 1))
        x = np.zeros(CLIP_SAMPLES)
        x[offset: offset + w.size] = w
        kind = NOISE_KINDS[rng.integers(len(NOISE_KINDS))]
        snr = rng.uniform(*QUIET_SNR_DB) if rng.random() < QUIET_FRACTION else rng.uniform(*SNR_DB)
        x += make_noise(kind, CLIP_SAMPLES, rng, recorded) * np.sqrt(np.mean(w**2) / 10 ** (snr / 10))
        clips.append(to_int16(x))
        meta.append({"noise": kind, "snr_db": float(snr), "level_dbfs": float(peak)})
    return np.stack(clips), meta


_RECORDED: np.ndarray | None = None


def _render_worker(job: Job) -> tuple[np.ndarray, list[dict]]:
    global _RECORDED
    if _RECORDED is None:
        from kwsgen.frontend import read_wav

        _RECORDED = read_wav(shared_dir() / "audio" / "noise_1000ms.wav", FRONTEND).astype(np.float64) / 32768.0
    return render(job, _RECORDED)


def _features_worker(audio: np.ndarray) -> np.ndarray:
    from kwsgen.frontend import mfcc_int8

    return mfcc_int8(audio, FRONTEND, INPUT_SCALE, INPUT_ZERO_POINT)


def build(split: Split, pool: ProcessPoolExecutor) -> dict[str, np.ndarray]:
    jobs = plan(split)
    audio, labels, meta = [], [], []
    for job, (clips, info) in zip(jobs, pool.map(_render_worker, jobs, chunksize=16)):
        audio.append(clips)
        labels += [job.label] * len(clips)
        meta += [{**asdict(job), **m} for m in info]
    audio_all = np.concatenate(audio)
    chunks = np.array_split(audio_all, max(1, len(audio_all) // 250))
    features = np.concatenate(list(pool.map(_features_worker, chunks)))
    out = {
        "features": features,  # int8 [N, 49, 10], the model's input quantization
        "labels": np.asarray(labels, np.int8),
        "text": np.asarray([m["text"] for m in meta]),
        "voice": np.asarray([m["voice"] for m in meta]),
        "speed": np.asarray([m["speed"] for m in meta], np.int16),
        "pitch": np.asarray([m["pitch"] for m in meta], np.int16),
        "noise": np.asarray([m["noise"] for m in meta]),
        "snr_db": np.asarray([m["snr_db"] for m in meta], np.float32),
        "level_dbfs": np.asarray([m["level_dbfs"] for m in meta], np.float32),
    }
    if split.keep_audio:
        out["audio"] = audio_all
    return out


def describe(split: Split, data: dict[str, np.ndarray]) -> dict:
    counts = np.bincount(data["labels"], minlength=len(LABELS))
    return {"clips": int(len(data["labels"])), "per_label": dict(zip(LABELS, map(int, counts))),
            "utterances": int(sum(1 for v in data["voice"] if v)) // split.copies,
            "voices": len({str(v) for v in data["voice"] if v}), **{k: v for k, v in asdict(split).items() if k != "keep_audio"}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--out", type=Path, default=cache_dir(), help="output directory (default: %(default)s)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    summary = {"recipe": {"unknown_words": UNKNOWN_WORDS, "noise_kinds": NOISE_KINDS, "snr_db": SNR_DB,
                          "quiet_fraction": QUIET_FRACTION, "quiet_snr_db": QUIET_SNR_DB, "peak_dbfs": PEAK_DBFS,
                          "silence_rms_dbfs": SILENCE_RMS_DBFS, "digital_silence_fraction": DIGITAL_SILENCE_FRACTION,
                          "pitch_range": PITCH_RANGE, "highpass_hz": HIGHPASS_HZ, "lowpass_hz": LOWPASS_HZ, "eq_hz": EQ_HZ, "eq_db": EQ_DB,
                          "reverb_fraction": REVERB_FRACTION, "reverberance": REVERBERANCE, "room_scale": ROOM_SCALE,
                          "pre_delay_ms": PRE_DELAY_MS, "input_scale": INPUT_SCALE, "input_zero_point": INPUT_ZERO_POINT},
               "splits": {}}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for split in SPLITS:
            t = time.time()
            data = build(split, pool)
            np.savez(args.out / f"{split.name}.npz", **data)
            summary["splits"][split.name] = describe(split, data)
            print(f"{split.name}: {len(data['labels'])} clips in {time.time() - t:.0f} s", flush=True)
    summary["seconds"] = round(time.time() - t0, 1)
    (args.out / "dataset.json").write_text(json.dumps(summary, indent=1))
    print(f"data set written to {args.out} in {summary['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:  # espeak-ng / sox missing or failing: one line, no traceback
        sys.exit(f"make_dataset: {' '.join(str(e).split())}")
