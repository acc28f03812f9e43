"""Keyword detection: the integer smoothing/trigger logic (Python vectorised, Python step by step, a
transliteration of TFLM's RecognizeCommands, and the generated C on the host, compared on random score
streams), the score mapping, the twin's vectorised feature windows, the WAV parser in C, rendering, the
real-board sources under the cross compiler, and the CLI's one-line errors."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy.io import wavfile

from kwsgen import toolchain
from kwsgen.cli import main
from kwsgen.detect import (
    DetectSettings, Detection, Recognizer, frontend_quant, queue_capacity, recognize, score_table, stream_windows,
)
from kwsgen.detect_app import (
    default_audio_source, default_profile, render_kws_app, render_recognizer_harness, render_wav_source_harness,
    wav_bytes,
)
from kwsgen.errors import KwsgenError
from kwsgen.frontend import PRESETS, FrontendStream
from kwsgen.legalize import load_model
from kwsgen.project import lower
from kwsgen.targets import load_board

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))
DS_MODEL = SHARED / "models" / "arm-ds-cnn" / "ds_cnn_s_quantized.tflite"
LABELS = "silence,unknown,yes,no,up,down,left,right,on,off,stop,go".split(",")
DS = PRESETS["ds-cnn-mfcc"]


@lru_cache(maxsize=1)
def ds_model():
    if not DS_MODEL.is_file():
        pytest.fail(f"shared model missing: {DS_MODEL} (set KWSGEN_SHARED)")
    return load_model(DS_MODEL)


# ------------------------------------------------------------------ TFLM's algorithm, transliterated


def tflm_process(times, scores, s: DetectSettings):
    """RecognizeCommands::ProcessLatestResults as written in TFLM (queue of at most 50 results, averages
    recomputed over the queue, labels compared by identity with kCategoryLabels[0] as the initial label)."""
    int32_min, int32_max = -(1 << 31), (1 << 31) - 1
    queue: list = []
    prev_label, prev_time = 0, int32_min
    out = []
    for t, sc in zip(times, scores):
        if len(queue) < 50:
            queue.append((int(t), [int(v) for v in sc]))
        limit = int(t) - s.average_window_ms
        while queue and queue[0][0] < limit:
            queue.pop(0)
        n = len(queue)
        if n < s.minimum_count or int(t) - queue[0][0] < int(s.average_window_ms / 4):
            out.append((prev_label, 0, False))
            continue
        avg = [sum(r[1][i] for r in queue) for i in range(len(sc))]
        avg = [a // n for a in avg]
        top, top_score = 0, 0
        for i, a in enumerate(avg):
            if a > top_score:
                top, top_score = i, a
        since = int32_max if prev_label == 0 or prev_time == int32_min else int(t) - prev_time
        new = top_score > s.threshold and (top != prev_label or since > s.suppression_ms)
        if new:
            prev_label, prev_time = top, int(t)
        out.append((top, top_score, new))
    return out


def score_streams(max_labels: int = 12, max_len: int = 120, labels: int | None = None):
    """Non-decreasing times and scores with bursts (one label high for a while), so triggers happen."""

    @st.composite
    def build(draw):
        n_labels = labels if labels is not None else draw(st.integers(1, max_labels))
        n = draw(st.integers(0, max_len))
        gaps = draw(st.lists(st.integers(0, 120), min_size=n, max_size=n))
        times = np.cumsum(gaps, dtype=np.int64) + draw(st.integers(0, 5000))
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        scores = rng.integers(0, 256, size=(n, n_labels)) // rng.integers(1, 9, size=(n, 1))
        burst_label = rng.integers(0, n_labels, size=n)
        bursts = np.repeat(rng.random(n // 8 + 1) < 0.6, 8)[:n]
        scores[np.arange(n)[bursts], burst_label[bursts]] = 200 + rng.integers(0, 56, size=int(bursts.sum()))
        return times, scores.astype(np.uint8)

    return build()


def settings_strategy():
    return st.builds(DetectSettings, every_hops=st.just(1), average_window_ms=st.integers(1, 1500),
                     threshold=st.integers(0, 255), suppression_ms=st.integers(0, 2000), minimum_count=st.integers(1, 6))


def rows(rec) -> list:
    return [(int(a), int(b), bool(c)) for a, b, c in zip(rec.label, rec.score, rec.new)]


@settings(max_examples=300, deadline=None)
@given(stream=score_streams(), s=settings_strategy())
def test_vectorised_equals_step_by_step_and_tflm(stream, s):
    times, scores = stream
    cap = 64
    rec = recognize(times, scores, s, cap)
    r = Recognizer(s, scores.shape[1], cap)
    assert rows(rec) == [r.process(int(t), sc) for t, sc in zip(times, scores)]
    held = np.arange(len(times)) + 1 - np.searchsorted(times, times - s.average_window_ms)  # results in each window
    if (held < min(cap, 50)).all():  # neither queue ever fills: TFLM's algorithm must agree exactly
        assert rows(rec) == tflm_process(times, scores, s)


@settings(max_examples=100, deadline=None)
@given(stream=score_streams(max_labels=3), cap=st.integers(1, 6), s=settings_strategy())
def test_full_queue_drops_the_oldest(stream, cap, s):
    """Tiny capacities exercise the drop-oldest rule (vectorised start index vs the ring)."""
    times, scores = stream
    cap = max(cap, s.minimum_count)
    r = Recognizer(s, scores.shape[1], cap)
    assert rows(recognize(times, scores, s, cap)) == [r.process(int(t), sc) for t, sc in zip(times, scores)]


def test_recognizer_rejects_time_going_back():
    r = Recognizer(DetectSettings(), 2, 8)
    r.process(100, [0, 0])
    with pytest.raises(KwsgenError):
        r.process(99, [0, 0])
    with pytest.raises(KwsgenError, match="non-decreasing"):
        recognize(np.array([5, 4]), np.zeros((2, 2), dtype=np.uint8), DetectSettings(), 8)


def test_tflm_semantics_by_hand():
    """The documented rules on hand-made streams (expected values worked out by hand)."""
    s = DetectSettings(average_window_ms=100, threshold=100, suppression_ms=150, minimum_count=2)
    yes, sil = [0, 0, 255], [255, 0, 0]
    times = [0, 10, 30, 40, 100, 190, 200, 210, 300, 400, 410]
    scores = np.array([yes, yes, yes, yes, yes, yes, sil, sil, yes, yes, yes], dtype=np.uint8)
    assert rows(recognize(np.array(times), scores, s, 16)) == [
        (0, 0, False),  # one result: too few
        (0, 0, False),  # two, but spanning 10 ms < window / 4 = 25 ms
        (2, 255, True),  # first trigger
        (2, 255, False),  # suppressed: same label 10 ms later
        (2, 255, False),  # the 0 ms result is still in the window (kept while time >= t - window)
        (2, 255, True),  # 190 - 30 > 150 ms of suppression
        (2, 170, False),  # (255 + 255 + 0) / 3
        (2, 0, False),  # 190..210 spans 20 ms < 25: too few, reports the last triggered label
        (0, 170, True),  # silence wins 510 / 3 and triggers (not reported by the app, but it is the last label now)
        (2, 255, True),  # so "yes" triggers again at once
        (2, 0, False),
    ]
    # a last trigger of label 0 never suppresses, not even label 0 itself
    sc = np.array([yes, yes, yes, sil, sil, sil, sil, yes, yes, yes, yes], dtype=np.uint8)
    got = rows(recognize(np.arange(11) * 50, sc, replace(s, suppression_ms=10_000), 16))
    assert [(k * 50, g[0]) for k, g in enumerate(got) if g[2]] == [(50, 2), (200, 0), (250, 0), (300, 0), (350, 0),
                                                                   (400, 2)]


# ------------------------------------------------------------------ the C recognizer on the host


RECOGNIZER_CASES = {
    "ds-like": (12, DetectSettings(average_window_ms=1000, threshold=120, suppression_ms=1500, minimum_count=3), 27),
    "short": (4, DetectSettings(average_window_ms=90, threshold=60, suppression_ms=70, minimum_count=1), 4),
    "strict": (2, DetectSettings(average_window_ms=1, threshold=0, suppression_ms=0, minimum_count=5), 5),
}


@lru_cache(maxsize=None)
def recognizer_exe(case: str, root: str) -> Path:
    n, s, cap = RECOGNIZER_CASES[case]
    work = Path(root) / f"rec-{case}"
    work.mkdir(parents=True, exist_ok=True)
    for name, text in render_recognizer_harness(n, cap, s).items():
        (work / name).write_text(text)
    return toolchain.compile_host(sorted(work.glob("*.c")), [work], {}, work / "rec", extra_cflags=("-pedantic",),
                                  sanitize=True)


def run_c_recognizer(exe: Path, times, scores, work: Path) -> list:
    rec = b"".join(struct.pack("<i", int(t)) + bytes(sc.astype(np.uint8)) for t, sc in zip(times, scores))
    (work / "in.bin").write_bytes(rec)
    subprocess.run([str(exe), "in.bin", "out.bin"], cwd=work, check=True, timeout=60)
    out = np.frombuffer((work / "out.bin").read_bytes(), dtype=np.int32).reshape(-1, 3)
    return [(int(a), int(b), bool(c)) if a >= 0 else (-1, -1, -1) for a, b, c in out]


@pytest.mark.parametrize("case", sorted(RECOGNIZER_CASES))
def test_c_recognizer_equals_python(case, tmp_path_factory):
    n, s, cap = RECOGNIZER_CASES[case]
    root = tmp_path_factory.getbasetemp()
    exe = recognizer_exe(case, str(root))
    work = root / f"run-{case}"
    work.mkdir(exist_ok=True)

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(stream=score_streams(max_len=200, labels=n))
    def check(stream):
        times, scores = stream
        assert run_c_recognizer(exe, times, scores, work) == rows(recognize(times, scores, s, cap))

    check()
    # a result earlier than the previous one is rejected and changes nothing
    times = np.array([0, 40, 80, 60, 120])
    scores = np.full((5, n), 255, dtype=np.uint8)
    got = run_c_recognizer(exe, times, scores, work)
    keep = [0, 1, 2, 4]
    assert got[3] == (-1, -1, -1)
    assert [got[i] for i in keep] == rows(recognize(times[keep], scores[keep], s, cap))


# ------------------------------------------------------------------ scores and feature windows


def test_score_table_is_q_plus_128_for_softmax():
    table = score_table(ds_model(), LABELS)
    np.testing.assert_array_equal(table, np.arange(256))


def test_score_table_other_quantization():
    model = ds_model()
    t = model.graph.tensors[model.core_outputs[0]]
    for scale, zp in ((1 / 255, -128), (0.1, 0), (1 / 512, -100)):
        q = replace(t.quant, scale=(scale,), zero_point=(zp,))
        m2 = replace(model, graph=model.graph.with_tensors([replace(t, quant=q)]))
        got = score_table(m2, LABELS)
        want = [min(255, max(0, math.floor(256 * scale * (v - zp) + 0.5))) for v in range(-128, 128)]
        assert got.tolist() == want


def test_labels_must_match_the_model():
    with pytest.raises(KwsgenError, match="12 scores"):
        score_table(ds_model(), LABELS[:5])


def test_stream_windows_equal_pushing_hop_by_hop():
    rng = np.random.default_rng(7)
    audio = (rng.standard_normal(DS.stride * 70 + 123) * 3000).astype(np.int16)
    quant = frontend_quant(ds_model(), DS)
    fe = FrontendStream(DS, quant.scale, quant.zero_point)
    hops = np.arange(2, len(audio) // DS.stride + 1)
    windows = stream_windows(audio, DS, quant, hops, ds_model().rounding)
    for i, h in enumerate(range(1, len(audio) // DS.stride + 1)):
        fe.push(audio[(h - 1) * DS.stride : h * DS.stride])
        if h >= 2:
            np.testing.assert_array_equal(windows[h - 2], fe.features())


def test_settings_validation():
    for bad in (dict(every_hops=0), dict(threshold=256), dict(minimum_count=0), dict(average_window_ms=0),
                dict(suppression_ms=-1), dict(ignore="silence")):
        with pytest.raises(KwsgenError):
            DetectSettings(**bad)
    with pytest.raises(KwsgenError, match="holds"):
        queue_capacity(DS, DetectSettings(every_hops=1, average_window_ms=1 << 24))


# ------------------------------------------------------------------ the WAV source in C


def wav_with(fmt_tag=1, channels=1, rate=16000, bits=16, extra_chunks=b"", data=b"\x01\x00\x02\x00\xff\xff",
             fmt_extra=b"", riff=b"RIFF", data_first=False) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits) + fmt_extra
    fmt_chunk = b"fmt " + struct.pack("<I", len(fmt)) + fmt + (b"\0" if len(fmt) % 2 else b"")
    data_chunk = b"data" + struct.pack("<I", len(data)) + data
    chunks = (data_chunk + fmt_chunk) if data_first else (fmt_chunk + extra_chunks + data_chunk)
    body = b"WAVE" + chunks
    return riff + struct.pack("<I", len(body)) + body


KSDATAFORMAT_PCM = bytes.fromhex("0100000000001000800000aa00389b71")


@pytest.fixture(scope="module")
def wav_dump(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wavsrc")
    for name, text in render_wav_source_harness(16000).items():
        (work / name).write_text(text)
    return toolchain.compile_host(sorted(work.glob("*.c")), [work], {}, work / "dump", extra_cflags=("-pedantic",),
                                  sanitize=True)


def dump(exe: Path, blob: bytes, tmp: Path) -> tuple[int, str, np.ndarray]:
    (tmp / "in.wav").write_bytes(blob)
    proc = subprocess.run([str(exe), "in.wav", "out.raw"], cwd=tmp, capture_output=True, text=True, timeout=30)
    samples = np.fromfile(tmp / "out.raw", dtype=np.int16) if proc.returncode == 0 else np.zeros(0, np.int16)
    return proc.returncode, proc.stderr.strip(), samples


def test_wav_source_reads_what_scipy_reads(wav_dump, tmp_path):
    rng = np.random.default_rng(3)
    audio = rng.integers(-32768, 32768, size=12345, dtype=np.int16)
    blobs = {
        "plain": wav_bytes(audio, 16000),
        "list chunk, odd size": wav_with(extra_chunks=b"LIST" + struct.pack("<I", 5) + b"abcde\0",
                                         data=audio.astype("<i2").tobytes()),
        "extensible PCM": wav_with(fmt_tag=0xFFFE, fmt_extra=struct.pack("<HHI", 22, 16, 4) + KSDATAFORMAT_PCM,
                                   data=audio.astype("<i2").tobytes()),
        "fmt with cbSize": wav_with(fmt_extra=b"\0\0", data=audio.astype("<i2").tobytes()),
    }
    for name, blob in blobs.items():
        code, err, got = dump(wav_dump, blob, tmp_path)
        assert code == 0, (name, err)
        (tmp_path / "check.wav").write_bytes(blob)
        np.testing.assert_array_equal(got, wavfile.read(tmp_path / "check.wav")[1], err_msg=name)
    # shared clips
    for clip in sorted((SHARED / "audio").glob("*.wav")):
        code, err, got = dump(wav_dump, clip.read_bytes(), tmp_path)
        assert code == 0, err
        np.testing.assert_array_equal(got, wavfile.read(clip)[1])


@pytest.mark.parametrize("blob,message", [
    (b"", "not a RIFF/WAVE file"),
    (b"RIFX" + bytes(40), "not a RIFF/WAVE file"),
    (wav_with(channels=2, data=bytes(8)), "must be mono, got 2 channels"),
    (wav_with(rate=8000), "sample rate 8000 Hz, the front end needs 16000 Hz"),
    (wav_with(bits=8), "must be 16-bit PCM, got 8-bit samples"),
    (wav_with(fmt_tag=3, bits=32), "not PCM (format tag 3)"),
    (wav_with(fmt_tag=0xFFFE, fmt_extra=struct.pack("<HHI", 22, 16, 4) + bytes.fromhex("0300000000001000800000aa00389b71")),
     "not PCM (format tag 3)"),
    (wav_with(data_first=True), "data chunk before the fmt chunk"),
    (wav_with()[:30], "truncated fmt chunk"),
    (wav_with()[:36], "no data chunk"),
])
def test_wav_source_refuses_with_one_line(wav_dump, tmp_path, blob, message):
    code, err, _ = dump(wav_dump, blob, tmp_path)
    assert code == 65
    assert err.count("\n") == 0 and err.startswith("kws-audio: error: in.wav: ") and message in err


# ------------------------------------------------------------------ rendering and real boards


def library_files(board_name: str, kernels: str = "portable") -> dict[str, str]:
    b = load_board(board_name)
    data = DS_MODEL.read_bytes()
    return lower(ds_model(), b.emit_target(kernels), board=b.name, source_name=DS_MODEL.name, source_bytes=data).library.files


def test_render_is_deterministic_and_documents_the_settings():
    lib = library_files("mps2_an386")
    s = DetectSettings(every_hops=3, threshold=99, ignore=("silence", "unknown", "off"))
    a = render_kws_app(ds_model(), lib, DS, LABELS, s, "semihost-wav")
    b = render_kws_app(ds_model(), lib, DS, LABELS, s, "semihost-wav")
    assert a == b
    assert {"kws_app.c", "kws_app.h", "kws_recognize.c", "kws_recognize.h", "kws_audio.h", "kws_audio_wav.c",
            "kws_app_main.c", "kws_frontend.c", "kws_frontend.h"} == set(a)
    assert "#define KWS_APP_EVERY_HOPS 3" in a["kws_app.h"] and "#define KWS_REC_THRESHOLD 99" in a["kws_recognize.h"]
    reported = a["kws_app.c"].split("kws_app_reported[KWS_APP_LABELS] = {")[1].split("}")[0]
    assert [int(x) for x in reported.split(",")] == [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1]
    assert "KWS_REGION_DEFINE(inference)" in a["kws_app.c"]


def test_render_rejects_bad_requests():
    lib = library_files("mps2_an386")
    with pytest.raises(KwsgenError, match="audio source"):
        render_kws_app(ds_model(), lib, DS, LABELS, DetectSettings(), "usb-mic")
    with pytest.raises(KwsgenError, match="own main"):
        render_kws_app(ds_model(), lib, DS, LABELS, DetectSettings(), "hook", main=True)
    with pytest.raises(KwsgenError, match="12 scores"):
        render_kws_app(ds_model(), lib, DS, LABELS[:3], DetectSettings(), "hook")


@pytest.mark.parametrize("board_name,kernels", [("nano33ble", "portable"), ("nucleo_f746zg", "portable"),
                                                ("pico", "portable")])
def test_real_board_sources_cross_compile(board_name, kernels, tmp_path):
    """The app as a real board's project gets it (nano33ble: the PDM microphone driver and DWT cycle
    counts; others: the documented hook) compiles with the board's flags, -Werror and -pedantic."""
    board = load_board(board_name)
    lib = library_files(board_name, kernels)
    app = render_kws_app(ds_model(), lib, DS, LABELS, DetectSettings(), default_audio_source(board),
                         profile=default_profile(board), report_hops=500)
    assert ("kws_audio_pdm_nrf52840.c" in app) == (board_name == "nano33ble")
    assert "kws_app_main.c" not in app
    for name, text in {**lib, **app}.items():
        (tmp_path / name).write_text(text)
    objects = toolchain.compile_objects(board, sorted(tmp_path.glob("*.c")), [tmp_path], {}, tmp_path / "obj",
                                        extra_cflags=("-pedantic",))
    assert len(objects) == len([n for n in {**lib, **app} if n.endswith(".c")])
    if board_name == "nano33ble":
        assert "-mfloat-abi=hard" in board.cflags() and "-mfpu=fpv4-sp-d16" in board.cflags()
        pdm = app["kws_audio_pdm_nrf52840.c"]
        assert "P0.26" in pdm and "P0.25" in pdm and "P0.17" in pdm and "0x0A000000u" in pdm


