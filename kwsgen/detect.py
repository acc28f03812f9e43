"""Keyword detection on an audio stream: the semantics kwsgen's firmware runs, and their bit-exact Python twin.

The firmware (`templates/kws_app/`, rendered by `kwsgen.detect_app`) and `detect()` below compute the same
detections and scores, bit for bit, because every step is integer arithmetic that both define identically:

 1. Audio: int16 mono PCM at the front end's rate (16 kHz for the presets). The source delivers any number of
    samples per read; the app collects them in a ring buffer and takes hops of `cfg.stride` samples
    (320 = 20 ms). Hops are numbered h = 1, 2, ... from the start of the stream; a partial hop at the end of a
    stream is dropped.
 2. Front end: every hop goes into the streaming fixed-point MFCC (`kws_frontend_push` / `FrontendStream`).
    From hop hpw = ceil(window / stride) on, each hop produces exactly one frame and slides the model's feature
    window, which starts as all-silence frames (so inference can start before a whole second has been heard).
 3. Inference: after hop h if it produced a frame and h % every_hops == 0 (default every 2 hops = 40 ms). Its
    time is t_ms = floor(h * stride * 1000 / rate), the end of hop h. The model's int8 output q is mapped to
    scores 0..255 by a 256-entry table computed here from the output quantization:
        score(q) = clamp(floor(256 * scale * (q - zero_point) + 1/2), 0, 255)
    which is exactly q + 128 for a softmax output (scale 1/256, zero point -128), the mapping TFLM's
    RecognizeCommands assumes; any other output quantization gets its probability in 1/256 steps.
 4. Smoothing and detection: TFLM micro_speech's RecognizeCommands::ProcessLatestResults, integer for integer:
      push (t, scores); pop the oldest while its time < t - average_window_ms;
      if fewer than minimum_count results, or t - oldest time < average_window_ms / 4 (C division): no result
        (the previous label with score 0, not new);
      average[i] = (sum of score i over the queue) / (queue size), C integer division (all terms >= 0);
      top = the lowest index with the greatest average (TFLM's strict '>' scan starting from score 0);
      time_since = "infinite" if the last triggered label is index 0 or nothing triggered yet,
                   else t - time of the last trigger;
      a new trigger iff average[top] > threshold and (top != last triggered label or time_since > suppression_ms);
      it becomes the last triggered label and time.
    Two deliberate differences from TFLM: the queue holds window / inference interval + 2 results (sized so it
    never fills when results come at the app's fixed interval; TFLM: 50) and, if it ever is full, the oldest
    result is dropped (TFLM refuses the newest); and times must never decrease (TFLM only compares with the
    oldest result).
 5. Reporting: every new trigger is a detection `Detection(t_ms, label, score)` unless its label is in
    `settings.ignore` (non-keywords such as "silence", "unknown", "_background_noise_"). Ignored labels still
    trigger and so still update the last triggered label, exactly as in TFLM; they are only not reported.

The twin is vectorised: features for the whole stream at once (`stream_frames`, equal to pushing hop by hop),
all inferences as one batch through the reference interpreter, then the smoothing sums as cumulative sums and
only the (few) above-threshold results through the sequential trigger logic. `Recognizer` is the same logic
one result at a time, a line-by-line mirror of the C (`kws_recognize.c`), used to cross-check both.
"""

from __future__ import annotations

import json
import math
import sys
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import KwsgenError
from .frontend.api import input_quant
from .frontend.codegen import Quantization
from .frontend.config import FrontendConfig
from .legalize import Model

DEFAULT_IGNORE = ("silence", "unknown", "_silence_", "_unknown_", "_background_noise_")
MAX_QUEUE = 4096  # results the smoothing window may hold: bounds the firmware's RAM (queue x labels bytes)
INFER_CHUNK = 512  # inferences per reference-interpreter call: bounds the twin's memory on long streams
SUMMARY_KEY = "summary"


