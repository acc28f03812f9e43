"""Checks and legalisation: from an imported Graph to a compilable Model.

- Shape arithmetic and any operator whose inputs are all constant is folded at compile time by
  running its reference semantics (so a dynamic-batch export runs with batch 1).
- Operators whose results nobody uses are dropped.
- Every remaining operator is checked; all problems are reported together.
- Float edges (QUANTIZE float->int8 on an input, DEQUANTIZE int8->float on an output) are
  recognised: the device runs the int8 core, the float edges become a C wrapper.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import Problem, UnsupportedModelError
from .fixedpoint import Rounding
from .importer import load
from .ir import ABSENT, Graph, Operator, const_array
from .ops import OpDef, lookup

# Operators that only ever make sense at compile time (their result is shape metadata).
_FOLD_ONLY = {"SHAPE"}


@dataclass(frozen=True)
class Layer:
    op: Operator
    opdef: OpDef
    params: Any


@dataclass(frozen=True)
class Model:
    """A legalised graph with its prepared layers, ready for the interpreter and the code generator."""

    graph: Graph
    layers: tuple[Layer, ...]
    rounding: Rounding
    core_inputs: tuple[int, ...]  # int8 tensors where the device program starts
    core_outputs: tuple[int, ...]  # int8 tensors where it ends
    input_edges: tuple[Layer | None, ...]  # per graph input: its QUANTIZE float->int8 edge, if any
    output_edges: tuple[Layer | None, ...]  # per graph output: its DEQUANTIZE int8->float edge, if any

    @property
    def core_layers(self) -> tuple[Layer, ...]:
        edges = {id(e.op) for e in self.input_edges + self.output_edges if e is not None}
        return tuple(layer for layer in self.layers if id(layer.op) not in edges)

    @property
    def float_io(self) -> bool:
        return any(e is not None for e in self.input_edges + self.output_edges)


def _shape_value(op: Operator, graph: Graph) -> np.ndarray:
    dtype = "int64" if op.opt("out_type", 2) == 4 else "int32"  # TensorType.INT64 == 4
    return np.array(graph.tensors[op.inputs[0]].shape, dtype=dtype)


def _fold_one(op: Operator, graph: Graph) -> list[np.ndarray] | None:
    """Compute an operator's outputs at compile time, or None if it depends on run-time data."""
    if op.kind == "SHAPE":
        return [_shape_value(op, graph)]
    ins = [graph.tensors[i] if i != ABSENT else None for i in op.inputs]
    if not ins or any(t is not None and not t.is_const for t in ins):
        return None
    opdef = lookup(op.kind)
    if opdef is None or not opdef.foldable:
        return None
    values = [None if t is None else t.data[None] for t in ins]
    params = opdef.prepare(op, graph, Rounding.DOUBLE)
    outs = opdef.reference(op, graph, params, values, Rounding.DOUBLE)
    return [np.asarray(o)[0] for o in outs]


def fold_constants(graph: Graph) -> Graph:
    """Replace constant-input operators by constant tensors, in execution order."""
    kept: list[Operator] = []
    for op in graph.operators:
        try:
            values = _fold_one(op, graph)
        except Exception:  # folding is an optimisation; the op is then checked like any other
            values = None
        if values is None:
            kept.append(op)
            continue
        updates = []
        for t_index, value in zip(op.outputs, values):
            t = graph.tensors[t_index]
            value = np.asarray(value).astype(t.dtype, copy=False).reshape(value.shape)
            updates.append(replace(t, data=const_array(value), shape=tuple(value.shape)))
        graph = graph.with_tensors(updates)
    return replace(graph, operators=tuple(kept))


def drop_dead(graph: Graph) -> Graph:
    """Remove operators none of whose outputs reaches a graph output."""
    needed = set(graph.outputs)
    kept = []
    for op in reversed(graph.operators):
        if any(t in needed for t in op.outputs):
            kept.append(op)
            needed.update(t for t in op.inputs if t != ABSENT)
    return replace(graph, operators=tuple(reversed(kept)))