# ------------------------------------------------------------------ CLI


def write_wav(path: Path, audio: np.ndarray, rate: int = 16000) -> Path:
    path.write_bytes(wav_bytes(audio, rate))
    return path


def test_cli_twin_prints_json_lines(tmp_path, capsys):
    clips = [wavfile.read(SHARED / "audio" / f"{w}_1000ms.wav")[1] for w in ("silence", "yes", "silence", "no", "silence")]
    audio = np.concatenate(clips)
    wav = write_wav(tmp_path / "s.wav", audio)
    assert main(["detect", str(DS_MODEL), str(wav), "--frontend", "ds-cnn-mfcc", "--labels", ",".join(LABELS),
                 "--threshold", "90"]) == 0
    lines = capsys.readouterr().out.splitlines()
    from kwsgen.detect import detect

    want = detect(ds_model(), audio, DS, LABELS, DetectSettings(threshold=90))
    assert [Detection(**json.loads(x)) for x in lines] == want
    assert [d.label for d in want] == ["yes", "no"]


@pytest.mark.parametrize("extra,message", [
    (["--labels", "a,b"], "--labels names 2 classes, the model outputs 12 scores"),
    (["--labels", "a,,b"], "non-empty"),
    (["--threshold", "256"], "threshold must be an integer in 0..255"),
    (["--every", "0"], "every_hops must be an integer"),
    (["--frontend", "nope"], "unknown front-end preset"),
    (["--board", "nano33ble"], "a real board"),
    (["--board", "no_such_board"], "no_such_board"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, extra, message):
    wav = write_wav(tmp_path / "s.wav", np.zeros(16000, dtype=np.int16))
    args = ["detect", str(DS_MODEL), str(wav), "--frontend", "ds-cnn-mfcc", "--labels", ",".join(LABELS)]
    args = args + extra
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kwsgen: error: ") and message in err, err


@pytest.mark.parametrize("blob,message", [
    (wav_with(channels=2, data=bytes(64000)), "must be mono"),
    (wav_with(rate=8000, data=bytes(64000)), "sample rate 8000 Hz"),
    (b"not a wav file at all", "not a readable WAV file"),
])
def test_cli_bad_wav(tmp_path, capsys, blob, message):
    (tmp_path / "bad.wav").write_bytes(blob)
    assert main(["detect", str(DS_MODEL), str(tmp_path / "bad.wav"), "--frontend", "ds-cnn-mfcc",
                 "--labels", ",".join(LABELS), "--board", "host"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