@dataclass(frozen=True)
class DetectSettings:
    """When to infer and how to turn scores into detections (TFLM RecognizeCommands' parameters)."""

    every_hops: int = 2  # inference after every 2nd hop (40 ms at 16 kHz / 320)
    average_window_ms: int = 1000
    threshold: int = 120  # the averaged 0..255 score must exceed it. TFLM's example uses 200 for its model;
    # for ds_cnn_s on espeak-ng speech 120 gave the best F1 in benchmarks/detect_accuracy.py (200: recall 0.48)
    suppression_ms: int = 1500
    minimum_count: int = 3
    ignore: tuple[str, ...] = DEFAULT_IGNORE

    def __post_init__(self) -> None:
        checks = [
            ("every_hops", self.every_hops, 1, 1 << 16),
            ("average_window_ms", self.average_window_ms, 1, 1 << 24),
            ("threshold", self.threshold, 0, 255),
            ("suppression_ms", self.suppression_ms, 0, 1 << 30),
            ("minimum_count", self.minimum_count, 1, MAX_QUEUE),
        ]
        for name, value, lo, hi in checks:
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise KwsgenError(f"detection setting {name} must be an integer in {lo}..{hi}, got {value!r}")
        if isinstance(self.ignore, str) or not all(isinstance(x, str) for x in self.ignore):
            raise KwsgenError(f"detection setting ignore must be a sequence of label names, got {self.ignore!r}")
        object.__setattr__(self, "ignore", tuple(self.ignore))


@dataclass(frozen=True)
class Detection:
    t_ms: int
    label: str
    score: int

    def to_json(self) -> str:
        return json.dumps({"t_ms": self.t_ms, "label": self.label, "score": self.score})


