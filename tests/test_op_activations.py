"""LOGISTIC, TANH, RELU, RELU6 (int8): reference vs TFLM on every int8 input (hypothesis), generated C vs
reference, the C twins of the gemmlowp primitives vs their Python definitions, edge cases."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwsgen import fixedpoint as fp
from kwsgen.codegen import make_env
from kwsgen.errors import UnsupportedModelError
from kwsgen.fixedpoint import Rounding
from kwsgen.interpreter import run
from kwsgen.legalize import load_model
from kwsgen.ops import EmitTarget
from kwsgen.project import host_cc, lower
from kwsgen.testing import OpSpec, build_model, const_spec, int8_spec, single_op_model
from kwsgen.testing.oracle import tflm_run
from kwsgen.toolchain import arm_gcc
from kwsgen.verify import verify

KINDS = ("LOGISTIC", "TANH", "RELU", "RELU6")


def act_model(kind, shape, in_q, out_q) -> bytes:
    return single_op_model(kind, [int8_spec(shape, *in_q)], [int8_spec(shape, *out_q)])


def every_int8(shape, rng, extra: int = 3) -> np.ndarray:
    """Samples that together hold all 256 int8 values (the ops are elementwise: this is exhaustive)."""
    size = int(np.prod(shape))
    k = -(-256 // size)
    ramp = np.resize(np.arange(-128, 128, dtype=np.int16), k * size).astype(np.int8).reshape((k,) + tuple(shape))
    return np.concatenate([ramp, rng.integers(-128, 128, size=(extra,) + tuple(shape), dtype=np.int8)])


def assert_reference_matches_tflm(buf: bytes, xs: np.ndarray) -> None:
    got = run(load_model(buf), [xs]).outputs[0]
    want = tflm_run(buf, [xs])[0].reshape(got.shape)
    np.testing.assert_array_equal(got, want)


def log_scale(lo: float, hi: float):
    return st.floats(lo, hi).map(lambda e: float(np.float32(2.0**e)))


@st.composite
def act_cases(draw):
    kind = draw(st.sampled_from(KINDS))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=1, max_size=4)))
    # LOGISTIC/TANH: scales from 2^-20 (no input saturates) to 2^7 (the range radius drops to 0, left
    # shifts above 31); RELU/RELU6: the usual activation range, plus ratios far from 1.
    in_q = (draw(log_scale(-20, 7)), draw(st.integers(-128, 127)))
    out_zp = -128 if kind == "LOGISTIC" else draw(st.integers(-128, 127))
    out_q = (draw(log_scale(-12, 3)), out_zp)  # TFLM reads neither LOGISTIC's nor TANH's output scale
    if kind == "RELU6" or (kind == "RELU" and draw(st.booleans())):
        out_q = in_q  # the common converter output: RELU6 then is a pure clamp, RELU an exact copy
    return kind, shape, in_q, out_q


@settings(max_examples=240, deadline=None)
@given(case=act_cases(), seed=st.integers(0, 2**32 - 1))
def test_reference_matches_tflm(case, seed):
    kind, shape, in_q, out_q = case
    buf = act_model(kind, shape, in_q, out_q)
    assert_reference_matches_tflm(buf, every_int8(shape, np.random.default_rng(seed)))


EDGES = [
    ("LOGISTIC", (0.0625, 0), (1 / 256, -128)),  # s_in * 2^27 = 2^23: multiplier exactly 2^30
    ("LOGISTIC", (0.1, 127), (1 / 256, -128)),  # zero point extremes
    ("LOGISTIC", (0.1, -128), (1 / 256, -128)),
    ("LOGISTIC", (2.0**-28, 0), (1 / 256, -128)),  # left shift 0: largest radius
    ("LOGISTIC", (8.0, 0), (1 / 256, -128)),  # left shift 31: radius 0, every input saturates
    ("TANH", (0.0625, 0), (1 / 128, 0)),
    ("TANH", (0.9, -128), (1 / 128, 0)),
    ("TANH", (2.0**-20, 127), (1 / 128, 0)),
    ("TANH", (16.0, 5), (1 / 128, 0)),
    ("RELU", (0.05, -128), (0.05, -128)),
    ("RELU", (0.05, 10), (0.0001, -128)),  # ratio 500: saturates
    ("RELU", (0.0001, 127), (0.5, 0)),  # ratio 2e-4: everything rounds to 0
    ("RELU6", (0.05, -128), (0.05, -128)),
    ("RELU6", (0.01, 100), (0.01, 100)),  # 6.0 above int8 in the input scale: clamped to 127
    ("RELU6", (1.0, 0), (1.0, 0)),  # the case arm_relu6_s8 matches
]


@pytest.mark.parametrize("kind,in_q,out_q", EDGES)
def test_edge_cases_match_tflm(kind, in_q, out_q):
    buf = act_model(kind, (2, 128), in_q, out_q)
    assert_reference_matches_tflm(buf, every_int8((2, 128), np.random.default_rng(0)))


def test_relu6_clamps_in_input_quantization_and_rejects_rescaling():
    """TFLM's Relu6Quantized clamps input bytes to [zp, zp + round(6/s)] and never rescales; TFLite
    rescales, so a RELU6 whose output quantization differs has two meanings and is rejected."""
    xs = np.arange(-128, 128, dtype=np.int16).astype(np.int8).reshape(1, 256)
    a = run(load_model(act_model("RELU6", (256,), (0.05, -20), (0.05, -20))), [xs]).outputs[0]
    np.testing.assert_array_equal(a, np.clip(xs, -20, -20 + 120))
    assert "output quantization differs" in _problems(act_model("RELU6", (256,), (0.05, -20), (0.5, 3)))


# ---- generated C vs reference ----

C_CASES = [
    ("LOGISTIC", (1, 7, 5, 9), (0.05, 3), (1 / 256, -128), True),
    ("TANH", (300,), (0.02, -60), (1 / 128, 0), True),
    ("RELU", (3, 33), (0.05, 10), (0.02, -128), True),
    ("RELU6", (1, 10, 10, 3), (0.05, -128), (0.05, -128), True),
    ("RELU6", (70000,), (0.1, 3), (0.1, 3), False),
]


@pytest.mark.parametrize("kind,shape,in_q,out_q,sanitize", C_CASES)
def test_c_matches_reference(kind, shape, in_q, out_q, sanitize):
    buf = act_model(kind, shape, in_q, out_q)
    model = load_model(buf)
    xs = every_int8(shape, np.random.default_rng(1), 1)
    assert verify(model, n=10, given=xs, sanitize=sanitize, source_bytes=buf).mismatches == 0


@pytest.mark.parametrize("kind", ("LOGISTIC", "RELU"))
def test_single_rounding_tables(kind):
    """Under TFLITE_SINGLE_ROUNDING the requantizing multiply rounds once; the table follows."""
    buf = act_model(kind, (256,), (0.0123, 7), (1 / 256, -128) if kind == "LOGISTIC" else (0.0071, -3))
    xs = every_int8((256,), np.random.default_rng(2), 0)
    single, double = (run(load_model(buf, rounding=r), [xs]).outputs[0] for r in (Rounding.SINGLE, Rounding.DOUBLE))
    assert np.abs(single.astype(int) - double.astype(int)).max() <= 1
    assert verify(load_model(buf, rounding=Rounding.SINGLE), n=5, given=xs, source_bytes=buf).mismatches == 0


def test_cmsis_relu6(cmsis_nn):
    """arm_relu6_s8 where it equals TFLM (zp 0, 6.0 -> 6), over more than its 65535-value limit; else portable."""
    for shape, q in (((70000,), (1.0, 0)), ((2, 50), (0.05, -128))):
        buf = act_model("RELU6", shape, q, q)
        xs = every_int8(shape, np.random.default_rng(3), 1)
        assert verify(load_model(buf), n=5, given=xs, kernels="cmsis-nn", cmsis_nn=cmsis_nn, source_bytes=buf).mismatches == 0


def test_tables_are_shared_between_layers_with_equal_quantization():
    """Two LOGISTIC layers with one quantization store one table; both still run correctly."""
    q = (0.05, 3)
    tensors = [int8_spec((1, 64), *q), int8_spec((1, 64), 1 / 256, -128), int8_spec((1, 64), *q),
               int8_spec((1, 64), 1 / 256, -128)]
    buf = build_model(tensors, [OpSpec("LOGISTIC", (0,), (1,)), OpSpec("LOGISTIC", (2,), (3,))], [0, 2], [1, 3])
    model = load_model(buf)
    assert verify(model, n=8, source_bytes=buf).mismatches == 0
    compiled = lower(model, EmitTarget(), board="host", source_name="m.tflite", source_bytes=buf)
    assert compiled.library.files["kws_model_data.c"].count("LOGISTIC table") == 1


# ---- the C twins of the gemmlowp primitives (kws_fixedpoint.h) vs kwsgen.fixedpoint ----

_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "kws_fixedpoint.h"

int main(void)
{
    long v;
    while (scanf("%ld", &v) == 1) {
        const int32_t x = (int32_t)v;
        const int32_t neg = x > 0 ? kws_sub_wrap(0, x) : x;
        int nbou = 0;
        const int32_t recip = kws_get_reciprocal(x, 12, &nbou);
        printf("%ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %d %ld %d\n",
               (long)kws_fp_logistic(x, 4), (long)kws_fp_tanh(x, 4), (long)kws_fp_logistic(x, 0), (long)kws_fp_tanh(x, 2),
               (long)kws_exp_on_negative_values(neg, 5), (long)kws_exp_on_negative_values(neg, 7),
               (long)kws_one_over_one_plus_x_for_x_in_0_1(x > 0 ? x : 0),
               (long)kws_one_minus_x_over_one_plus_x_for_x_in_0_1(x > 0 ? x : 0),
               (long)kws_srm_by_pot(x, 3), (long)kws_srm_by_pot(x, -5), kws_count_leading_zeros((uint32_t)x),
               (long)recip, nbou);
    }
    return 0;
}
"""


