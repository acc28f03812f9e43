"""QUANTIZE / DEQUANTIZE: reference vs TFLM, int8 requantization in C, and the float wrapper
kws_model_invoke_f32 of a float-I/O model bit-exact against the reference."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwsgen.errors import KwsgenError, UnsupportedModelError
from kwsgen.interpreter import run
from kwsgen.legalize import load_model
from kwsgen.ops import EmitTarget
from kwsgen.ops.quantize import affine_quantize
from kwsgen.project import compile_host_exe, library_files, lower, write_tree
from kwsgen.testing.builder import OpSpec, TensorSpec, build_model, const_int8, const_spec, float_spec, int8_spec, single_op_model
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify

f32 = np.float32


def _scale(draw) -> float:
    return float(f32(draw(st.floats(1e-6, 30.0) | st.sampled_from([2.0 ** -7, 1 / 255, 0.1, 1.0]))))


# ---- QUANTIZE int8 -> int8 ----


def requantize_model(shape, s_in, zp_in, s_out, zp_out) -> bytes:
    return single_op_model("QUANTIZE", [int8_spec(shape, s_in, zp_in)], [int8_spec(shape, s_out, zp_out)])


@settings(max_examples=150, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    s_in=st.floats(1e-5, 10.0),
    ratio=st.floats(1e-4, 1e4) | st.sampled_from([1.0, 2.0, 0.5, 2.0 ** -33, 3.0e5]),
    zps=st.tuples(st.integers(-128, 127), st.integers(-128, 127)),
    seed=st.integers(0, 2**32 - 1),
)
def test_requantize_matches_tflm(shape, s_in, ratio, zps, seed):
    """Multipliers below and above 1 (positive shifts), equal scales, and ones flushed to zero."""
    buf = requantize_model(shape, s_in, zps[0], float(f32(s_in / ratio)), zps[1])
    x = np.random.default_rng(seed).integers(-128, 128, size=(4, *shape), dtype=np.int8)
    x.reshape(-1)[: min(x.size, 256)] = np.arange(-128, 128, dtype=np.int8)[: min(x.size, 256)]
    want = tflm_run(buf, [x])[0]
    got = run(load_model(buf), [x]).outputs[0]
    assert np.array_equal(got, want)


@pytest.mark.parametrize("sanitize", [True, False])
@pytest.mark.parametrize("scales", [(0.05, 0.05), (0.02, 0.3), (0.3, 0.0011)])
def test_requantize_c_matches_reference(scales, sanitize):
    buf = requantize_model((3, 7, 5), scales[0], -17, scales[1], 100)
    result = verify(load_model(buf), n=50, source_bytes=buf, sanitize=sanitize)
    assert result.mismatches == 0, result.first_bad_layer


# ---- QUANTIZE float32 -> int8, DEQUANTIZE int8 -> float32 ----


def boundary_floats(rng: np.random.Generator, scale: float, shape: tuple[int, ...]) -> np.ndarray:
    """Values on and next to the rounding midpoints (k + 1/2) * scale, plus out-of-range ones."""
    k = rng.integers(-400, 400, size=shape).astype(np.float64)
    frac = rng.choice(np.array([0.0, 0.5, -0.5, 0.25, 0.4999999, 0.5000001]), size=shape)
    x = ((k + frac) * scale).astype(f32)
    nudge = rng.integers(-1, 2, size=shape)
    x = np.where(nudge > 0, np.nextafter(x, f32(np.inf)), np.where(nudge < 0, np.nextafter(x, f32(-np.inf)), x))
    return x.astype(f32)


@settings(max_examples=120, deadline=None)
@given(scale=st.builds(lambda v: float(f32(v)), st.floats(1e-6, 30.0)), zp=st.integers(-128, 127),
       size=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_float_edges_match_tflm(scale, zp, size, seed):
    """AffineQuantize (float32 division, round half away from zero) and Dequantize, bit for bit."""
    rng = np.random.default_rng(seed)
    q_buf = single_op_model("QUANTIZE", [float_spec((size,))], [int8_spec((size,), scale, zp)])
    x = boundary_floats(rng, scale, (6, size))
    assert np.array_equal(run(load_model(q_buf), [x]).outputs[0], tflm_run(q_buf, [x])[0])
    d_buf = single_op_model("DEQUANTIZE", [int8_spec((size,), scale, zp)], [float_spec((size,))])
    q = rng.integers(-128, 128, size=(6, size), dtype=np.int8)
    got, want = run(load_model(d_buf), [q]).outputs[0], tflm_run(d_buf, [q])[0]
    assert got.dtype == np.float32 and np.array_equal(got.view(np.int32), want.view(np.int32))


def test_affine_quantize_saturates_where_tflm_is_undefined():
    """x/scale beyond int32 or NaN is C++ UB in TFLM's static_cast; kwsgen defines saturation, NaN -> -128."""
    x = np.array([np.inf, -np.inf, np.nan, 3e38, -3e38, 1e12, -1e12, 126.5, -128.5, -0.0], dtype=f32)
    assert affine_quantize(x, 1.0, 0).tolist() == [127, -128, -128, 127, -128, 127, -128, 127, -128, 0]
    assert affine_quantize(np.array([-1.5, 1.5, 2.5], f32), 1.0, -127).tolist() == [-128, -125, -124]


# ---- the float wrapper kws_model_invoke_f32 ----

HARNESS = r"""
#include <stdio.h>
#include "kws_model.h"

int main(int argc, char **argv)
{
    static float in[KWS_MODEL_INPUT_SIZE], out[KWS_MODEL_OUTPUT_SIZE];
    FILE *fin, *fout;
    if (argc < 3 || (fin = fopen(argv[1], "rb")) == NULL || (fout = fopen(argv[2], "wb")) == NULL) {
        return 64;
    }
    while (fread(in, sizeof in, 1, fin) == 1) {
        if (kws_model_invoke_f32(in, out) != KWS_MODEL_OK) {
            return 3;
        }
        fwrite(out, sizeof out, 1, fout);
    }
    fclose(fin);
    fclose(fout);
    return 0;
}
"""


