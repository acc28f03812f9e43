"""Exact integer convolution machinery for the reference interpreter.

Accumulations are exact integers computed with BLAS: float32 products of int8-range values are
exact, and partial sums stay exact as long as they stay below 2^24, so the reduction axis is cut
into chunks that guarantee it (float64 when the values are too large for that to be useful).
Also here: per-layer memoisation and reusable work buffers, the two things that keep a reference
called once per chunk of a large batch from redoing work that does not depend on the chunk.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..fixedpoint import Rounding

T = TypeVar("T")

FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53


def per_layer(derive: Callable[[Any, Any, Any, Rounding], T]) -> Callable[[Any, Any, Any, Rounding], T]:
    """Memoise derive(op, graph, params, rounding): what a reference derives from a layer's constants.

    The interpreter calls a reference once per chunk of a batch; the weights' sums, the requantization
    constants etc. are the same every time. Entries are keyed on the params object's identity (prepared
    once per layer) and hold a reference to it, so that identity cannot be reused while the entry lives.
    """
    cache: OrderedDict[tuple[int, Rounding], tuple[Any, T]] = OrderedDict()
    lock = threading.Lock()

    @wraps(derive)
    def cached(op, graph, params, rounding: Rounding) -> T:
        key = (id(params), rounding)
        with lock:
            hit = cache.get(key)
            if hit is not None and hit[0] is params:
                cache.move_to_end(key)
                return hit[1]
        value = derive(op, graph, params, rounding)
        with lock:
            cache[key] = (params, value)
            if len(cache) > 64:
                cache.popitem(last=False)
        return value

    return cached


_WORK = threading.local()


@contextmanager
def work_buffers() -> Iterator[None]:
    """Inside this block `work_buffer` hands out the same memory from call to call (and frees it at the end).

    Fresh multi-megabyte NumPy arrays come from mmap and are handed back on free, so each costs a page
    fault per 4 KiB on first touch: as much as the arithmetic done on it. The interpreter runs all chunks
    of a batch inside one block.
    """
    outer = getattr(_WORK, "pool", None)
    if outer is None:
        _WORK.pool = {}
    try:
        yield
    finally:
        if outer is None:
            _WORK.pool = None


def work_buffer(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array for an intermediate result that no caller keeps; one per name (and thread)."""
    pool = getattr(_WORK, "pool", None)
    if pool is None:
        return np.empty(shape, dtype)
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    buf = pool.get(name)
    if buf is None or buf.size < nbytes:
        buf = pool[name] = np.empty(max(nbytes, 1), np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


@dataclass(frozen=True)
class ExactMatmul:
    """a[..., K] @ b[K, M] for integer-valued a with |a| <= a_max, exactly: prepared once for a constant b.

    One float32 product when every column's sum of |a * b| stays below 2^24 (whatever order BLAS adds in,
    each partial sum is bounded by it); otherwise K is cut into chunks whose float32 products are exact and
    those are summed in float64 (float64 products throughout when even a short chunk is not exact).
    """

    b: np.ndarray  # [K, M] in the product's dtype
    chunk: int  # K per product; >= K when a single product is exact
    a_max: int

    def __call__(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The integer-valued product: float32 if one product, else float64; `out` (float32) takes the former."""
        k, m = self.b.shape
        a2 = a.reshape(-1, k)
        if self.chunk >= k:
            out = out.reshape(a2.shape[0], m) if out is not None and out.dtype == self.b.dtype else None
            out = np.matmul(a2.astype(self.b.dtype, copy=False), self.b, out=out)
        else:
            out = np.zeros((a2.shape[0], m), dtype=np.float64)
            for start in range(0, k, self.chunk):
                stop = min(start + self.chunk, k)
                out += a2[:, start:stop].astype(self.b.dtype) @ self.b[start:stop]
        return out.reshape(a.shape[:-1] + (m,))


def exact_matmul_plan(b: np.ndarray, a_max: int) -> ExactMatmul:
    """Prepare products with the integer matrix b [K, M] of integer-valued arrays bounded by a_max."""
    k = b.shape[0]
    bmax = int(np.abs(b).max(initial=0))
    if a_max * bmax == 0 or a_max * float(np.abs(b).sum(axis=0, dtype=np.float64).max()) < FLOAT32_EXACT:
        return ExactMatmul(b.astype(np.float32), max(k, 1), a_max)
    chunk = FLOAT32_EXACT // (a_max * bmax)
    if chunk >= 16:
        return ExactMatmul(b.astype(np.float32), chunk, a_max)
    assert FLOAT64_EXACT // (a_max * bmax) >= k, "accumulation exceeds float64's exact range"
    return ExactMatmul(b.astype(np.float64), max(k, 1), a_max)


def exact_matmul_float(a: np.ndarray, b: np.ndarray, a_max: int | None = None) -> np.ndarray:
    """a[..., K] @ b[K, M] for integer-valued arrays, exactly, as integer-valued float32 or float64.

    `a_max` bounds |a| when the caller knows it (e.g. 128 for int8 data), which saves a pass over `a`.
    """
    amax = int(np.abs(a).max(initial=0)) if a_max is None else int(a_max)
    return exact_matmul_plan(b, amax)(a)


def padded_extent(size: int, pad: int, kernel: int, stride: int, dilation: int, out: int) -> tuple[int, int]:
    """(padded size, padding after) along one axis: every window of the output grid inside (TF's padding)."""
    need = (out - 1) * stride + (kernel - 1) * dilation + 1
    after = max(0, need - size - pad)
    return pad + size + after, after


def pad_nhwc(x: np.ndarray, pad: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int], out: tuple[int, int], value: int = 0, dtype=None,
             work: str | None = None) -> np.ndarray:
    """Pad H and W so every window of the output grid is inside the array (TF's top/left padding).

    The result has `dtype` (default: x's), converted in the same pass as the copy; with `work`, it is
    that work buffer (else x itself when nothing changes).
    """
    n, h, w, c = x.shape
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    top, left = pad
    hp, bottom = padded_extent(h, top, kernel[0], stride[0], dilation[0], out[0])
    wp, right = padded_extent(w, left, kernel[1], stride[1], dilation[1], out[1])
    if (top, left, bottom, right) == (0, 0, 0, 0) and (dtype == x.dtype or work is None):
        return x.astype(dtype, copy=False)
    xp = np.empty((n, hp, wp, c), dtype) if work is None else work_buffer(work, (n, hp, wp, c), dtype)
    xp[:, :top] = value
    xp[:, top + h :] = value
    xp[:, top : top + h, :left] = value
    xp[:, top : top + h, left + w :] = value
    xp[:, top : top + h, left : left + w] = x
    return xp


def im2col(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
           out: tuple[int, int], dtype=np.float32, work: str | None = None) -> np.ndarray:
    """Patches [N * OH * OW, KH * KW * C] of a padded NHWC array, gathered and converted in one pass."""
    win = windows(xp, kernel, stride, dilation, out)
    cols = np.empty(win.shape, dtype) if work is None else work_buffer(work, win.shape, dtype)
    np.copyto(cols, win, casting="unsafe")
    return cols.reshape(-1, kernel[0] * kernel[1] * xp.shape[3])


def windows(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
            out: tuple[int, int]) -> np.ndarray:
    """Read-only view [N, OH, OW, KH, KW, C] of the windows of a padded NHWC array."""
    xp = np.ascontiguousarray(xp)
    sn, sh, sw, sc = xp.strides
    shape = (xp.shape[0], out[0], out[1], kernel[0], kernel[1], xp.shape[3])
    strides = (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1], sc)
    return as_strided(xp, shape=shape, strides=strides, writeable=False)
