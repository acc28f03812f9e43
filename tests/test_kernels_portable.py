"""The portable kernels' fast paths: kws_mbqm's single-multiply form against the reference compositions,
and every code path of the conv / depthwise / fully-connected kernels (pixel pairs packed into one 64-bit
accumulator or not, copied or in-place windows, block layouts, lane layouts) against the reference, built
with sanitizers, and again without a 64-bit multiply (the Cortex-M0/M0+/M23 path, KWS_HAVE_MUL64=0)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kwsgen import fixedpoint as fp
from kwsgen import project
from kwsgen.codegen import TEMPLATES, make_env
from kwsgen.legalize import load_model
from kwsgen.ops import conv_2d
from kwsgen.project import host_cc
from kwsgen.testing.builder import const_int8, const_int32, conv_output_size, int8_spec, single_op_model
from kwsgen.verify import verify

# ---- kws_mbqm (and kws_srdhm) vs the compositions they replace ----

# The previous C formulation, written after gemmlowp / TFLM (quantization_util, fixedpoint.h): the definition
# that the single-multiply kws_mbqm must reproduce for every int32 operand and every shift.
_MBQM_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "kws_fixedpoint.h"

static int32_t ref_srdhm(int32_t a, int32_t b)
{
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static int32_t ref_rdbpot(int32_t x, int e)
{
    const int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    const int32_t rem = x & mask;
    const int32_t thr = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > thr ? 1 : 0);
}

static int32_t ref_mbqm(int32_t x, int32_t m, int32_t s)
{
#if KWS_SINGLE_ROUNDING
    const int64_t total = 31 - s;
    (void)ref_rdbpot;
    return (int32_t)(((int64_t)x * m + ((int64_t)1 << (total - 1))) >> total);
#else
    return ref_rdbpot(ref_srdhm(kws_shl_wrap(x, s > 0 ? s : 0), m), s > 0 ? 0 : -s);
#endif
}

#define MAX_SHIFT (KWS_SINGLE_ROUNDING ? 30 : 31) /* single rounding's 2^(total - 1) needs shift <= 30 */

static uint64_t state = 88172645463325252ull;
static uint64_t next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

/* Operands of every magnitude: uniform, small, powers of two +-1, accumulator-sized, near the extremes. */
static int32_t operand(void)
{
    const uint64_t r = next();
    const int32_t u = (int32_t)(uint32_t)(r >> 32);
    const int32_t p2 = (int32_t)(1u << ((r >> 8) & 31));
    switch (r & 7) {
    case 0: return u;
    case 1: return (int32_t)((r >> 32) & 0xFFFF) - 32768;
    case 2: return kws_add_wrap((r >> 16) & 1 ? kws_sub_wrap(0, p2) : p2, (int32_t)((r >> 20) & 3) - 1);
    case 3: return (int32_t)((r >> 32) & 0x3FFFFF) - 0x200000;
    case 4: return (r >> 40) & 1 ? INT32_MIN + (int32_t)((r >> 32) & 7) : INT32_MAX - (int32_t)((r >> 32) & 7);
    default: return u >> ((r >> 8) & 31);
    }
}

static long bad;
static void check(int32_t x, int32_t m, int32_t s)
{
    const int32_t got = kws_mbqm(x, m, s), want = ref_mbqm(x, m, s);
    if (got != want && bad++ < 5) {
        printf("mismatch mbqm(%ld, %ld, %ld): %ld, want %ld\n", (long)x, (long)m, (long)s, (long)got, (long)want);
    }
    if (s <= 0 && kws_mbqm_smaller_than_one_exp(x, m, s) != want && bad++ < 5) {
        printf("mismatch smaller_than_one_exp(%ld, %ld, %ld)\n", (long)x, (long)m, (long)s);
    }
}

int main(int argc, char **argv)
{
    static const int32_t edge[] = {0, 1, -1, 2, -2, 3, -3, INT32_MIN, INT32_MIN + 1, INT32_MAX, INT32_MAX - 1,
                                   1 << 30, -(1 << 30), (1 << 30) + 1, (1 << 30) - 1, -(1 << 30) + 1,
                                   -(1 << 30) - 1, 1 << 15, -(1 << 15), 0x55555555, -0x55555555, 1518500250};
    const int n_edge = (int)(sizeof edge / sizeof edge[0]);
    const long n = argc > 1 ? atol(argv[1]) : 1000000;
    long i;
    int a, b, s;
    FILE *dump = argc > 2 ? fopen(argv[2], "wb") : NULL;
    for (a = 0; a < n_edge; ++a) {
        for (b = 0; b < n_edge; ++b) {
            if (kws_srdhm(edge[a], edge[b]) != ref_srdhm(edge[a], edge[b]) && bad++ < 5) {
                printf("mismatch srdhm(%ld, %ld)\n", (long)edge[a], (long)edge[b]);
            }
            for (s = -31; s <= MAX_SHIFT; ++s) {
                check(edge[a], edge[b], s);
            }
        }
    }
    /* exact ties: a power-of-two multiplier puts x * q on every rounding boundary of every shift */
    for (s = -31; s <= MAX_SHIFT; ++s) {
        for (b = 0; b <= 31; ++b) {
            const int32_t q = (int32_t)(1u << b);
            for (a = -3000; a <= 3000; ++a) {
                check(a * 37, q, s);
                check(a * 37, kws_sub_wrap(0, q), s);
            }
        }
    }
    for (i = 0; i < n; ++i) {
        const int32_t x = operand(), m = operand(), sh = (int32_t)(next() % (MAX_SHIFT + 32)) - 31;
        check(x, m, sh);
        if (kws_srdhm(x, m) != ref_srdhm(x, m) && bad++ < 5) {
            printf("mismatch srdhm(%ld, %ld)\n", (long)x, (long)m);
        }
        if (dump != NULL && i < 200000) { /* for the Python definition */
            const int32_t rec[4] = {x, m, sh, kws_mbqm(x, m, sh)};
            fwrite(rec, sizeof rec, 1, dump);
        }
    }
    if (dump != NULL) {
        fclose(dump);
    }
    printf("bad %ld\n", bad);
    return bad != 0;
}
"""


