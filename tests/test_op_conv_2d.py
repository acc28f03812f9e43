"""CONV_2D: reference vs TFLM (hypothesis), generated C vs reference (portable, CMSIS-NN)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwsgen.legalize import load_model
from kwsgen.interpreter import run
from kwsgen.testing.builder import conv_output_size, const_int8, const_int32, int8_spec, single_op_model
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify


@st.composite
def conv_models(draw, max_hw: int = 12) -> bytes:
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    min_h = (kh - 1) * dh + 1 if padding == "VALID" else 1
    min_w = (kw - 1) * dw + 1 if padding == "VALID" else 1
    h = draw(st.integers(min_h, max(min_h, max_hw)))
    w = draw(st.integers(min_w, max(min_w, max_hw)))
    groups = draw(st.sampled_from([1, 1, 1, 2]))
    fc = draw(st.integers(1, 6))
    cin = fc * groups
    cout = groups * draw(st.integers(1, 5))
    oh, ow = (conv_output_size(h, kh, sh, dh, padding), conv_output_size(w, kw, sw, dw, padding))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    in_scale = draw(st.floats(0.005, 2.0))
    out_scale = draw(st.floats(0.005, 4.0))
    in_zp, out_zp = draw(st.integers(-128, 127)), draw(st.integers(-128, 127))
    per_channel = draw(st.booleans())
    w_scales = rng.uniform(0.0005, 0.05, cout) if per_channel else [float(rng.uniform(0.0005, 0.05))]
    weights = rng.integers(-127, 128, (cout, kh, kw, fc)).astype(np.int8)
    bias = None
    if draw(st.booleans()):
        b_scale = [in_scale * s for s in np.broadcast_to(w_scales, (cout,))]
        bias = const_int32(rng.integers(-20000, 20000, cout), b_scale)
    act = draw(st.sampled_from(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]))
    return single_op_model(
        "CONV_2D",
        [int8_spec((1, h, w, cin), in_scale, in_zp), const_int8(weights, list(w_scales) if per_channel else w_scales[0]), bias],
        [int8_spec((1, oh, ow, cout), out_scale, out_zp)],
        {"padding": padding, "stride_h": sh, "stride_w": sw, "dilation_h_factor": dh, "dilation_w_factor": dw,
         "fused_activation_function": act},
    )


def _inputs(model, n: int, seed: int) -> np.ndarray:
    t = model.graph.tensors[model.graph.inputs[0]]
    return np.random.default_rng(seed).integers(-128, 128, (n,) + t.shape, dtype=np.int8)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_models(), st.integers(0, 1000))
def test_reference_matches_tflm(buf, seed):
    model = load_model(buf)
    x = _inputs(model, 4, seed)
    assert np.array_equal(run(model, x).outputs[0], tflm_run(buf, [x])[0])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_models(max_hw=9), st.booleans())
def test_portable_c_matches_reference(buf, sanitize):
    result = verify(load_model(buf), n=20, source_bytes=buf, sanitize=sanitize)
    assert result.ok, result


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(conv_models(max_hw=9))
def test_cmsis_nn_matches_reference(cmsis_nn, buf):
    result = verify(load_model(buf), n=20, source_bytes=buf, kernels="cmsis-nn", cmsis_nn=cmsis_nn)
    assert result.ok, result


def test_rejects_asymmetric_filter():
    from kwsgen.errors import UnsupportedModelError

    buf = single_op_model(
        "CONV_2D",
        [int8_spec((1, 4, 4, 2), 0.1, 0), const_int8(np.ones((3, 1, 1, 2)), 0.1, 5), None],
        [int8_spec((1, 4, 4, 3), 0.1, 0)],
        {"padding": "SAME", "stride_h": 1, "stride_w": 1},
    )
    with pytest.raises(UnsupportedModelError, match="zero point 0"):
        load_model(buf)


def test_scratch_sizes_match_cmsis_nn_notes():
    """Figures measured with CMSIS-NN's own getters (shared/notes/cmsis-nn.md)."""
    from kwsgen.ops.conv_2d import cmsis_scratch_bytes as f

    conv3 = ((1, 8, 8, 3), (8, 3, 3, 3), (1, 8, 8, 8), (1, 1), (1, 1), (1, 1))
    first = ((1, 49, 10, 1), (64, 10, 4, 1), (1, 25, 5, 64), (4, 1), (2, 2), (1, 1))
    assert [f(isa, *conv3) for isa in ("scalar", "dsp", "mve")] == [112, 112, 128]
    assert [f(isa, *first) for isa in ("scalar", "dsp", "mve")] == [160, 160, 192]