def _python_twins(x: np.ndarray) -> np.ndarray:
    neg = np.where(x > 0, fp.wrap32(-x), x)
    pos = np.where(x > 0, x, 0)
    recip, nbou = fp.get_reciprocal(x, 12)
    cols = [fp.fp_logistic(x, 4), fp.fp_tanh(x, 4), fp.fp_logistic(x, 0), fp.fp_tanh(x, 2),
            fp.exp_on_negative_values(neg, 5), fp.exp_on_negative_values(neg, 7),
            fp.one_over_one_plus_x_for_x_in_0_1(pos), fp.one_minus_x_over_one_plus_x_for_x_in_0_1(pos),
            fp.srm_by_pot(x, 3), fp.srm_by_pot(x, -5), fp.count_leading_zeros(x), recip, nbou]
    return np.stack([np.broadcast_to(np.asarray(c, dtype=np.int64), x.shape) for c in cols], axis=1)


def test_fixedpoint_c_twins_match_python(tmp_path: Path):
    header = make_env().get_template("runtime/kws_fixedpoint.h").render(version="test", rounding="double")
    (tmp_path / "kws_fixedpoint.h").write_text(header)
    (tmp_path / "main.c").write_text(_HARNESS)
    exe = tmp_path / "twins"
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=all"]
    subprocess.run([host_cc(), *flags, f"-I{tmp_path}", str(tmp_path / "main.c"), "-o", str(exe)], check=True)
    rng = np.random.default_rng(5)
    special = [0, 1, -1, 2, -2, fp.INT32_MAX, fp.INT32_MIN, fp.INT32_MIN + 1, 1 << 30, -(1 << 30), 1 << 27, -(1 << 27),
               (1 << 19), 12 << 19, 511 << 19]
    x = np.concatenate([np.array(special, np.int64), rng.integers(fp.INT32_MIN, fp.INT32_MAX, 4000, endpoint=True),
                        rng.integers(-(1 << 28), 1 << 28, 2000), rng.integers(-4096, 4096, 1000)])
    proc = subprocess.run([str(exe)], input="\n".join(map(str, x)), capture_output=True, text=True, check=True)
    got = np.array([[int(v) for v in line.split()] for line in proc.stdout.splitlines()], dtype=np.int64)
    want = _python_twins(x)
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"first mismatch: x={x[bad[0][0]]} column {bad[0][1]}: C {got[tuple(bad[0])]}, Python {want[tuple(bad[0])]}"