def _mbqm_exe(tmp_path: Path, rounding: str, sanitize: bool) -> Path:
    header = make_env().get_template("runtime/kws_fixedpoint.h").render(version="test", rounding=rounding)
    (tmp_path / "kws_fixedpoint.h").write_text(header)
    (tmp_path / "mbqm.c").write_text(_MBQM_HARNESS)
    exe = tmp_path / f"mbqm-{rounding}-{int(sanitize)}"
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    flags += ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"] if sanitize else ["-O2"]
    subprocess.run([host_cc(), *flags, f"-I{tmp_path}", str(tmp_path / "mbqm.c"), "-o", str(exe)], check=True)
    return exe


@pytest.mark.parametrize("rounding", ["double", "single"])
def test_mbqm_matches_reference_composition_and_python(tmp_path: Path, rounding: str):
    """20 M random operands, every shift, every edge operand pair, every exact tie: C vs the compositions it
    replaced; 200 k of them also against kwsgen.fixedpoint (the definition)."""
    dump = tmp_path / "values.bin"
    proc = subprocess.run([str(_mbqm_exe(tmp_path, rounding, False)), "20000000", str(dump)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("bad 0"), proc.stdout
    rec = np.fromfile(dump, dtype="<i4").reshape(-1, 4).astype(np.int64)
    # int32 results (single rounding with a large left shift can exceed int32 in Python; C returns it wrapped)
    want = fp.wrap32(fp.mbqm_int64(rec[:, 0], rec[:, 1], rec[:, 2], fp.Rounding(rounding)))
    bad = np.flatnonzero(want != rec[:, 3])
    assert bad.size == 0, f"first mismatch {rec[bad[0]]}: Python {want[bad[0]]}"


@pytest.mark.parametrize("rounding", ["double", "single"])
def test_mbqm_is_sanitizer_clean(tmp_path: Path, rounding: str):
    proc = subprocess.run([str(_mbqm_exe(tmp_path, rounding, True)), "300000"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("bad 0"), proc.stdout + proc.stderr


# ---- kernel code paths vs the reference ----


def _conv(shape, kernel, cout, *, stride=(1, 1), dilation=(1, 1), padding="SAME", groups=1, zps=(-128, 5),
          weights=None, seed=0, bias=True, act="RELU") -> bytes:
    rng = np.random.default_rng(seed)
    n, h, w, cin = shape
    fc = cin // groups
    kh, kw = kernel
    oh = conv_output_size(h, kh, stride[0], dilation[0], padding)
    ow = conv_output_size(w, kw, stride[1], dilation[1], padding)
    filt = rng.integers(-127, 128, (cout, kh, kw, fc)) if weights is None else weights
    in_s, w_s = 0.05, [float(s) for s in rng.uniform(0.002, 0.01, cout)]
    out_s = float(in_s * max(w_s) * np.sqrt(kh * kw * fc) * 30)
    b = const_int32(rng.integers(-5000, 5000, cout), [in_s * s for s in w_s]) if bias else None
    return single_op_model(
        "CONV_2D", [int8_spec(shape, in_s, zps[0]), const_int8(np.asarray(filt, np.int8), w_s), b],
        [int8_spec((n, oh, ow, cout), out_s, zps[1])],
        {"padding": padding, "stride_h": stride[0], "stride_w": stride[1], "dilation_h_factor": dilation[0],
         "dilation_w_factor": dilation[1], "fused_activation_function": act})


def _dw(shape, kernel, mult, *, stride=(1, 1), dilation=(1, 1), padding="SAME", zps=(3, -7), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    n, h, w, c = shape
    kh, kw = kernel
    oh = conv_output_size(h, kh, stride[0], dilation[0], padding)
    ow = conv_output_size(w, kw, stride[1], dilation[1], padding)
    out_c = c * mult
    in_s, w_s = 0.05, [float(s) for s in rng.uniform(0.002, 0.01, out_c)]
    return single_op_model(
        "DEPTHWISE_CONV_2D",
        [int8_spec(shape, in_s, zps[0]), const_int8(rng.integers(-127, 128, (1, kh, kw, out_c)).astype(np.int8), w_s, 0, 3),
         const_int32(rng.integers(-3000, 3000, out_c), [in_s * s for s in w_s])],
        [int8_spec((n, oh, ow, out_c), float(in_s * max(w_s) * kh * kw * 4), zps[1])],
        {"padding": padding, "stride_h": stride[0], "stride_w": stride[1], "dilation_h_factor": dilation[0],
         "dilation_w_factor": dilation[1], "depth_multiplier": mult, "fused_activation_function": "NONE"})


def _fc(rows, depth, units, *, w_zp=0, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (units, depth)).astype(np.int8)
    return single_op_model(
        "FULLY_CONNECTED",
        [int8_spec((rows, depth), 0.05, -3), const_int8(w, 0.01, w_zp), const_int32(rng.integers(-999, 999, units), 0.0005)],
        [int8_spec((rows, units), float(0.05 * 0.01 * np.sqrt(depth) * 40), 9)], {"fused_activation_function": "NONE"})


_HUGE = np.where(np.random.default_rng(1).random((6, 5, 5, 16)) < 0.5, -127, 127)  # sum |w| = 50,800 per channel

CASES = {
    # conv: pointwise over an odd pixel count (last pixel paired with itself), out_c % 4 != 0 (padded block)
    "conv_1x1_odd": _conv((1, 5, 3, 20), (1, 1), 7, padding="VALID"),
    # one input channel, short runs: every window copied and zero-point padded (the DS-CNN first layer)
    "conv_10x4_copied": _conv((1, 17, 10, 1), (10, 4), 9, stride=(2, 2)),
    # long runs read in place inside; borders copied
    "conv_3x3_direct": _conv((2, 6, 7, 12), (3, 3), 5, zps=(17, -3)),
    # windows too large to copy: borders summed in place (bounded int32 sums)
    "conv_big_window": _conv((1, 6, 6, 16), (5, 5), 6, dilation=(1, 2), padding="SAME"),
    # weights too large to pack two pixels (pack = 0): 32-bit pairs and wrapping border sums
    "conv_unpackable": _conv((1, 7, 7, 16), (5, 5), 6, weights=_HUGE, act="NONE"),
    "conv_grouped": _conv((1, 7, 6, 8), (3, 2), 12, groups=4, stride=(2, 1), dilation=(2, 1)),
    # depthwise: one input channel (run as a conv), adjacent lanes with a short last block, shared, any
    "dw_one_channel": _dw((1, 13, 9, 1), (5, 4), 8, stride=(2, 2)),
    "dw_adjacent": _dw((2, 7, 5, 6), (3, 3), 1, dilation=(1, 2)),
    "dw_shared": _dw((1, 6, 6, 2), (3, 2), 4, stride=(1, 2), padding="VALID"),
    "dw_lanes": _dw((1, 5, 6, 3), (2, 3), 3, dilation=(2, 1)),
    # fully connected: blocks of 8, then 4 (padded), several rows, asymmetric per-tensor filter
    "fc_blocks": _fc(3, 37, 21, w_zp=4),
    "fc_small": _fc(1, 5, 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_paths_match_reference(name: str):
    buf = CASES[name]
    result = verify(load_model(buf), n=12, source_bytes=buf, sanitize=True)
    assert result.ok, result


@pytest.mark.parametrize("name", ["conv_1x1_odd", "conv_10x4_copied", "conv_3x3_direct", "dw_one_channel"])
def test_kernel_paths_without_mul64_match_reference(name: str, monkeypatch):
    """The 32-bit pixel pairs that cores without a one-instruction 64-bit multiply take."""
    monkeypatch.setattr(project, "HOST_CFLAGS", project.HOST_CFLAGS + ("-DKWS_HAVE_MUL64=0",))
    buf = CASES[name]
    result = verify(load_model(buf), n=12, source_bytes=buf, sanitize=True)
    assert result.ok, result


def test_unpackable_weights_are_detected():
    """The packing bound is the compile-time |sum w * x| < 2^22 of kws_conv_pair_packed."""
    assert 128 * int(np.abs(_HUGE.reshape(6, -1)).sum(axis=1).max()) >= conv_2d.PACK_BOUND
    assert conv_2d.PACK_BOUND == 1 << 22


def test_window_buffer_size_agrees_with_the_template():
    """emit_portable drops the bias when every border window can be copied: it must agree with the kernel."""
    text = (TEMPLATES / "ops" / "conv_2d.j2").read_text()
    assert int(re.search(r"#define KWS_CONV_WINDOW_BYTES (\d+)", text).group(1)) == conv_2d.WINDOW_BYTES
