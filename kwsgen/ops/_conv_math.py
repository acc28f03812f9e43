"""Exact integer convolution machinery for the reference interpreter.

Accumulations are exact integers computed with BLAS: float32 products of int8-range values are
exact, and partial sums stay exact as long as they stay below 2^24, so the reduction axis is cut
into chunks that guarantee it (float64 when the values are too large for that to be useful).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a[..., K] @ b[K, M] for integer arrays, exactly, as int64."""
    k = a.shape[-1]
    amax = int(np.abs(a).max(initial=0))
    bmax = int(np.abs(b).max(initial=0))
    if amax == 0 or bmax == 0 or k == 0:
        return np.zeros(a.shape[:-1] + (b.shape[1],), dtype=np.int64)
    chunk = FLOAT32_EXACT // (amax * bmax)
    if chunk >= 16:
        dtype = np.float32
    else:
        chunk, dtype = FLOAT64_EXACT // (amax * bmax), np.float64
        assert chunk >= k, "accumulation exceeds float64's exact range"
    a2 = a.reshape(-1, k)
    out = np.zeros((a2.shape[0], b.shape[1]), dtype=np.int64)
    for start in range(0, k, chunk):
        stop = min(start + chunk, k)
        out += (a2[:, start:stop].astype(dtype) @ b[start:stop].astype(dtype)).astype(np.int64)
    return out.reshape(a.shape[:-1] + (b.shape[1],))


def pad_nhwc(x: np.ndarray, pad: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int], out: tuple[int, int], value: int = 0) -> np.ndarray:
    """Pad H and W so every window of the output grid is inside the array (TF's top/left padding)."""
    n, h, w, c = x.shape
    need_h = (out[0] - 1) * stride[0] + (kernel[0] - 1) * dilation[0] + 1
    need_w = (out[1] - 1) * stride[1] + (kernel[1] - 1) * dilation[1] + 1
    bottom = max(0, need_h - h - pad[0])
    right = max(0, need_w - w - pad[1])
    if pad == (0, 0) and bottom == 0 and right == 0:
        return x
    return np.pad(x, ((0, 0), (pad[0], bottom), (pad[1], right), (0, 0)), constant_values=value)


def windows(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
            out: tuple[int, int]) -> np.ndarray:
    """Read-only view [N, OH, OW, KH, KW, C] of the windows of a padded NHWC array."""
    xp = np.ascontiguousarray(xp)
    sn, sh, sw, sc = xp.strides
    shape = (xp.shape[0], out[0], out[1], kernel[0], kernel[1], xp.shape[3])
    strides = (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1], sc)
    return as_strided(xp, shape=shape, strides=strides, writeable=False)
