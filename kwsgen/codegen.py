"""Code generation: a Model plus its memory Plan become a self-contained C99 library.

Each operator module emits its own layer through an `EmitContext` (which names buffers, pools
constant arrays and renders the operator's template); this module only assembles files:

    kws_model.h       API, sizes and quantization as macros
    kws_model.c       the arena and one straight-line call per layer
    kws_model_data.c  weights and every precomputed multiplier/shift as aligned const arrays
    kws_kernels.h/.c  kwsgen's portable kernels for the operators this model uses
    kws_fixedpoint.h  the C twin of kwsgen/fixedpoint.py

Rendering is deterministic: the same model and options give byte-identical files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from . import __version__
from .fixedpoint import Rounding
from .ir import ABSENT, Tensor
from .legalize import Layer, Model
from .ops import EmitTarget
from .planner import Plan

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"

_CTYPES = {
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
    "float32": "float",
}


def c_type(dtype: str) -> str:
    return _CTYPES[dtype]


def c_ident(text: str) -> str:
    s = "".join(c if c.isalnum() else "_" for c in text)
    return s if s and not s[0].isdigit() else "_" + s


def c_float(x: float) -> str:
    """A float literal that parses back to exactly the same float32."""
    return f"{float(np.float32(x))!r}f".replace("inff", "INFINITY")


def format_values(values: np.ndarray, per_line: int = 16) -> str:
    flat = np.asarray(values).ravel()
    if flat.dtype.kind == "f":
        items = [c_float(v) for v in flat]
    elif flat.dtype == np.int32 or flat.dtype == np.int64:
        items = [str(int(v)) if v != -(1 << 31) else "INT32_MIN" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n    ".join(lines)


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["cfloat"] = c_float
    env.filters["values"] = format_values
    env.filters["ident"] = c_ident
    return env


@dataclass(frozen=True)
class CArray:
    name: str
    ctype: str
    values: np.ndarray
    align: int
    comment: str

    @property
    def nbytes(self) -> int:
        return int(self.values.size * self.values.itemsize)


@dataclass
class ConstPool:
    """Const arrays of the model; identical contents are stored once."""

    arrays: list[CArray] = field(default_factory=list)
    _by_content: dict[tuple, str] = field(default_factory=dict)

    def add(self, name: str, values: np.ndarray, ctype: str, align: int, comment: str) -> str:
        values = np.ascontiguousarray(values)
        key = (ctype, values.shape, values.tobytes())
        if key in self._by_content:
            return self._by_content[key]
        self.arrays.append(CArray(name, ctype, values, align, comment))
        self._by_content[key] = name
        return name

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


@dataclass
class EmitContext:
    """Everything one layer's emitter may use; see `kwsgen.ops.OpDef.emit`."""

    step: int
    layer: Layer
    model: Model
    target: EmitTarget
    plan: Plan
    pool: ConstPool
    buffer_names: dict[int, str]
    env: jinja2.Environment
    kernels_used: set[str]

    @property
    def op(self):
        return self.layer.op

    @property
    def params(self) -> Any:
        return self.layer.params

    @property
    def prefix(self) -> str:
        return f"l{self.step}"

    @property
    def rounding(self) -> Rounding:
        return self.model.rounding

    def tensor(self, t: int) -> Tensor:
        return self.model.graph.tensors[t]

    def input_tensor(self, i: int) -> Tensor | None:
        idx = self.op.inputs[i] if i < len(self.op.inputs) else ABSENT
        return None if idx == ABSENT else self.tensor(idx)

    def output_tensor(self, i: int = 0) -> Tensor:
        return self.tensor(self.op.outputs[i])

    def inp(self, i: int = 0) -> str:
        """C expression for activation input i (a named arena buffer), or its const array."""
        idx = self.op.inputs[i] if i < len(self.op.inputs) else ABSENT
        if idx == ABSENT:
            return "NULL"
        if idx in self.buffer_names:
            return self.buffer_names[idx]
        return self.weights(i)

    def out(self, i: int = 0) -> str:
        return self.buffer_names[self.op.outputs[i]]

    def const(self, suffix: str, values, ctype: str = "int32_t", align: int = 4, comment: str = "") -> str:
        arr = np.asarray(values)
        return self.pool.add(f"{self.prefix}_{suffix}", arr, ctype, align, comment or f"layer {self.step} {self.op.kind}")

    def weights(self, i: int, align: int = 16, pad_to: int | None = None) -> str:
        """The constant input i as a const array (shared if another layer uses the same data)."""
        t = self.input_tensor(i)
        if t is None:
            return "NULL"
        data = np.ascontiguousarray(t.data).ravel()
        if pad_to and data.size % pad_to:
            data = np.concatenate([data, np.zeros(pad_to - data.size % pad_to, dtype=data.dtype)])
        return self.pool.add(f"{self.prefix}_{c_ident(t.short_name)}", data, c_type(t.dtype), align, f"{t.name} {list(t.shape)}")

    @property
    def scratch(self) -> str:
        return f"kws_scratch_{self.step}" if self.plan.scratch(self.step) else "NULL"

    @property
    def scratch_bytes(self) -> int:
        s = self.plan.scratch(self.step)
        return s[1] if s else 0

    def render(self, template: str, macro: str, **kwargs: Any) -> str:
        module = self.env.get_template(template).make_module()
        return str(getattr(module, macro)(L=self, **kwargs))

    def require_kernel(self, template: str) -> None:
        """Include another template's portable kernel (e.g. a shared copy kernel) exactly once."""
        self.kernels_used.add(template)

    def portable(self, **kwargs: Any) -> "Emitted":
        """Emit the layer with kwsgen's portable kernel (macros decl() and call() of the op template)."""
        template = f"ops/{self.layer.opdef.template}.j2"
        self.kernels_used.add(template)
        return Emitted(self.render(template, "decl", **kwargs), self.render(template, "call", **kwargs))

    def cmsis(self, **kwargs: Any) -> "Emitted":
        """Emit the layer as a CMSIS-NN call (macros cmsis_decl() and cmsis_call() of the op template)."""
        template = f"ops/{self.layer.opdef.template}.j2"
        return Emitted(self.render(template, "cmsis_decl", **kwargs), self.render(template, "cmsis_call", **kwargs), True)