@dataclass(frozen=True)
class Schedule:
    """The integer timing of a stream: which hops infer, and when (ms) each inference happens."""

    cfg: FrontendConfig
    every_hops: int

    @property
    def hops_per_window(self) -> int:
        return -(-self.cfg.window_length // self.cfg.stride)

    def hop_time_ms(self, hops: np.ndarray | int) -> np.ndarray:
        h = np.asarray(hops, dtype=np.int64)
        return h * self.cfg.stride * 1000 // self.cfg.sample_rate

    def inference_hops(self, total_hops: int) -> np.ndarray:
        """Hop numbers (1-based) after which the app infers."""
        h = np.arange(1, total_hops + 1, dtype=np.int64)
        return h[(h >= self.hops_per_window) & (h % self.every_hops == 0)]

    @property
    def min_interval_ms(self) -> int:
        return max(1, self.every_hops * self.cfg.stride * 1000 // self.cfg.sample_rate)

    def queue_capacity(self, settings: DetectSettings) -> int:
        cap = settings.average_window_ms // self.min_interval_ms + 2
        return max(cap, settings.minimum_count)


def queue_capacity(cfg: FrontendConfig, settings: DetectSettings) -> int:
    cap = Schedule(cfg, settings.every_hops).queue_capacity(settings)
    if cap > MAX_QUEUE:
        raise KwsgenError(f"detection settings: a {settings.average_window_ms} ms window at one inference per "
                          f"{settings.every_hops} hop(s) holds {cap} results, more than {MAX_QUEUE}")
    return cap


# ------------------------------------------------------------------ model edges


def frontend_quant(model: Model, cfg: FrontendConfig) -> Quantization:
    """The int8 scale/zero point the front end quantizes into: the model's core (post-QUANTIZE) input."""
    if len(model.core_inputs) != 1:
        raise KwsgenError(f"keyword detection needs a model with one input, this one has {len(model.core_inputs)}")
    return input_quant(model.graph.tensors[model.core_inputs[0]], cfg)


def score_table(model: Model, labels: Sequence[str]) -> np.ndarray:
    """uint8[256]: score of every int8 output value q (index q + 128); see the module docstring, step 3."""
    if len(model.core_outputs) != 1:
        raise KwsgenError(f"keyword detection needs a model with one output, this one has {len(model.core_outputs)}")
    t = model.graph.tensors[model.core_outputs[0]]
    if t.dtype != "int8" or t.quant is None or t.quant.per_channel:
        raise KwsgenError(f"keyword detection needs an int8 per-tensor-quantized output, the model's is {t.dtype}")
    if t.size != len(labels):
        raise KwsgenError(f"--labels names {len(labels)} classes, the model outputs {t.size} scores")
    q = np.arange(-128, 128, dtype=np.float64)
    real = 256.0 * float(t.quant.s) * (q - int(t.quant.zp))
    return np.clip(np.floor(real + 0.5), 0, 255).astype(np.uint8)


def parse_labels(text: str | Sequence[str]) -> tuple[str, ...]:
    labels = tuple(x.strip() for x in text.split(",")) if isinstance(text, str) else tuple(text)
    if not labels or any(not x for x in labels):
        raise KwsgenError(f"--labels must be a comma-separated list of non-empty names, got {text!r}")
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise KwsgenError(f"--labels names {', '.join(dup)} more than once")
    bad = [x for x in labels if any(ord(c) < 0x20 or ord(c) > 0x7E for c in x)]
    if bad:
        raise KwsgenError(f"--labels: label {bad[0]!r} must be printable ASCII (it is printed by the firmware)")
    return labels


# ------------------------------------------------------------------ smoothing and triggers


@dataclass(frozen=True)
class Recognitions:
    """One entry per inference, as ProcessLatestResults returns them: found label index, score, is_new."""

    label: np.ndarray  # int64 [K]
    score: np.ndarray  # int64 [K]
    new: np.ndarray  # bool [K]


def _check_stream(times: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(times, dtype=np.int64)
    s = np.asarray(scores)
    if s.ndim != 2 or s.shape[0] != t.shape[0] or t.ndim != 1:
        raise KwsgenError(f"scores must be [results, labels] with one time per result, got {s.shape} and {t.shape}")
    if s.size and (s.min() < 0 or s.max() > 255):
        raise KwsgenError("scores must be in 0..255")
    if t.size and ((np.diff(t) < 0).any() or t.min() < -(1 << 31) or t.max() >= 1 << 31):
        raise KwsgenError("result times must be non-decreasing int32 milliseconds")
    return t, s.astype(np.int64)


def recognize(times: np.ndarray, scores: np.ndarray, settings: DetectSettings, capacity: int) -> Recognitions:
    """ProcessLatestResults over a whole stream of results (times [K] ms, scores uint8 [K, labels]), vectorised.

    The queue after result k holds results [start_k, k] with start_k = max(k + 1 - capacity, first result with
    time >= t_k - window): pruning by time is monotone and the capacity rule drops one oldest result per push."""
    t, s = _check_stream(times, scores)
    k_all = np.arange(t.shape[0])
    start = np.maximum(np.searchsorted(t, t - settings.average_window_ms, side="left"), k_all + 1 - capacity)
    count = k_all + 1 - start
    csum = np.concatenate([np.zeros((1, s.shape[1]), dtype=np.int64), np.cumsum(s, axis=0)])
    avg = (csum[k_all + 1] - csum[start]) // np.maximum(count, 1)[:, None]
    valid = (count >= settings.minimum_count) & (t - t[start] >= settings.average_window_ms // 4)
    top = np.argmax(avg, axis=1) if s.shape[1] else np.zeros(t.shape, dtype=np.int64)
    top_score = avg[k_all, top] if s.shape[1] else np.zeros(t.shape, dtype=np.int64)
    new = np.zeros(t.shape, dtype=bool)
    prev_label, prev_time = 0, None
    for k in np.flatnonzero(valid & (top_score > settings.threshold)):
        label = int(top[k])
        since = math.inf if prev_label == 0 or prev_time is None else int(t[k]) - prev_time
        if label != prev_label or since > settings.suppression_ms:
            new[k] = True
            prev_label, prev_time = label, int(t[k])
    # an invalid result reports the last triggered label (index 0 before any) with score 0
    last_new = np.maximum.accumulate(np.where(new, k_all, -1)) if t.size else np.zeros(0, dtype=np.int64)
    prev_at = np.where(last_new >= 0, top[np.maximum(last_new, 0)], 0)
    return Recognitions(np.where(valid, top, prev_at).astype(np.int64), np.where(valid, top_score, 0).astype(np.int64), new)


@dataclass
class Recognizer:
    """The same logic one result at a time, written as the C (kws_recognize.c) is: a ring of results with
    running sums. For streaming use in Python and as the cross-check of `recognize`."""

    settings: DetectSettings
    num_labels: int
    capacity: int
    _queue: deque = field(default_factory=deque)
    _sums: list[int] = field(default_factory=list)
    _prev_label: int = 0
    _prev_time: int | None = None
    _last_time: int | None = None

    def __post_init__(self) -> None:
        self._sums = [0] * self.num_labels

    def _pop(self) -> None:
        _, old = self._queue.popleft()
        for i, v in enumerate(old):
            self._sums[i] -= v

    def process(self, time_ms: int, scores: Sequence[int]) -> tuple[int, int, bool]:
        if self._last_time is not None and time_ms < self._last_time:
            raise KwsgenError(f"result time {time_ms} ms is earlier than the previous {self._last_time} ms")
        self._last_time = time_ms
        if len(self._queue) == self.capacity:
            self._pop()
        self._queue.append((time_ms, tuple(int(v) for v in scores)))
        for i, v in enumerate(scores):
            self._sums[i] += int(v)
        limit = time_ms - self.settings.average_window_ms
        while self._queue and self._queue[0][0] < limit:
            self._pop()
        n = len(self._queue)
        if n < self.settings.minimum_count or time_ms - self._queue[0][0] < self.settings.average_window_ms // 4:
            return self._prev_label, 0, False
        top, top_score = 0, 0
        for i, total in enumerate(self._sums):
            avg = total // n
            if avg > top_score:
                top, top_score = i, avg
        since = math.inf if self._prev_label == 0 or self._prev_time is None else time_ms - self._prev_time
        is_new = top_score > self.settings.threshold and (top != self._prev_label or since > self.settings.suppression_ms)
        if is_new:
            self._prev_label, self._prev_time = top, time_ms
        return top, top_score, is_new


# ------------------------------------------------------------------ the whole pipeline


def stream_windows(audio: np.ndarray, cfg: FrontendConfig, quant: Quantization, hops: np.ndarray, rounding) -> np.ndarray:
    """The model input after each hop in `hops`: int8 [len(hops), frames, coeffs] (the sliding window)."""
    from .frontend.fixed import FrontendStream, stream_frames

    frames = stream_frames(audio, cfg, quant.scale, quant.zero_point, rounding)
    silence = FrontendStream(cfg, quant.scale, quant.zero_point, rounding).features()
    padded = np.concatenate([silence, frames])  # F silence rows, then frame 0, 1, ...
    newest = hops - Schedule(cfg, 1).hops_per_window  # frame index produced by hop h
    view = np.lib.stride_tricks.sliding_window_view(padded, cfg.num_frames, axis=0)  # [n, coeffs, F]
    return np.ascontiguousarray(view[newest + 1].transpose(0, 2, 1))


def model_scores(model: Model, windows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """uint8 [K, labels] scores of every window, through the reference interpreter in large batches."""
    from .interpreter import run

    out = np.empty((windows.shape[0], model.graph.tensors[model.core_outputs[0]].size), dtype=np.uint8)
    flat = windows.reshape(windows.shape[0], -1)
    for lo in range(0, flat.shape[0], INFER_CHUNK):
        q = run(model, [flat[lo : lo + INFER_CHUNK]], core_only=True).outputs[0]
        out[lo : lo + INFER_CHUNK] = table[q.reshape(q.shape[0], -1).astype(np.int64) + 128]
    return out


@dataclass(frozen=True)
class Trace:
    """Everything the twin computed, for tests and diagnostics."""

    hops: int
    inference_hops: np.ndarray  # [K]
    times_ms: np.ndarray  # [K]
    scores: np.ndarray  # uint8 [K, labels]
    recognitions: Recognitions
    detections: list[Detection]


def detect_trace(model: Model, audio: np.ndarray, cfg: FrontendConfig, labels: Sequence[str],
                 settings: DetectSettings = DetectSettings()) -> Trace:
    a = np.asarray(audio)
    if a.dtype != np.int16 or a.ndim != 1:
        raise KwsgenError(f"audio must be a 1-D int16 array, got {a.dtype} {list(a.shape)}")
    labels = parse_labels(labels)
    quant = frontend_quant(model, cfg)
    table = score_table(model, labels)
    capacity = queue_capacity(cfg, settings)
    sched = Schedule(cfg, settings.every_hops)
    total_hops = a.shape[0] // cfg.stride
    hops = sched.inference_hops(total_hops)
    times = sched.hop_time_ms(hops)
    scores = model_scores(model, stream_windows(a, cfg, quant, hops, model.rounding), table) if hops.size else \
        np.zeros((0, len(labels)), dtype=np.uint8)
    rec = recognize(times, scores, settings, capacity)
    ignored = set(settings.ignore)
    found = [Detection(int(times[k]), labels[int(rec.label[k])], int(rec.score[k])) for k in np.flatnonzero(rec.new)]
    return Trace(total_hops, hops, times, scores, rec, [d for d in found if d.label not in ignored])


def detect(model: Model, audio_int16: np.ndarray, frontend_cfg: FrontendConfig, labels: Sequence[str],
           settings: DetectSettings = DetectSettings()) -> list[Detection]:
    """The detections the firmware reports for this stream (see the module docstring)."""
    return detect_trace(model, audio_int16, frontend_cfg, labels, settings).detections


# ------------------------------------------------------------------ CLI


def settings_from_args(args: Any) -> DetectSettings:
    base = DetectSettings()
    values: dict[str, Any] = {}
    for name in ("every_hops", "average_window_ms", "threshold", "suppression_ms", "minimum_count"):
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    ignore = getattr(args, "ignore", None)
    if ignore is not None:
        values["ignore"] = tuple(x.strip() for x in ignore.split(",") if x.strip())
    return replace(base, **values)


def detect_cli(args: Any) -> int:
    """`kwsgen detect MODEL AUDIO.wav --frontend P --labels ... [--board B]`: JSON lines on stdout; with an
    emulated board a final JSON summary with per-stage instruction counts on stderr."""
    from .fixedpoint import Rounding
    from .frontend.api import read_wav
    from .frontend.config import resolve_config
    from .importer import read_bytes
    from .legalize import load_model

    source = read_bytes(Path(args.model))
    model = load_model(source, Rounding(getattr(args, "rounding", None) or "double"))
    cfg = resolve_config(args.frontend)
    labels = parse_labels(args.labels)
    settings = settings_from_args(args)
    frontend_quant(model, cfg)
    score_table(model, labels)
    audio = read_wav(args.audio, cfg)
    if args.board is None:
        for d in detect(model, audio, cfg, labels, settings):
            print(d.to_json(), flush=True)
        return 0
    from .detect_app import run_detector_cli

    result = run_detector_cli(model, source, Path(args.model).name, Path(args.audio), cfg, labels, settings,
                              board=args.board, kernels=args.kernels, cmsis_nn=args.cmsis_nn)
    for d in result.detections:
        print(d.to_json(), flush=True)
    print(json.dumps({SUMMARY_KEY: result.summary_json()}, sort_keys=True), file=sys.stderr)
    return 0
