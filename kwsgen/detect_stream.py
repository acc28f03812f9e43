"""Labelled keyword streams for testing and scoring a detector: synthesised speech at known times.

Why: precision and recall need audio whose spoken words and their times are known. espeak-ng speaks any word
offline in many voices, speeds and pitches; sox resamples it to the front end's format (with `-R`, so the
dither and hence every sample is repeatable). `compose` lays words, clips, silence and noise end to end and
records where each word is; `score` matches detections to words.

Tools: `espeak-ng` and `sox` (Debian packages of those names); a missing one is a ToolMissingError.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import KwsgenError, ToolMissingError

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
          "en-us+f3", "en-gb+f2", "en-us+m3", "en-gb-x-rp+f4")
TRIM_DB = 40.0  # a word spans the 10 ms frames within 40 dB of its loudest


@dataclass(frozen=True)
class Utterance:
    word: str
    voice: str = "en-us"
    speed: int = 160  # words per minute (espeak-ng -s)
    pitch: int = 50  # 0..99 (espeak-ng -p)


@dataclass(frozen=True)
class Word:
    """A spoken word in a stream: its label (the word, or a name given to a clip) and where it is."""

    label: str
    start_ms: int
    end_ms: int


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(f"{name} not found on PATH; install it with `apt-get install {name}`")
    return path


def read_wav16(path: Path, rate: int) -> np.ndarray:
    from scipy.io import wavfile

    r, a = wavfile.read(path)
    if r != rate or a.dtype != np.int16 or a.ndim != 1:
        raise KwsgenError(f"{path}: need 16-bit mono {rate} Hz, got {a.dtype} {a.shape} at {r} Hz")
    return a


def trim(audio: np.ndarray, rate: int, db: float = TRIM_DB) -> np.ndarray:
    """The span of 10 ms frames within `db` of the loudest frame (espeak-ng pads words with silence)."""
    hop = rate // 100
    n = len(audio) // hop
    if n == 0:
        return audio
    energy = (audio[: n * hop].astype(np.float64).reshape(n, hop) ** 2).mean(axis=1)
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (-db / 10)) if energy.max() > 0 else np.array([0])
    return audio[loud[0] * hop : (loud[-1] + 1) * hop]


class Speaker:
    """espeak-ng + sox with a per-instance cache (one synthesis per distinct utterance)."""

    def __init__(self, rate: int = 16000) -> None:
        self.rate = rate
        self._espeak, self._sox = _tool("espeak-ng"), _tool("sox")
        self._cache: dict[Utterance, np.ndarray] = {}

    def say(self, u: Utterance) -> np.ndarray:
        """int16 samples of the word, trimmed to its sound."""
        if u not in self._cache:
            with tempfile.TemporaryDirectory(prefix="kwsgen-say-") as tmp:
                raw, out = Path(tmp) / "w.wav", Path(tmp) / "out.wav"
                for cmd in ([self._espeak, "-v", u.voice, "-s", str(u.speed), "-p", str(u.pitch), "-w", str(raw), u.word],
                            [self._sox, "-R", str(raw), "-r", str(self.rate), "-c", "1", "-b", "16", str(out)]):
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
                    if proc.returncode != 0:
                        raise KwsgenError(f"{Path(cmd[0]).name} failed on {u}: {' '.join(proc.stderr.split())[:200]}")
                self._cache[u] = trim(read_wav16(out, self.rate), self.rate)
        return self._cache[u]


@dataclass(frozen=True)
class Segment:
    """A piece of a stream: audio, and the label it counts as (None: not a word)."""

    audio: np.ndarray
    label: str | None = None


def silence(ms: int, rate: int = 16000) -> Segment:
    return Segment(np.zeros(rate * ms // 1000, dtype=np.int16))


def scaled(audio: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(np.round(audio.astype(np.float64) * gain), -32768, 32767).astype(np.int16)


def compose(segments: Iterable[Segment], rate: int = 16000) -> tuple[np.ndarray, list[Word]]:
    """Concatenate segments; returns the stream and the labelled words with their times."""
    parts, words, at = [], [], 0
    for seg in segments:
        a = np.asarray(seg.audio, dtype=np.int16)
        if seg.label is not None:
            words.append(Word(seg.label, at * 1000 // rate, (at + len(a)) * 1000 // rate))
        parts.append(a)
        at += len(a)
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)), words


def mix_noise(audio: np.ndarray, noise: np.ndarray, gain: float, offset: int = 0) -> np.ndarray:
    """audio + gain * noise (tiled from `offset`), saturated to int16."""
    if len(noise) == 0 or gain == 0:
        return audio
    idx = (np.arange(len(audio)) + offset) % len(noise)
    return np.clip(audio.astype(np.float64) + gain * noise[idx], -32768, 32767).astype(np.int16)


# ------------------------------------------------------------------ scoring


@dataclass(frozen=True)
class LabelScore:
    label: str
    spoken: int
    detected: int
    true_positives: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.detected if self.detected else float("nan")

    @property
    def recall(self) -> float:
        return self.true_positives / self.spoken if self.spoken else float("nan")


def score(detections: Sequence, words: Sequence[Word], keywords: Sequence[str], tolerance_ms: int = 1000) -> list[LabelScore]:
    """Match each detection (objects with t_ms and label) to the earliest unmatched spoken word of its label
    that it can belong to: start_ms <= t_ms <= end_ms + tolerance_ms (the smoothing window reports late).
    Returns one LabelScore per keyword plus "overall" (words of non-keyword labels only count as chances
    for false positives)."""
    used = [False] * len(words)
    tp: dict[str, int] = {k: 0 for k in keywords}
    detected: dict[str, int] = {k: 0 for k in keywords}
    for d in sorted(detections, key=lambda d: d.t_ms):
        if d.label not in detected:
            detected[d.label] = 0
            tp[d.label] = 0
        detected[d.label] += 1
        for i, w in enumerate(words):
            if not used[i] and w.label == d.label and w.start_ms <= d.t_ms <= w.end_ms + tolerance_ms:
                used[i] = True
                tp[d.label] += 1
                break
    spoken = {k: sum(1 for w in words if w.label == k) for k in detected}
    rows = [LabelScore(k, spoken[k], detected[k], tp[k]) for k in detected]
    rows.append(LabelScore("overall", sum(spoken[k] for k in keywords), sum(detected.values()), sum(tp.values())))
    return rows


def demo_stream(shared_audio: Path, seconds: int = 20, seed: int = 0, rate: int = 16000,
                keywords: Sequence[str] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"),
                ) -> tuple[np.ndarray, list[Word]]:
    """A stream of at least `seconds` mixing the shared clips (yes, no, silence, noise: files
    `<word>_1000ms.wav` in `shared_audio`), digital silence, quiet noise and espeak-ng keywords in
    several voices: the end-to-end tests' input (the same for a seed)."""
    rng = np.random.default_rng(seed)
    speaker = Speaker(rate)
    clip = {w: read_wav16(Path(shared_audio) / f"{w}_1000ms.wav", rate) for w in ("yes", "no", "silence", "noise")}
    segments = [silence(500, rate), Segment(clip["yes"], "yes"), Segment(clip["silence"]), silence(700, rate),
                Segment(clip["no"], "no"), Segment(clip["noise"])]
    total = sum(len(s.audio) for s in segments)
    i = 0
    while total < seconds * rate:
        word = keywords[i % len(keywords)]
        u = Utterance(word, VOICES[int(rng.integers(len(VOICES)))], int(rng.integers(140, 191)), int(rng.integers(35, 66)))
        gap = silence(int(rng.integers(1200, 1801)), rate)
        if i % 3 == 2:  # some gaps hold noise instead of digital silence
            gap = Segment(mix_noise(gap.audio, clip["noise"], float(rng.uniform(0.1, 0.4))))
        for seg in (Segment(scaled(speaker.say(u), float(rng.uniform(0.5, 1.0))), word), gap):
            segments.append(seg)
            total += len(seg.audio)
        i += 1
    segments.append(Segment(clip["yes"], "yes"))
    return compose(segments, rate)
