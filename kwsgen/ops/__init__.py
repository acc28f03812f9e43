"""Operator registry: one module per operator (or tight family), each owning everything about it.

An `OpDef` gathers, for one TFLite builtin, the support check, the parameter preparation shared by
the reference interpreter and the code generator, the NumPy reference (TFLM reference-kernel
semantics, vectorised over a leading batch axis), the cost model, scratch needs and C emission.
Adding an operator means adding one module here plus its template in `templates/ops/`.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..fixedpoint import Rounding
from ..ir import Graph, Operator

if TYPE_CHECKING:  # pragma: no cover
    from ..codegen import EmitContext

CheckFn = Callable[[Operator, Graph], list[str]]
PrepareFn = Callable[[Operator, Graph, Rounding], Any]
ReferenceFn = Callable[[Operator, Graph, Any, list, Rounding], list[np.ndarray]]
MacsFn = Callable[[Operator, Graph], int]
ScratchFn = Callable[[Operator, Graph, Any, "EmitTarget"], int]
EmitFn = Callable[["EmitContext"], str]


@dataclass(frozen=True)
class EmitTarget:
    """What code generation is for: kernel backend and the core's ISA (scratch sizes depend on it)."""

    kernels: str = "portable"  # "portable" or "cmsis-nn"
    isa: str = "scalar"  # "scalar", "dsp" or "mve" (CMSIS-NN's three code paths)


def _no_macs(op: Operator, graph: Graph) -> int:
    return 0


def _no_scratch(op: Operator, graph: Graph, params: Any, target: EmitTarget) -> int:
    return 0


def _no_params(op: Operator, graph: Graph, rounding: Rounding) -> None:
    return None


@dataclass(frozen=True)
class OpDef:
    kind: str  # TFLite builtin name
    check: CheckFn  # reasons it cannot be compiled; [] when supported
    reference: ReferenceFn  # batched NumPy semantics (inputs and outputs carry a leading N axis)
    prepare: PrepareFn = _no_params  # constants shared by reference and codegen
    macs: MacsFn = _no_macs
    emit: EmitFn | None = None  # C for one layer; None for views (no code)
    scratch: ScratchFn = _no_scratch  # bytes of kernel scratch, planned in the arena
    view: bool = False  # output is input 0 reinterpreted (reshape family): no copy, aliased buffer
    foldable: bool = True  # may run at compile time when all inputs are constant
    template: str | None = None  # templates/ops/<template>.j2 holding kernel() and call macros


REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    assert opdef.kind not in REGISTRY, f"{opdef.kind} registered twice"
    REGISTRY[opdef.kind] = opdef
    return opdef


def lookup(kind: str) -> OpDef | None:
    return REGISTRY.get(kind)


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_load_all()
