"""`kwsgen inspect`: a per-layer table of a model (what will run, what it costs)."""

from __future__ import annotations

import json

from .legalize import Model
from .ir import Tensor


def _quant_text(t: Tensor | None) -> str:
    if t is None or t.quant is None:
        return "-"
    q = t.quant
    if q.per_channel:
        return f"per-channel x{len(q.scale)} (axis {q.axis})"
    return f"s={q.s:.6g} zp={q.zp}"


_KEY_OPTIONS = (
    "padding", "stride_h", "stride_w", "dilation_h_factor", "dilation_w_factor", "depth_multiplier",
    "fused_activation_function", "keep_num_dims", "keep_dims", "filter_height", "filter_width", "beta", "axis",
    "num_splits", "align_corners", "half_pixel_centers",
)


def layer_rows(model: Model) -> list[dict]:
    g = model.graph
    rows = []
    for layer in model.layers:
        op = layer.op
        ins = [g.tensors[i] for i in op.inputs if i >= 0]
        acts = [t for t in ins if not t.is_const]
        consts = [t for t in ins if t.is_const]
        outs = [g.tensors[i] for i in op.outputs]
        options = {k: v for k, v in op.options.items() if k in _KEY_OPTIONS and v not in (None, 0, "NONE", False)}
        rows.append({
            "index": op.index,
            "op": op.kind,
            "inputs": [list(t.shape) for t in acts],
            "outputs": [list(t.shape) for t in outs],
            "options": options,
            "macs": layer.opdef.macs(op, g),
            "weight_bytes": sum(t.nbytes for t in consts),
            "input_quant": _quant_text(acts[0] if acts else None),
            "weight_quant": _quant_text(consts[0] if consts else None),
            "output_quant": _quant_text(outs[0]),
            "view": layer.opdef.view,
        })
    return rows


def summary(model: Model) -> dict:
    rows = layer_rows(model)
    g = model.graph
    return {
        "layers": rows,
        "totals": {
            "operators": len(rows),
            "macs": sum(r["macs"] for r in rows),
            "weight_bytes": sum(r["weight_bytes"] for r in rows),
            "activation_bytes": sum(g.tensors[t].nbytes for layer in model.core_layers for t in layer.op.outputs),
        },
        "inputs": [{"name": g.tensors[i].name, "shape": list(g.tensors[i].shape), "dtype": g.tensors[i].dtype} for i in g.inputs],
        "outputs": [{"name": g.tensors[i].name, "shape": list(g.tensors[i].shape), "dtype": g.tensors[i].dtype} for i in g.outputs],
        "float_io": model.float_io,
    }


def _shape(shapes: list[list[int]]) -> str:
    return " ".join("x".join(map(str, s)) or "scalar" for s in shapes)


def format_table(model: Model) -> str:
    info = summary(model)
    header = ("#", "op", "in", "out", "MACs", "weights B", "quant in / w / out", "options")
    rows = [
        (
            str(r["index"]), r["op"], _shape(r["inputs"]), _shape(r["outputs"]), f"{r['macs']:,}", f"{r['weight_bytes']:,}",
            f"{r['input_quant']} / {r['weight_quant']} / {r['output_quant']}",
            ", ".join(f"{k}={v}" for k, v in r["options"].items()),
        )
        for r in info["layers"]
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    t = info["totals"]
    io = "; ".join(f"{d['name']} {d['dtype']}{d['shape']}" for d in info["inputs"]) + " -> " + "; ".join(
        f"{d['name']} {d['dtype']}{d['shape']}" for d in info["outputs"])
    lines.append("")
    lines.append(f"{t['operators']} operators, {t['macs']:,} MACs, {t['weight_bytes']:,} weight bytes, "
                 f"{t['activation_bytes']:,} activation bytes produced; I/O: {io}")
    return "\n".join(lines)


def to_json(model: Model) -> str:
    return json.dumps(summary(model), indent=2)
