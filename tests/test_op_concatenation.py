"""CONCATENATION: reference vs TFLM (hypothesis), generated C vs reference, folding, checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwsgen.errors import UnsupportedModelError
from kwsgen.importer import load
from kwsgen.interpreter import run
from kwsgen.legalize import fold_constants, load_model
from kwsgen.testing.builder import TensorSpec, const_int8, const_spec, int8_spec, single_op_model
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify


def concat_model(shapes, axis: int, consts=(), scale=0.03, zp=-11, seed=0) -> bytes:
    """Inputs of `shapes` joined along `axis` (negative allowed); indices in `consts` are constants."""
    rng = np.random.default_rng(seed)
    rank = len(shapes[0])
    a = axis % rank
    out = list(shapes[0])
    out[a] = sum(s[a] for s in shapes)
    inputs = [const_int8(rng.integers(-128, 128, size=s), scale, zp) if i in consts else int8_spec(s, scale, zp)
              for i, s in enumerate(shapes)]
    return single_op_model("CONCATENATION", inputs, [int8_spec(out, scale, zp)], {"axis": axis})


@st.composite
def concat_cases(draw):
    rank = draw(st.integers(1, 5))
    base = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    axis = draw(st.integers(-rank, rank - 1))
    count = draw(st.integers(1, 5))
    shapes = []
    for _ in range(count):
        s = list(base)
        s[axis] = draw(st.integers(1, 4))
        shapes.append(tuple(s))
    consts = draw(st.sets(st.integers(1, count - 1), max_size=count - 1)) if count > 1 else set()
    return shapes, axis, consts, draw(st.integers(-128, 127)), draw(st.integers(0, 2**32 - 1))


@settings(max_examples=200, deadline=None)
@given(concat_cases())
def test_reference_matches_tflm(case):
    shapes, axis, consts, zp, seed = case
    buf = concat_model(shapes, axis, consts, zp=zp, seed=seed)
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-128, 128, size=(4, *s), dtype=np.int8) for i, s in enumerate(shapes) if i not in consts]
    want = tflm_run(buf, xs)[0]
    got = run(load_model(buf), xs).outputs[0]
    assert np.array_equal(got, want)


C_CASES = [
    # shapes, axis, consts, sanitize
    ([(1, 5, 4, 8), (1, 5, 4, 3)], -1, (), True),  # channels, not multiples of 4
    ([(1, 2, 3), (1, 4, 3), (1, 1, 3)], 1, (1,), True),
    ([(2, 3), (2, 3)], 0, (), False),  # the outermost axis: one copy per input
    ([(1, 3, 2, 2, 2)] * 3, 2, (0,), False),  # a constant first input
    ([(7,)], 0, (), False),  # a single input is a copy
]


@pytest.mark.parametrize("case", C_CASES, ids=lambda c: f"{len(c[0])}x{len(c[0][0])}d-axis{c[1]}")
def test_portable_c_matches_reference(case):
    shapes, axis, consts, sanitize = case
    buf = concat_model(shapes, axis, consts, seed=3)
    result = verify(load_model(buf), n=20, source_bytes=buf, sanitize=sanitize)
    assert result.mismatches == 0, result.first_bad_layer


def test_int32_inputs_fold():
    """Shape vectors (int32) are concatenated at compile time."""
    buf = single_op_model("CONCATENATION", [const_spec([1, 49]), const_spec([10, 1])], [TensorSpec((4,), "int32")],
                          {"axis": 0})
    g = fold_constants(load(buf))
    assert not g.operators
    assert np.array_equal(g.tensors[g.outputs[0]].data, [1, 49, 10, 1])


def _problems(buf: bytes) -> str:
    with pytest.raises(UnsupportedModelError) as err:
        load_model(buf)
    return str(err.value)


def test_check_rejects_unsupported():
    assert "copies without rescaling" in _problems(single_op_model(
        "CONCATENATION", [int8_spec((2, 3), 0.1, 0), int8_spec((2, 3), 0.2, 0)], [int8_spec((2, 6), 0.1, 0)], {"axis": 1}))
    assert "copies without rescaling" in _problems(single_op_model(
        "CONCATENATION", [int8_spec((2, 3), 0.1, 0), int8_spec((2, 3), 0.1, 0)], [int8_spec((2, 6), 0.1, 4)], {"axis": 1}))
    assert "fused activation must be NONE" in _problems(single_op_model(
        "CONCATENATION", [int8_spec((2, 3), 0.1, 0), int8_spec((2, 3), 0.1, 0)], [int8_spec((2, 6), 0.1, 0)],
        {"axis": 1, "fused_activation_function": "RELU"}))
    assert "axis 2 is out of range" in _problems(single_op_model(
        "CONCATENATION", [int8_spec((2, 3), 0.1, 0)], [int8_spec((2, 3), 0.1, 0)], {"axis": 2}))
    assert "does not match output shape" in _problems(single_op_model(
        "CONCATENATION", [int8_spec((2, 3), 0.1, 0), int8_spec((3, 3), 0.1, 0)], [int8_spec((2, 6), 0.1, 0)], {"axis": 1}))
    assert "do not add up" in _problems(single_op_model(
        "CONCATENATION", [int8_spec((2, 3), 0.1, 0), int8_spec((2, 3), 0.1, 0)], [int8_spec((2, 7), 0.1, 0)], {"axis": 1}))