def _edge_problems(graph: Graph) -> list[str]:
    problems = []
    if not graph.inputs or not graph.outputs:
        problems.append(f"model has {len(graph.inputs)} input(s) and {len(graph.outputs)} output(s); "
                        "a keyword-spotting model needs at least one of each")
    for i in graph.inputs:
        t = graph.tensors[i]
        if t.dtype not in ("int8", "float32"):
            problems.append(f"model input {t.name!r} is {t.dtype}; inputs must be int8 (or float32 feeding a QUANTIZE)")
    for i in graph.outputs:
        t = graph.tensors[i]
        if t.dtype not in ("int8", "float32"):
            problems.append(f"model output {t.name!r} is {t.dtype}; outputs must be int8 (or float32 from a DEQUANTIZE)")
    if any(t.variable for t in graph.tensors):
        problems.append("model has variable (stateful) tensors; stateful operators are not supported")
    return problems


def check(graph: Graph) -> None:
    """Raise UnsupportedModelError listing every problem of every operator."""
    problems: list[Problem | str] = list(_edge_problems(graph))
    for op in graph.operators:
        opdef = lookup(op.kind)
        if opdef is None or op.kind in _FOLD_ONLY:
            reason = _unsupported_reason(op)
            problems.append(Problem(op.index, op.kind, reason))
            continue
        for reason in opdef.check(op, graph):
            problems.append(Problem(op.index, op.kind, reason))
    if problems:
        raise UnsupportedModelError(problems)


def _unsupported_reason(op: Operator) -> str:
    if op.kind == "CUSTOM":
        return f"custom operator {op.opt('custom_code', '')!r} is not supported"
    if op.kind in ("WHILE", "IF", "CALL_ONCE"):
        return "control flow is not supported"
    if "LSTM" in op.kind or op.kind in ("SVDF", "UNIDIRECTIONAL_SEQUENCE_RNN", "RNN"):
        return "recurrent operators are not supported yet (unroll the RNN, e.g. Keras unroll=True)"
    if op.kind in _FOLD_ONLY:
        return "depends on a run-time shape (only static shapes are supported)"
    return "operator is not supported by kwsgen"


def _edges(graph: Graph, layers: tuple[Layer, ...]) -> tuple[tuple, tuple, tuple, tuple]:
    producers = {t: layer for layer in layers for t in layer.op.outputs}
    consumers: dict[int, list[Layer]] = {}
    for layer in layers:
        for t in layer.op.inputs:
            consumers.setdefault(t, []).append(layer)
    in_edges, core_in = [], []
    for i in graph.inputs:
        users = consumers.get(i, [])
        if graph.tensors[i].dtype == "float32" and len(users) == 1 and users[0].op.kind == "QUANTIZE":
            in_edges.append(users[0])
            core_in.append(users[0].op.outputs[0])
        else:
            in_edges.append(None)
            core_in.append(i)
    out_edges, core_out = [], []
    for o in graph.outputs:
        p = producers.get(o)
        if graph.tensors[o].dtype == "float32" and p is not None and p.op.kind == "DEQUANTIZE":
            out_edges.append(p)
            core_out.append(p.op.inputs[0])
        else:
            out_edges.append(None)
            core_out.append(o)
    return tuple(core_in), tuple(core_out), tuple(in_edges), tuple(out_edges)


def float_ops_problems(graph: Graph, core_in: tuple[int, ...], core_out: tuple[int, ...], edges: tuple) -> list[Problem]:
    """Float tensors may only appear at the wrapped edges."""
    edge_ops = {id(e.op) for e in edges if e is not None}
    problems = []
    for op in graph.operators:
        if id(op) in edge_ops:
            continue
        for t in [graph.tensors[i] for i in op.inputs + op.outputs if i != ABSENT]:
            if t.dtype.startswith("float") and not t.is_const:
                problems.append(Problem(op.index, op.kind, f"computes in {t.dtype} (tensor {t.name!r}); only the model's input and output edges may be float"))
                break
    return problems


def legalize(graph: Graph, rounding: Rounding = Rounding.DOUBLE) -> Model:
    graph = drop_dead(fold_constants(graph))
    check(graph)
    layers = tuple(Layer(op, lookup(op.kind), lookup(op.kind).prepare(op, graph, rounding)) for op in graph.operators)
    core_in, core_out, in_edges, out_edges = _edges(graph, layers)
    problems = float_ops_problems(graph, core_in, core_out, in_edges + out_edges)
    if problems:
        raise UnsupportedModelError(problems)
    return Model(graph, layers, rounding, core_in, core_out, in_edges, out_edges)


def load_model(source: str | Path | bytes, rounding: Rounding = Rounding.DOUBLE) -> Model:
    """Import, fold, check and prepare a .tflite model (path or bytes)."""
    return legalize(load(source), rounding)