_CONV_GETTERS_C = r"""
#include <stdio.h>
#include "arm_nnfunctions.h"
int main(void)
{
    int n, h, w, c, kh, kw, o, oh, ow, ph, pw, sh, sw, dh, dw;
    while (scanf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d", &n, &h, &w, &c, &kh, &kw, &o, &oh, &ow, &ph, &pw,
                 &sh, &sw, &dh, &dw) == 15) {
        cmsis_nn_conv_params p = {0};
        cmsis_nn_dims in = {n, h, w, c}, f = {o, kh, kw, c}, out = {n, oh, ow, o};
        p.padding.h = ph; p.padding.w = pw; p.stride.h = sh; p.stride.w = sw; p.dilation.h = dh; p.dilation.w = dw;
        printf("%d %d %d\n", (int)arm_convolve_wrapper_s8_get_buffer_size(&p, &in, &f, &out),
               (int)arm_convolve_wrapper_s8_get_buffer_size_dsp(&p, &in, &f, &out),
               (int)arm_convolve_wrapper_s8_get_buffer_size_mve(&p, &in, &f, &out));
    }
    return 0;
}
"""


def test_cmsis_scratch_matches_getters(cmsis_nn, tmp_path):
    """cmsis_scratch_bytes against CMSIS-NN's own getters built on the host (plain = scalar, _dsp, _mve)."""
    import subprocess

    from kwsgen.ops._common import out_size, padding_before
    from kwsgen.ops.conv_2d import cmsis_scratch_bytes

    src = tmp_path / "getters.c"
    src.write_text(_CONV_GETTERS_C)
    exe = tmp_path / "getters"
    getters = cmsis_nn / "Source" / "ConvolutionFunctions" / "arm_convolve_get_buffer_sizes_s8.c"
    subprocess.run(["gcc", "-O1", "-std=c99", f"-I{cmsis_nn / 'Include'}", str(src), str(getters), "-o", str(exe)],
                   check=True, capture_output=True)
    rng = np.random.default_rng()
    lines, expected = [], []
    while len(lines) < 1500:
        h = int(rng.choice([1, 1, 2, 5, 9, 30]))
        w, c, o = int(rng.integers(1, 30)), int(rng.choice([1, 2, 3, 4, 8, 12, 64])), int(rng.integers(1, 20))
        kh, kw = int(rng.choice([1, 1, 2, 3, 10])), int(rng.integers(1, 8))
        sh, sw = int(rng.integers(1, 4)), int(rng.choice([1, 2, 3, 4]))
        dh, dw = int(rng.choice([1, 1, 2])), int(rng.choice([1, 1, 2]))
        padding = str(rng.choice(["SAME", "VALID"]))
        oh, ow = out_size(padding, h, kh, sh, dh), out_size(padding, w, kw, sw, dw)
        if oh < 1 or ow < 1:
            continue
        ph, pw = padding_before(sh, dh, h, kh, oh), padding_before(sw, dw, w, kw, ow)
        lines.append(f"1 {h} {w} {c} {kh} {kw} {o} {oh} {ow} {ph} {pw} {sh} {sw} {dh} {dw}")
        expected.append([cmsis_scratch_bytes(isa, (1, h, w, c), (o, kh, kw, c), (1, oh, ow, o), (ph, pw), (sh, sw), (dh, dw))
                         for isa in ("scalar", "dsp", "mve")])
    out = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True).stdout
    got = [[int(v) for v in row.split()] for row in out.strip().splitlines()]
    bad = [(line, g, e) for line, g, e in zip(lines, got, expected) if g != e]
    assert len(got) == len(lines) and not bad, bad[:5]
