"""Memory planner properties on random operator graphs (branches, residuals, views, scratch)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kwsgen.fixedpoint import Rounding
from kwsgen.ir import Graph, Operator, Quant, Tensor, freeze_options
from kwsgen.legalize import Layer, Model
from kwsgen.ops import EmitTarget, OpDef, lookup
from kwsgen.planner import Buffer, check_plan, lower_bound, model_buffers, plan, plan_buffers


def _compute_def(scratch_bytes: int) -> OpDef:
    return OpDef("TEST_COMPUTE", lambda op, g: [], lambda *a: [], scratch=lambda op, g, p, t: scratch_bytes)


@st.composite
def random_models(draw) -> tuple[Model, dict[int, int]]:
    """A random DAG: compute ops reading 1-3 earlier tensors (residuals/branches), some views."""
    q = Quant((0.1,), (0,))
    tensors = [Tensor(0, "in", (draw(st.integers(1, 300)),), "int8", q)]
    layers = []
    scratch = {}
    n_ops = draw(st.integers(1, 14))
    for i in range(n_ops):
        live = list(range(len(tensors)))
        if draw(st.booleans()) and i > 0 and draw(st.integers(0, 3)) == 0:
            src = draw(st.sampled_from(live))
            out = Tensor(len(tensors), f"view{i}", tensors[src].shape, "int8", q)
            tensors.append(out)
            op = Operator(i, "RESHAPE", (src,), (out.index,), freeze_options({}))
            layers.append(Layer(op, lookup("RESHAPE"), None))
            continue
        ins = tuple(draw(st.lists(st.sampled_from(live), min_size=1, max_size=3, unique=True)))
        outs = []
        for _ in range(draw(st.integers(1, 2))):
            t = Tensor(len(tensors), f"t{len(tensors)}", (draw(st.integers(1, 400)),), "int8", q)
            tensors.append(t)
            outs.append(t.index)
        s = draw(st.sampled_from([0, 0, 0, 16, 100, 700]))
        scratch[i] = s
        op = Operator(i, "TEST_COMPUTE", ins, tuple(outs), freeze_options({}))
        layers.append(Layer(op, _compute_def(s), None))
    # outputs: the last tensor plus maybe another one
    outputs = [len(tensors) - 1]
    if draw(st.booleans()) and len(tensors) > 2:
        outputs.append(draw(st.integers(1, len(tensors) - 2)))
    g = Graph(tuple(tensors), tuple(layer.op for layer in layers), (0,), tuple(dict.fromkeys(outputs)))
    model = Model(g, tuple(layers), Rounding.DOUBLE, (0,), g.outputs, (None,), tuple(None for _ in g.outputs))
    return model, scratch


@settings(max_examples=300, deadline=None)
@given(random_models(), st.sampled_from([1, 4, 16, 64]))
def test_no_live_buffers_overlap_and_arena_at_least_lower_bound(case, alignment):
    model, _ = case
    p = plan(model, EmitTarget("cmsis-nn"), alignment)
    assert check_plan(p) == []
    # independent re-check of the invariants, tensor by tensor
    for i, (a, oa) in enumerate(zip(p.buffers, p.offsets)):
        assert oa % alignment == 0
        for b, ob in zip(p.buffers[i + 1 :], p.offsets[i + 1 :]):
            if a.first <= b.last and b.first <= a.last:
                assert oa + a.size <= ob or ob + b.size <= oa, (a, b)
    assert p.arena_bytes >= p.lower_bound_bytes


@settings(max_examples=200, deadline=None)
@given(random_models())
def test_lifetimes_cover_every_use(case):
    """Each tensor's buffer is live at every step that reads or writes it (views included)."""
    model, scratch = case
    buffers = model_buffers(model, EmitTarget("cmsis-nn"))
    by_tensor = {t: b for b in buffers for t in b.tensors}
    for step, layer in enumerate(model.core_layers):
        for t in layer.op.inputs + layer.op.outputs:
            b = by_tensor[t]
            assert b.first <= step <= b.last
        if not layer.opdef.view:
            s = [b for b in buffers if b.scratch_of == step]
            assert (s[0].size if s else 0) == scratch.get(layer.op.index, 0)
    for t in model.core_outputs:
        assert by_tensor[t].last == len(model.core_layers) - 1


def test_views_share_storage():
    q = Quant((0.1,), (0,))
    t = [Tensor(0, "in", (4, 4), "int8", q), Tensor(1, "flat", (16,), "int8", q), Tensor(2, "out", (8,), "int8", q)]
    ops = [Operator(0, "RESHAPE", (0,), (1,)), Operator(1, "TEST_COMPUTE", (1,), (2,))]
    layers = (Layer(ops[0], lookup("RESHAPE"), None), Layer(ops[1], _compute_def(0), None))
    g = Graph(tuple(t), tuple(ops), (0,), (2,))
    model = Model(g, layers, Rounding.DOUBLE, (0,), (2,), (None,), (None,))
    p = plan(model)
    assert p.offset_of_tensor(0) == p.offset_of_tensor(1)
    assert p.buffer_of_tensor(0) is p.buffer_of_tensor(1)
    assert p.lower_bound_bytes == 24 and p.arena_bytes == 32  # 16 + 8, each aligned to 16


def test_chain_reaches_lower_bound():
    """On a chain, greedy-by-size reaches the lower bound (up to alignment)."""
    sizes = [490, 8000, 8000, 8000, 8000, 64, 12]
    buffers = [Buffer(i, f"b{i}", s, max(i - 1, 0), i) for i, s in enumerate(sizes)]
    p = plan_buffers(buffers, 16)
    assert p.lower_bound_bytes == 16000
    assert p.arena_bytes == 16000


def test_lower_bound_is_max_live_sum():
    buffers = [Buffer(0, "a", 10, 0, 2), Buffer(1, "b", 20, 1, 1), Buffer(2, "c", 5, 2, 3)]
    assert lower_bound(buffers) == 30


def test_bad_alignment_rejected():
    import pytest

    with pytest.raises(ValueError):
        plan_buffers([Buffer(0, "a", 10, 0, 0)], 3)


def test_plan_is_json_able():
    import json

    buffers = [Buffer(i, f"b{i}", s, i, i + 1) for i, s in enumerate([5, 7, 9])]
    data = plan_buffers(buffers).to_json()
    assert json.loads(json.dumps(data))["arena_bytes"] == data["arena_bytes"]
    assert np.all([b["offset"] % 16 == 0 for b in data["buffers"]])
