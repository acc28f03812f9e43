"""RESHAPE, SQUEEZE, EXPAND_DIMS: views. The output shares the input's buffer; no code is emitted."""

from __future__ import annotations

import numpy as np

from ..fixedpoint import Rounding
from ..ir import Graph, Operator
from . import OpDef, register
from ._common import check_int8_activation, tensor_in, tensor_out


def check(op: Operator, graph: Graph) -> list[str]:
    if not op.inputs or len(op.outputs) != 1:
        return ["expects a data input and one output"]
    x, y = tensor_in(op, graph, 0), tensor_out(op, graph)
    problems = check_int8_activation(x, "input") + check_int8_activation(y, "output")
    if problems:
        return problems
    if x.size != y.size:
        return [f"reshapes {x.size} elements into {y.size}"]
    return []


def reference(op: Operator, graph: Graph, params, xs: list, rounding: Rounding) -> list[np.ndarray]:
    y = tensor_out(op, graph)
    return [np.ascontiguousarray(xs[0]).reshape((xs[0].shape[0],) + y.shape)]


for _kind in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
    register(OpDef(_kind, check, reference, view=True))