# ---- unsupported configurations ----


def _problems(buf: bytes) -> str:
    with pytest.raises(UnsupportedModelError) as err:
        load_model(buf)
    return str(err.value)


def test_rejects_unsupported():
    assert "output zero point must be -128" in _problems(act_model("LOGISTIC", (4,), (0.1, 0), (1 / 256, 0)))
    assert "outside the range" in _problems(act_model("TANH", (4,), (2.0**-30, 0), (1 / 128, 0)))
    assert "scale ratio is too large" in _problems(act_model("RELU", (4,), (1.0, 0), (2.0**-40, 0)))
    assert "input scale is too small" in _problems(act_model("RELU6", (4,), (2.0**-40, 0), (2.0**-40, 0)))
    shape_mismatch = single_op_model("RELU", [int8_spec((4,), 0.1, 0)], [int8_spec((5,), 0.1, 0)])
    assert "input has 4 elements, output 5" in _problems(shape_mismatch)


# ---- every operator of this family in one graph ----


def chain_model() -> bytes:
    """AVERAGE_POOL_2D -> MAX_POOL_2D -> MEAN -> {SOFTMAX, LOGISTIC, TANH, RELU, RELU6}: five outputs."""
    q = (0.05, 3)
    tensors = [int8_spec((1, 9, 7, 21), *q), int8_spec((1, 5, 3, 21), *q), int8_spec((1, 5, 3, 21), *q),
               const_spec(np.array([1, 2], np.int32)), int8_spec((1, 21), 0.02, -5),
               int8_spec((1, 21), 1 / 256, -128), int8_spec((1, 21), 1 / 256, -128), int8_spec((1, 21), 1 / 128, 0),
               int8_spec((1, 21), 0.03, -128), int8_spec((1, 21), 0.02, -5)]
    ops = [OpSpec("AVERAGE_POOL_2D", (0,), (1,), dict(padding="SAME", stride_h=2, stride_w=3, filter_height=3, filter_width=4)),
           OpSpec("MAX_POOL_2D", (1,), (2,), dict(padding="SAME", stride_h=1, stride_w=1, filter_height=2, filter_width=2,
                                                  fused_activation_function="RELU")),
           OpSpec("MEAN", (2, 3), (4,), dict(keep_dims=False)), OpSpec("SOFTMAX", (4,), (5,), dict(beta=1.0)),
           OpSpec("LOGISTIC", (4,), (6,)), OpSpec("TANH", (4,), (7,)), OpSpec("RELU", (4,), (8,)), OpSpec("RELU6", (4,), (9,))]
    return build_model(tensors, ops, [0], [5, 6, 7, 8, 9])


