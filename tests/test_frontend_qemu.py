"""The generated front end on emulated Cortex-M cores (QEMU mps2_an386 = M4, mps3_an547 = M55),
bit-exact against the NumPy twin: ../shared/audio, 200 random clips and the edge cases, all in one
firmware run per board (semihosting file I/O), through both C APIs (clip and streaming)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from kwsgen.frontend import api
from kwsgen.frontend.codegen import Quantization
from kwsgen.frontend.config import PRESETS
from kwsgen.frontend.fixed import FrontendStream, mfcc_int8, stream_frames
from kwsgen.frontend.signals import edge_cases, random_clips
from kwsgen.targets import load_board

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KWSGEN_SHARED", REPO.parent / "shared"))
DS = PRESETS["ds-cnn-mfcc"]
QUANT = Quantization(1.0809112787246704, 101)

pytestmark = pytest.mark.qemu


def streamed_clips() -> tuple[list[str], np.ndarray]:
    paths = sorted((SHARED / "audio").glob("*_1000ms.wav"))
    if len(paths) < 4:
        pytest.fail(f"shared audio missing under {SHARED} (set KWSGEN_SHARED)")
    named = {f"shared/{p.stem}": wavfile.read(p)[1] for p in paths}
    named.update({f"edge/{k}": v for k, v in edge_cases().items()})
    return list(named), np.stack(list(named.values()))


def check(board_name: str, part: str, got: np.ndarray, want: np.ndarray, names: list[str]) -> None:
    assert got.shape == want.shape, (part, got.shape, want.shape)
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{board_name} {part}: {len(bad)} values differ, first in {names[bad[0][0]]}"


@pytest.mark.parametrize("board_name", ["mps2_an386", "mps3_an547"])
def test_firmware_bit_exact(board_name, tmp_path):
    """Shared clips and edge cases through both APIs; 200 random clips through kws_frontend_clip
    (the streaming API runs the same frame routine; the host tests stream all 200 as well)."""
    board = load_board(board_name)
    elf = api.build_firmware(board, DS, QUANT, tmp_path, defines={"KWS_FE_MAX_SAMPLES": 16000})
    names, clips = streamed_clips()
    out, _ = api.run_firmware(board, elf, clips, DS, tmp_path, timeout=300)
    silence = FrontendStream(DS, QUANT.scale, QUANT.zero_point).features()
    stream = stream_frames(clips, DS, QUANT.scale, QUANT.zero_point)
    window = np.concatenate([np.broadcast_to(silence, (len(clips),) + silence.shape), stream], axis=1)[:, -DS.num_frames:]
    check(board_name, "clip", out.clip, mfcc_int8(clips, DS, QUANT.scale, QUANT.zero_point), names)
    check(board_name, "stream", out.stream, stream, names)
    check(board_name, "window", out.window, window, names)
    rand = random_clips(200, seed=2024)
    out, _ = api.run_firmware(board, elf, rand, DS, tmp_path, timeout=300, modes=api.CLIP)
    check(board_name, "clip", out.clip, mfcc_int8(rand, DS, QUANT.scale, QUANT.zero_point), [f"random/{i}" for i in range(200)])


def test_features_cli_on_emulated_board():
    wav = SHARED / "audio" / "no_1000ms.wav"
    np.testing.assert_array_equal(api.compute_features(wav, "ds-cnn-mfcc", board="mps2_an386"),
                                  api.compute_features(wav, "ds-cnn-mfcc"))
