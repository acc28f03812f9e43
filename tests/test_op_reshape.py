"""RESHAPE, SQUEEZE, EXPAND_DIMS: views (no code, shared storage), reference vs TFLM and in generated C."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kwsgen.interpreter import run
from kwsgen.legalize import load_model
from kwsgen.planner import plan
from kwsgen.testing.builder import OpSpec, build_model, const_spec, int8_spec
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify


@st.composite
def view_models(draw) -> bytes:
    """x -> ADD(x, x) -> view -> ADD(v, v): the view sits between two computed tensors, as in real models."""
    dims = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    size = int(np.prod(dims))
    kind = draw(st.sampled_from(["RESHAPE", "SQUEEZE", "EXPAND_DIMS"]))
    q = (draw(st.floats(0.01, 1.0)), draw(st.integers(-128, 127)))
    if kind == "RESHAPE":
        out_shape = list(draw(st.permutations(dims)))
        if draw(st.booleans()):
            out_shape = [size]
        extra = [const_spec(np.array(out_shape, np.int32))]
        options = {"new_shape": out_shape}
    elif kind == "SQUEEZE":
        dims = dims + [1]
        out_shape = [d for d in dims if d != 1] or [1]
        extra, options = [], {"squeeze_dims": []}
        if out_shape == [1] and all(d == 1 for d in dims):
            options = {"squeeze_dims": list(range(len(dims) - 1))}
            out_shape = [1]
    else:
        axis = draw(st.integers(0, len(dims)))
        out_shape = dims[:axis] + [1] + dims[axis:]
        extra, options = [const_spec(np.array(axis, np.int32))], {}
    tensors = [int8_spec(dims, *q), int8_spec(dims, *q), int8_spec(out_shape, *q), int8_spec(out_shape, *q), *extra]
    view_inputs = (1,) + tuple(range(4, 4 + len(extra)))
    ops = [OpSpec("ADD", (0, 0), (1,)), OpSpec(kind, view_inputs, (2,), options), OpSpec("ADD", (2, 2), (3,))]
    return build_model(tensors, ops, [0], [3])


@settings(max_examples=120, deadline=None)
@given(view_models(), st.integers(0, 1000))
def test_views_match_tflm_and_share_storage(buf, seed):
    model = load_model(buf)
    x = np.random.default_rng(seed).integers(-128, 128, (4,) + model.graph.tensors[0].shape, dtype=np.int8)
    assert np.array_equal(run(model, x).outputs[0], tflm_run(buf, [x])[0])
    p = plan(model)
    view = next(layer for layer in model.core_layers if layer.opdef.view)
    assert p.offset_of_tensor(view.op.inputs[0]) == p.offset_of_tensor(view.op.outputs[0])


@settings(max_examples=6, deadline=None)
@given(view_models())
def test_views_in_generated_c(buf):
    result = verify(load_model(buf), n=20, source_bytes=buf, sanitize=True)
    assert result.ok, result