def test_chain_matches_tflm_and_c():
    buf = chain_model()
    model = load_model(buf)
    xs = np.random.default_rng(11).integers(-128, 128, size=(30, 1, 9, 7, 21), dtype=np.int8)
    for got, want in zip(run(model, [xs]).outputs, tflm_run(buf, [xs])):
        np.testing.assert_array_equal(got, want.reshape(got.shape))
    assert verify(model, n=30, sanitize=True, source_bytes=buf).mismatches == 0


def _cross_compile(tmp_path: Path, kernels: str, include: list[str]) -> None:
    model = load_model(chain_model())
    compiled = lower(model, EmitTarget(kernels, "dsp"), board="host", source_name="chain.tflite", source_bytes=b"")
    for name, text in compiled.library.files.items():
        (tmp_path / name).write_text(text)
    for src in ("kws_kernels.c", "kws_model.c", "kws_model_data.c"):
        subprocess.run([arm_gcc(), "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-mcpu=cortex-m4", "-mthumb",
                        "-O2", f"-I{tmp_path}", *include, "-c", str(tmp_path / src), "-o", str(tmp_path / (src + ".o"))],
                       check=True)


def test_chain_cross_compiles_for_cortex_m4(tmp_path: Path):
    """Kernels and layer code are -Werror -pedantic clean on arm-none-eabi-gcc."""
    _cross_compile(tmp_path, "portable", [])


def test_chain_cross_compiles_for_cortex_m4_cmsis_nn(tmp_path: Path, cmsis_nn):
    _cross_compile(tmp_path, "cmsis-nn", [f"-I{cmsis_nn / 'Include'}"])
