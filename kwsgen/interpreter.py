"""NumPy reference interpreter: TFLM reference-kernel semantics, vectorised over a batch.

Every value carries a leading batch axis N; constants are broadcast views, so a batch of 1,000
inputs costs one pass over the layers. This interpreter is the oracle the generated C is checked
against, and is itself checked against TFLM (`tests/test_reference_vs_tflm.py`).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from .errors import KwsgenError
from .fixedpoint import Rounding
from .ir import ABSENT, Graph
from .legalize import Layer, Model
from .ops._conv_math import work_buffers


@dataclass(frozen=True)
class RunResult:
    outputs: list[np.ndarray]
    intermediates: dict[int, np.ndarray] | None  # tensor index -> [N, *shape]


def _check_inputs(model: Model, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    g = model.graph
    if len(inputs) != len(g.inputs):
        raise KwsgenError(f"model has {len(g.inputs)} input(s), {len(inputs)} given")
    batch = None
    checked = []
    for idx, x in zip(g.inputs, inputs):
        t = g.tensors[idx]
        x = np.asarray(x)
        if x.dtype != np.dtype(t.dtype):
            raise KwsgenError(f"input {t.name!r} must be {t.dtype}, got {x.dtype}")
        if x.ndim == len(t.shape) + 1 and x.shape[1:] == t.shape:
            pass
        elif x.ndim >= 1 and int(np.prod(x.shape[1:])) == t.size:
            x = x.reshape((x.shape[0],) + t.shape)
        else:
            raise KwsgenError(f"input {t.name!r} must have shape [N, {', '.join(map(str, t.shape))}], got {list(x.shape)}")
        if batch is None:
            batch = x.shape[0]
        elif x.shape[0] != batch:
            raise KwsgenError("all inputs must have the same batch size")
        checked.append(x)
    return checked


# A batch runs layer by layer; each reference call gets as many samples as keep its work near this many
# elements (a convolution's temporaries then stay in cache, a softmax takes the whole batch in one call:
# NumPy's per-call costs are paid per chunk, its per-element costs per sample).
CHUNK_ELEMENTS = 1 << 18
BATCH = 1024  # samples per pass over the layers: bounds the memory of very large batches


@lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries (None without threadpoolctl), inspected once."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _one_blas_thread():
    """Run BLAS single-threaded. The reference's products are small (one chunk of a batch): threads save
    little on an idle machine, and on a busy one (a parallel test run, other jobs) their synchronisation
    makes each product up to 100x slower (measured on 2 cores)."""
    controller = _blas_controller()
    return nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


def run(
    model: Model,
    inputs: Sequence[np.ndarray] | np.ndarray,
    *,
    intermediates: bool = False,
    core_only: bool = False,
) -> RunResult:
    """Run N inputs at once. `inputs`: one array per model input, each [N, *input_shape].

    With `core_only`, inputs and outputs are the int8 core tensors (float edges skipped), which is
    exactly what the generated C library's `kws_model_invoke` computes.
    """
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    n = np.asarray(inputs[0]).shape[0] if len(inputs) else 0
    with work_buffers(), _one_blas_thread():
        if n <= BATCH:
            return _run(model, inputs, intermediates=intermediates, core_only=core_only)
        parts = [_run(model, [np.asarray(x)[i : i + BATCH] for x in inputs], intermediates=intermediates,
                      core_only=core_only) for i in range(0, n, BATCH)]
    outputs = [np.concatenate([p.outputs[k] for p in parts]) for k in range(len(parts[0].outputs))]
    inter = None
    if intermediates:
        inter = {t: np.concatenate([p.intermediates[t] for p in parts]) for t in parts[0].intermediates}
    return RunResult(outputs, inter)


def _run(model: Model, inputs: Sequence[np.ndarray], *, intermediates: bool, core_only: bool) -> RunResult:
    g = model.graph
    if core_only:
        layers = model.core_layers
        in_idx, out_idx = model.core_inputs, model.core_outputs
        xs = [np.asarray(x) for x in inputs]
        for idx, x in zip(in_idx, xs):
            t = g.tensors[idx]
            if x.dtype != np.dtype(t.dtype) or int(np.prod(x.shape[1:])) != t.size:
                raise KwsgenError(f"core input {t.name!r} must be {t.dtype} [N, {t.size}], got {x.dtype} {list(x.shape)}")
        xs = [x.reshape((x.shape[0],) + g.tensors[i].shape) for i, x in zip(in_idx, xs)]
    else:
        layers = model.layers
        in_idx, out_idx = g.inputs, g.outputs
        xs = _check_inputs(model, inputs)
    n = xs[0].shape[0] if xs else 1
    values: dict[int, np.ndarray] = dict(zip(in_idx, xs))
    last_use = {i: k for k, layer in enumerate(layers) for i in layer.op.inputs}
    consts = {i for layer in layers for i in layer.op.inputs if i != ABSENT and g.tensors[i].data is not None}

    def value(i: int) -> np.ndarray | None:
        if i == ABSENT:
            return None
        if i in values:
            return values[i]
        t = g.tensors[i]
        if t.data is None:
            raise AssertionError(f"tensor {i} used before it is computed")
        return np.broadcast_to(t.data, (n,) + t.data.shape)

    for k, layer in enumerate(layers):
        op = layer.op
        args = [value(i) for i in op.inputs]
        size = max((g.tensors[i].size for i in op.inputs + op.outputs if i != ABSENT and i not in consts), default=1)
        step = max(1, CHUNK_ELEMENTS // max(size, 1))
        pieces = [_call(layer, g, [None if a is None else a[i : i + step] for a in args], min(step, n - i),
                        model.rounding) for i in range(0, n, step)]
        for j, t_index in enumerate(op.outputs):
            values[t_index] = pieces[0][j] if len(pieces) == 1 else np.concatenate([p[j] for p in pieces])
        if not intermediates:  # drop what no later layer reads
            for i in op.inputs:
                if last_use.get(i) == k and i not in out_idx and i not in in_idx:
                    values.pop(i, None)
    outputs = [value(i) for i in out_idx]
    return RunResult([np.ascontiguousarray(o) for o in outputs], values if intermediates else None)


def _call(layer: Layer, g: Graph, xs: list, n: int, rounding: Rounding) -> list[np.ndarray]:
    """One reference call on a chunk of n samples: outputs checked and shaped [n, *shape]."""
    op = layer.op
    outs = layer.opdef.reference(op, g, layer.params, xs, rounding)
    shaped = []
    for t_index, out in zip(op.outputs, outs):
        t = g.tensors[t_index]
        out = np.asarray(out)
        assert out.dtype == np.dtype(t.dtype), f"{op}: produced {out.dtype}, tensor is {t.dtype}"
        shaped.append(out.reshape((n,) + t.shape))
    return shaped


def run_outputs(model: Model, inputs, *, core_only: bool = False) -> list[np.ndarray]:
    return run(model, inputs, core_only=core_only).outputs