@dataclass(frozen=True)
class Emitted:
    decl: str  # file-scope declarations (parameter structs)
    call: str  # statements in kws_model_invoke; must set `status`
    cmsis: bool = False


@dataclass(frozen=True)
class LayerCode:
    step: int
    layer: Layer
    decl: str
    call: str
    cmsis: bool
    out_names: tuple[str, ...]
    out_bytes: tuple[int, ...]
    scratch_bytes: int


@dataclass(frozen=True)
class Library:
    """The rendered C library: file name -> text, plus figures for the report."""

    files: dict[str, str]
    layers: tuple[LayerCode, ...]
    weights_bytes: int
    uses_cmsis: bool


def buffer_names(model: Model, p: Plan) -> dict[int, str]:
    names = {}
    for b in p.buffers:
        for t in b.tensors:
            names[t] = f"t{t}_{c_ident(model.graph.tensors[t].short_name)}"
    return names


def _io_info(model: Model, indices: tuple[int, ...]) -> list[dict]:
    g = model.graph
    info = []
    for i in indices:
        t = g.tensors[i]
        info.append({"name": t.name, "index": i, "shape": list(t.shape), "size": t.size, "scale": t.quant.s, "zero_point": t.quant.zp})
    return info


def _edge_info(model: Model) -> dict:
    """Quantize/dequantize parameters of the float edges for the float wrapper."""
    g = model.graph
    ins = []
    for e, core in zip(model.input_edges, model.core_inputs):
        t = g.tensors[core]
        ins.append(None if e is None else {"scale": t.quant.s, "zero_point": t.quant.zp, "size": t.size})
    outs = []
    for e, core in zip(model.output_edges, model.core_outputs):
        t = g.tensors[core]
        outs.append(None if e is None else {"scale": t.quant.s, "zero_point": t.quant.zp, "size": t.size})
    return {"inputs": ins, "outputs": outs}


def emit_layers(model: Model, p: Plan, target: EmitTarget, env: jinja2.Environment) -> tuple[list[LayerCode], ConstPool, set[str]]:
    pool = ConstPool()
    kernels: set[str] = set()
    names = buffer_names(model, p)
    codes = []
    for step, layer in enumerate(model.core_layers):
        if layer.opdef.view:
            continue
        ctx = EmitContext(step, layer, model, target, p, pool, names, env, kernels)
        emitted = layer.opdef.emit(ctx)
        outs = tuple(names[t] for t in layer.op.outputs)
        out_bytes = tuple(model.graph.tensors[t].nbytes for t in layer.op.outputs)
        codes.append(LayerCode(step, layer, emitted.decl, emitted.call, emitted.cmsis, outs, out_bytes, ctx.scratch_bytes))
    return codes, pool, kernels


def render_library(model: Model, p: Plan, target: EmitTarget, *, source_name: str, source_bytes: bytes) -> Library:
    env = make_env()
    codes, pool, kernels = emit_layers(model, p, target, env)
    names = buffer_names(model, p)
    g = model.graph
    buffers = []
    for b, off in zip(p.buffers, p.offsets):
        for t in b.tensors:
            tensor = g.tensors[t]
            buffers.append({"name": names[t], "offset": off, "bytes": tensor.nbytes, "shape": list(tensor.shape), "first": b.first, "last": b.last})
    scratches = [{"step": b.scratch_of, "offset": off, "bytes": b.size} for b, off in zip(p.buffers, p.offsets) if b.scratch_of is not None]
    ctx = {
        "version": __version__,
        "source_name": source_name,
        "source_sha256": hashlib.sha256(source_bytes).hexdigest(),
        "rounding": model.rounding.value,
        "target": target,
        "plan": p,
        "buffers": sorted(buffers, key=lambda b: (b["offset"], b["name"])),
        "scratches": scratches,
        "layers": codes,
        "inputs": [dict(i, buffer=names[i["index"]]) for i in _io_info(model, model.core_inputs)],
        "outputs": [dict(o, buffer=names[o["index"]]) for o in _io_info(model, model.core_outputs)],
        "edges": _edge_info(model),
        "float_io": model.float_io,
        "arrays": pool.arrays,
        "kernel_templates": sorted(kernels),
        "uses_cmsis": any(c.cmsis for c in codes),
        "macs": sum(layer.opdef.macs(layer.op, g) for layer in model.core_layers),
    }
    files = {
        "kws_model.h": env.get_template("runtime/kws_model.h.j2").render(ctx),
        "kws_model.c": env.get_template("runtime/kws_model.c.j2").render(ctx),
        "kws_model_data.h": env.get_template("runtime/kws_model_data.h.j2").render(ctx),
        "kws_model_data.c": env.get_template("runtime/kws_model_data.c.j2").render(ctx),
        "kws_kernels.h": env.get_template("runtime/kws_kernels.h.j2").render(ctx),
        "kws_kernels.c": env.get_template("runtime/kws_kernels.c.j2").render(ctx),
        "kws_fixedpoint.h": env.get_template("runtime/kws_fixedpoint.h").render(ctx),
    }
    return Library(files, tuple(codes), pool.nbytes, ctx["uses_cmsis"])
