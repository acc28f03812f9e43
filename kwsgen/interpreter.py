"""NumPy reference interpreter: TFLM reference-kernel semantics, vectorised over a batch.

Every value carries a leading batch axis N; constants are broadcast views, so a batch of 1,000
inputs costs one pass over the layers. This interpreter is the oracle the generated C is checked
against, and is itself checked against TFLM (`tests/test_reference_vs_tflm.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import KwsgenError
from .legalize import Model
from .ir import ABSENT


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


CHUNK = 64  # samples per pass: large batches run in cache-sized pieces (several times faster)


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
    if n <= CHUNK:
        return _run(model, inputs, intermediates=intermediates, core_only=core_only)
    parts = [_run(model, [np.asarray(x)[i : i + CHUNK] for x in inputs], intermediates=intermediates, core_only=core_only)
             for i in range(0, n, CHUNK)]
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

    def value(i: int) -> np.ndarray | None:
        if i == ABSENT:
            return None
        if i in values:
            return values[i]
        t = g.tensors[i]
        if t.data is None:
            raise AssertionError(f"tensor {i} used before it is computed")
        return np.broadcast_to(t.data, (n,) + t.data.shape)

    for layer in layers:
        op = layer.op
        outs = layer.opdef.reference(op, g, layer.params, [value(i) for i in op.inputs], model.rounding)
        for t_index, out in zip(op.outputs, outs):
            t = g.tensors[t_index]
            out = np.asarray(out)
            assert out.dtype == np.dtype(t.dtype), f"{op}: produced {out.dtype}, tensor is {t.dtype}"
            values[t_index] = out.reshape((n,) + t.shape)
    outputs = [value(i) for i in out_idx]
    return RunResult([np.ascontiguousarray(o) for o in outputs], values if intermediates else None)


def run_outputs(model: Model, inputs, *, core_only: bool = False) -> list[np.ndarray]:
    return run(model, inputs, core_only=core_only).outputs