def float_io_model() -> bytes:
    """float [1,5,6] -> QUANTIZE -> PAD -> ADD a constant [7] -> CONCATENATION with a constant -> requantize -> DEQUANTIZE."""
    rng = np.random.default_rng(11)
    tensors = [
        float_spec((1, 5, 6), name="in"),  # 0
        int8_spec((1, 5, 6), 0.047, -3),  # 1 quantized input
        const_spec(np.array([[0, 0], [0, 0], [0, 1]], np.int32)),  # 2 paddings
        int8_spec((1, 5, 7), 0.047, -3),  # 3 padded
        const_int8(rng.integers(-128, 128, (7,)), 0.02, 5),  # 4 bias-like constant
        int8_spec((1, 5, 7), 0.061, 4),  # 5 sum
        const_int8(rng.integers(-128, 128, (1, 5, 6)), 0.061, 4),  # 6 token
        int8_spec((1, 5, 13), 0.061, 4),  # 7 concatenated
        int8_spec((1, 5, 13), 0.0123, -100),  # 8 requantized
        float_spec((1, 5, 13), name="out"),  # 9
    ]
    ops = [
        OpSpec("QUANTIZE", (0,), (1,)),
        OpSpec("PAD", (1, 2), (3,)),
        OpSpec("ADD", (3, 4), (5,), {"fused_activation_function": "RELU6"}),
        OpSpec("CONCATENATION", (5, 6), (7,), {"axis": -1}),
        OpSpec("QUANTIZE", (7,), (8,)),
        OpSpec("DEQUANTIZE", (8,), (9,)),
    ]
    return build_model(tensors, ops, [0], [9])


@pytest.fixture(scope="module")
def float_harness(tmp_path_factory):
    buf = float_io_model()
    model = load_model(buf)
    root = tmp_path_factory.mktemp("float_io")
    compiled = lower(model, EmitTarget("portable"), board="host", source_name="float_io.tflite", source_bytes=buf)
    files = library_files(compiled.library)
    files["src/main.c"] = HARNESS
    write_tree(root, files)
    exe = compile_host_exe(root, root / "harness", sanitize=True)
    return buf, model, exe, root


def run_harness(exe: Path, root: Path, x: np.ndarray) -> np.ndarray:
    (root / "in.bin").write_bytes(np.ascontiguousarray(x, dtype=f32).tobytes())
    proc = subprocess.run([str(exe), str(root / "in.bin"), str(root / "out.bin")], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise KwsgenError(f"float harness failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    return np.frombuffer((root / "out.bin").read_bytes(), dtype=f32).reshape(x.shape[0], 1, 5, 13)


def test_float_model_reference_matches_tflm(float_harness):
    buf, model, _, _ = float_harness
    x = boundary_floats(np.random.default_rng(5), 0.047, (40, 1, 5, 6))
    got, want = run(model, [x]).outputs[0], tflm_run(buf, [x])[0]
    assert np.array_equal(got.view(np.int32), want.view(np.int32))


def test_float_wrapper_matches_reference(float_harness):
    """kws_model_invoke_f32 (sanitized build) against the reference, bit for bit, including -0.0,
    denormals, exact rounding midpoints and values far outside the int8 range (|x / scale| < 2^31)."""
    _, model, exe, root = float_harness
    rng = np.random.default_rng(6)
    x = boundary_floats(rng, 0.047, (200, 1, 5, 6))
    x[0] = -0.0
    x[1] = np.float32(1e-40)
    x[2] = rng.uniform(-1e8, 1e8, size=(1, 5, 6)).astype(f32)
    got = run_harness(exe, root, x)
    want = run(model, [x]).outputs[0]
    assert np.array_equal(got.view(np.int32), want.view(np.int32))


def test_float_wrapper_saturates_out_of_range(float_harness):
    _, model, exe, root = float_harness
    x = np.zeros((4, 1, 5, 6), dtype=f32)
    x[0] = np.inf
    x[1] = -np.inf
    x[2] = np.float32(3e38)
    x[3] = np.nan
    got = run_harness(exe, root, x)
    want = run(model, [x]).outputs[0]
    assert np.array_equal(got.view(np.int32), want.view(np.int32))


# ---- unsupported configurations ----


def test_check_rejects_unsupported():
    with pytest.raises(UnsupportedModelError, match="QUANTIZE supports float32 -> int8"):
        load_model(single_op_model("QUANTIZE", [TensorSpec((4,), "int16", 0.1, 0)], [int8_spec((4,), 0.1)]))
    with pytest.raises(UnsupportedModelError, match="output is int16"):
        load_model(single_op_model("QUANTIZE", [int8_spec((4,), 0.1)], [TensorSpec((4,), "int16", 0.1, 0)]))
    with pytest.raises(UnsupportedModelError, match="per channel"):
        load_model(single_op_model("QUANTIZE", [float_spec((2, 2))], [TensorSpec((2, 2), "int8", (0.1, 0.2), 0)]))
    # A float QUANTIZE / DEQUANTIZE inside the model (not on an edge) computes in float on the device.
    inner = build_model(
        [int8_spec((4,), 0.1), float_spec((4,)), int8_spec((4,), 0.2)],
        [OpSpec("DEQUANTIZE", (0,), (1,)), OpSpec("QUANTIZE", (1,), (2,))], [0], [2])
    with pytest.raises(UnsupportedModelError, match="only the model's input and output edges may be float"):
        load_model(inner)
