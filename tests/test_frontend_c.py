"""The generated C front end against the NumPy twin, bit for bit, on the host (ASan/UBSan, strict warnings).

Clips: ../shared/audio, 200 random clips, and the edge cases of kwsgen.frontend.signals. Every clip
is checked through both C APIs: kws_frontend_clip (TF framing) and kws_frontend_push (streaming,
including the final sliding feature window).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from kwsgen.cli import main as cli_main
from kwsgen.errors import KwsgenError
from kwsgen.fixedpoint import Rounding
from kwsgen.frontend import api
from kwsgen.frontend.codegen import Quantization, render_frontend
from kwsgen.frontend.config import PRESETS, FrontendConfig
from kwsgen.frontend.fixed import FrontendStream, mfcc_int8, stream_frames
from kwsgen.frontend.signals import edge_cases, random_clips

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))
DS = PRESETS["ds-cnn-mfcc"]
DS_QUANT = Quantization(1.0809112787246704, 101)
DS_MODEL = SHARED / "models" / "arm-ds-cnn" / "ds_cnn_s_quantized.tflite"


def shared_clips() -> dict[str, np.ndarray]:
    paths = sorted((SHARED / "audio").glob("*.wav"))
    if len(paths) < 6:
        pytest.fail(f"shared audio missing under {SHARED} (set KWSGEN_SHARED)")
    return {p.stem: wavfile.read(p)[1] for p in paths}


def expected(clips: np.ndarray, cfg: FrontendConfig, quant: Quantization, rounding: Rounding = Rounding.DOUBLE) -> api.HarnessOutput:
    """What the C must produce, from the twin. The final window is the last num_frames rows of the
    silence-initialised window followed by the streamed frames (FrontendStream, checked against
    stream_frames in test_frontend_fixed, does exactly this one push at a time)."""
    clip = mfcc_int8(clips, cfg, quant.scale, quant.zero_point, rounding)
    stream = stream_frames(clips, cfg, quant.scale, quant.zero_point, rounding)
    silence = FrontendStream(cfg, quant.scale, quant.zero_point, rounding).features()
    window = np.concatenate([np.broadcast_to(silence, (clips.shape[0],) + silence.shape), stream], axis=1)[:, -cfg.num_frames:]
    return api.HarnessOutput(clip, stream, window)


def assert_same(got: api.HarnessOutput, want: api.HarnessOutput, names: list[str] | None = None) -> None:
    for part in ("clip", "stream", "window"):
        g, w = getattr(got, part), getattr(want, part)
        assert g.shape == w.shape, (part, g.shape, w.shape)
        bad = np.argwhere(g != w)
        if bad.size:
            i = int(bad[0][0])
            pytest.fail(f"{part}: {len(bad)} differing values, first in clip {names[i] if names else i} at {bad[0][1:].tolist()}")


@pytest.fixture(scope="module")
def ds_host(tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("fe_ds")
    return api.build_host(DS, DS_QUANT, work, sanitize=True), work


def test_shared_clips_bit_exact(ds_host):
    exe, work = ds_host
    clips = {k: v for k, v in shared_clips().items() if v.shape[0] == 16000}
    got = api.run_host(exe, np.stack(list(clips.values())), DS, work)
    assert_same(got, expected(np.stack(list(clips.values())), DS, DS_QUANT), list(clips))


def test_short_shared_clips(ds_host):
    """The 30 ms clips hold less than one window: no frame, a window of silence rows."""
    exe, work = ds_host
    clips = np.stack([v for v in shared_clips().values() if v.shape[0] < 640])
    got = api.run_host(exe, clips, DS, work)
    assert got.clip.shape[1] == 0 and got.stream.shape[1] == 0
    assert_same(got, expected(clips, DS, DS_QUANT))


@pytest.fixture(scope="module")
def ds_host_plain(tmp_path_factory) -> tuple[Path, Path]:
    """Without sanitizers (they run on every other test here) so the 200 clips stay quick."""
    work = tmp_path_factory.mktemp("fe_ds_plain")
    return api.build_host(DS, DS_QUANT, work), work


def test_200_random_clips_bit_exact(ds_host_plain):
    exe, work = ds_host_plain
    clips = random_clips(200, seed=2024)
    assert_same(api.run_host(exe, clips, DS, work), expected(clips, DS, DS_QUANT))


def test_edge_cases_bit_exact(ds_host):
    exe, work = ds_host
    cases = edge_cases()
    clips = np.stack(list(cases.values()))
    assert_same(api.run_host(exe, clips, DS, work), expected(clips, DS, DS_QUANT), list(cases))


OTHER = {
    "micronet": (PRESETS["micronet-mfcc"], Quantization(0.5, -10), Rounding.DOUBLE),
    "odd-window": (FrontendConfig(name="odd", window_length=481, stride=157, num_channels=26, num_coefficients=13,
                                  lower_frequency=133.0, upper_frequency=6855.0, clip_samples=8000),
                   Quantization(0.25, 3), Rounding.SINGLE),
    "power-hamming-uneven": (FrontendConfig(name="pw", window_length=480, stride=320, window="hamming", filterbank_input="power",
                                            num_channels=32, num_coefficients=12, upper_frequency=7000.0),
                             Quantization(2.0, 0), Rounding.DOUBLE),
    "wide-fft": (FrontendConfig(name="wide", window_length=400, stride=160, fft_length=2048, num_channels=130,
                                num_coefficients=20, lower_frequency=100.0, upper_frequency=8000.0, clip_samples=4000),
                 Quantization(0.75, 20), Rounding.DOUBLE),
}


@pytest.mark.parametrize("name", sorted(OTHER))
def test_other_configurations_bit_exact(name, tmp_path):
    cfg, quant, rounding = OTHER[name]
    clips = np.concatenate([random_clips(6, seed=7, n=12000), np.stack([edge_cases(12000)[k] for k in
                                                                         ("silence", "dc_min", "nyquist", "sine_1khz", "impulse_edge")])])
    exe = api.build_host(cfg, quant, tmp_path, sanitize=True, rounding=rounding)
    assert_same(api.run_host(exe, clips, cfg, tmp_path), expected(clips, cfg, quant, rounding))


def test_rendering_is_deterministic_and_names_no_float():
    a, b = render_frontend(DS, DS_QUANT), render_frontend(DS, DS_QUANT)
    assert a == b and set(a) == {"kws_frontend.h", "kws_frontend.c", "kws_fixedpoint.h"}
    code = re.sub(r"/\*.*?\*/", "", a["kws_frontend.c"] + a["kws_frontend.h"], flags=re.S)  # comments may say "floating point"
    assert "/*" not in code and "int32_t" in code
    for word in ("float", "double", "sqrt(", "log(", "math.h"):
        assert word not in code


def _arm_gcc() -> str:
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.fail("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
    return gcc


@pytest.mark.parametrize("cpu, fpu", [("cortex-m4", "fpv4-sp-d16"), ("cortex-m55", "auto")])
def test_cortex_m_builds_use_no_floating_point(cpu, fpu, tmp_path):
    """Soft-float ABI: no float helper calls; hard-float ABI: no floating-point instruction (the compiler
    may still spill to FP registers or use MVE integer vector ops, which are integer work)."""
    gcc = _arm_gcc()
    for name, text in render_frontend(DS, DS_QUANT).items():
        (tmp_path / name).write_text(text)
    flags = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-mcpu={cpu}", "-mthumb"]
    soft, hard = tmp_path / "soft.o", tmp_path / "hard.o"
    subprocess.run([gcc, *flags, "-mfloat-abi=soft", "-c", str(tmp_path / "kws_frontend.c"), "-o", str(soft)], check=True)
    subprocess.run([gcc, *flags, "-mfloat-abi=hard", f"-mfpu={fpu}", "-c", str(tmp_path / "kws_frontend.c"), "-o", str(hard)], check=True)
    undefined = subprocess.run(["arm-none-eabi-nm", "-u", str(soft)], capture_output=True, text=True, check=True).stdout.split()
    float_calls = [s for s in undefined if s.startswith(("__aeabi_f", "__aeabi_d", "__aeabi_i2f", "__aeabi_ui2f", "__aeabi_l2f"))
                   or s in ("sqrt", "sqrtf", "log", "logf", "exp", "expf", "pow", "powf")]
    assert float_calls == [], float_calls
    asm = subprocess.run(["arm-none-eabi-objdump", "-d", str(hard)], capture_output=True, text=True, check=True).stdout
    mnemonics = [m.group(1) for m in re.finditer(r"^\s*[0-9a-f]+:\s+(?:[0-9a-f]{4} ?)+\s+([a-z][a-z0-9.]*)", asm, re.M)]
    assert mnemonics, "objdump produced no instructions"
    float_ops = [m for m in mnemonics if re.search(r"\.(f16|f32|f64)$", m) or m.startswith(("vcvt", "vsqrt", "vdiv", "vnmul", "vfma", "vfms"))]
    assert float_ops == []


# ---------------------------------------------------------------- kwsgen features (CLI / api)


def test_compute_features_twin_host_and_model(tmp_path):
    wav = SHARED / "audio" / "yes_1000ms.wav"
    twin = api.compute_features(wav, "ds-cnn-mfcc")
    host = api.compute_features(wav, "ds-cnn-mfcc", board="host")
    np.testing.assert_array_equal(twin, host)
    assert api.model_input_quant(DS_MODEL, DS) == DS_QUANT
    np.testing.assert_array_equal(api.compute_features(wav, "ds-cnn-mfcc", model_path=DS_MODEL), twin)
    out = tmp_path / "f.npy"
    assert cli_main(["features", str(wav), "--frontend", "ds-cnn-mfcc", "--model", str(DS_MODEL), "-o", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), twin)
    assert twin.shape == (49, 10) and twin.dtype == np.int8


def test_longer_wav_gives_all_frames(tmp_path):
    clip = random_clips(1, n=40000, seed=3)[0]
    wav = tmp_path / "long.wav"
    wavfile.write(wav, 16000, clip)
    np.testing.assert_array_equal(api.compute_features(wav, "micronet-mfcc", board="host"), mfcc_int8(clip, PRESETS["micronet-mfcc"]))


@pytest.mark.parametrize("make, words", [
    (lambda p: wavfile.write(p, 16000, np.zeros((16000, 2), np.int16)), "must be mono, got 2 channels"),
    (lambda p: wavfile.write(p, 16000, np.zeros(16000, np.float32)), "must be 16-bit PCM, got float32"),
    (lambda p: wavfile.write(p, 16000, np.zeros(16000, np.uint8)), "must be 16-bit PCM, got uint8"),
    (lambda p: wavfile.write(p, 8000, np.zeros(16000, np.int16)), "sample rate 8000 Hz, front end 'ds-cnn-mfcc' needs 16000 Hz"),
    (lambda p: p.write_bytes(b"RIFF junk"), "not a readable WAV file"),
    (lambda p: None, "no such file"),
])
def test_bad_wav_files_are_one_line_errors(tmp_path, capsys, make, words):
    wav = tmp_path / "in.wav"
    make(wav)
    with pytest.raises(KwsgenError, match=words):
        api.compute_features(wav, "ds-cnn-mfcc")
    assert cli_main(["features", str(wav), "--frontend", "ds-cnn-mfcc", "-o", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not (tmp_path / "o.npy").exists()


def test_model_and_board_errors(tmp_path, capsys):
    wav = SHARED / "audio" / "yes_1000ms.wav"
    micro = SHARED / "models" / "tflm-micro-speech" / "micro_speech_quantized.tflite"
    with pytest.raises(KwsgenError, match="model input has 1960 values"):
        api.compute_features(wav, "ds-cnn-mfcc", model_path=micro)
    with pytest.raises(KwsgenError, match="not an emulated board"):
        api.compute_features(wav, "ds-cnn-mfcc", board="nucleo_f746zg")
    assert cli_main(["features", str(wav), "--frontend", "nope", "-o", str(tmp_path / "o.npy")]) == 2
    assert "unknown front-end preset 'nope'" in capsys.readouterr().err
