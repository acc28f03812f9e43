"""Compile-time folding through the data-movement references.

- A dynamic-batch export (SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE on the activation) legalises with the
  shape arithmetic folded away and runs bit-exact with TFLM, in the reference and in the generated C.
- Data-movement ops on constants fold to the same values TFLM computes when the same data arrives at run time,
  for every dtype TFLM supports (and int64, which only compile-time shape arithmetic uses, against NumPy).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from kwsgen.importer import load
from kwsgen.interpreter import run_outputs
from kwsgen.legalize import fold_constants, load_model
from kwsgen.testing.builder import OpSpec, TensorSpec, build_model, const_spec
from kwsgen.testing.oracle import tflm_run
from kwsgen.verify import verify

Q = (0.04, -3)


def _i8(shape, signature=None, data=None) -> TensorSpec:
    return TensorSpec(tuple(shape), "int8", Q[0], Q[1], data=data, shape_signature=signature)


def dynamic_batch_model() -> bytes:
    """Flatten of a dynamic-batch [-1, 8, 6, 2] input as Keras exports it, then TRANSPOSE and UNPACK."""
    tensors = [
        _i8((1, 8, 6, 2), (-1, 8, 6, 2)),  # 0 input
        TensorSpec((4,), "int32"),  # 1 SHAPE(input)
        const_spec(np.array([0])), const_spec(np.array([1])), const_spec(np.array([1])),  # 2-4 begin, end, strides
        TensorSpec((), "int32"),  # 5 batch size (shrunk)
        const_spec(np.array(48)), const_spec(np.array(2)),  # 6, 7
        TensorSpec((3,), "int32"),  # 8 PACK -> new shape
        _i8((1, 48, 2), (-1, 48, 2)),  # 9 RESHAPE
        const_spec(np.array([0, 2, 1])),  # 10 perm
        _i8((1, 2, 48), (-1, 2, 48)),  # 11 TRANSPOSE
        _i8((1, 48), (-1, 48)), _i8((1, 48), (-1, 48)),  # 12, 13 UNPACK
    ]
    ops = [
        OpSpec("SHAPE", (0,), (1,), {"out_type": "INT32"}),
        OpSpec("STRIDED_SLICE", (1, 2, 3, 4), (5,), {"shrink_axis_mask": 1}),
        OpSpec("PACK", (5, 6, 7), (8,), {"values_count": 3, "axis": 0}),
        OpSpec("RESHAPE", (0, 8), (9,)),
        OpSpec("TRANSPOSE", (9, 10), (11,)),
        OpSpec("UNPACK", (11,), (12, 13), {"num": 2, "axis": 1}),
    ]
    return build_model(tensors, ops, [0], [12, 13])


def test_dynamic_batch_shape_chain_folds_and_matches_tflm():
    buf = dynamic_batch_model()
    model = load_model(buf)
    assert [op.kind for op in model.graph.operators] == ["RESHAPE", "TRANSPOSE", "UNPACK"]
    new_shape = model.graph.tensors[model.graph.operators[0].inputs[1]]
    assert new_shape.is_const and new_shape.data.tolist() == [1, 48, 2]
    x = np.random.default_rng(3).integers(-128, 128, size=(6, 1, 8, 6, 2), dtype=np.int8)
    want = tflm_run(buf, x)
    got = run_outputs(model, [x])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    result = verify(model, n=20, source_bytes=buf, sanitize=True)
    assert result.ok, result


def constant_operands_model() -> bytes:
    """PACK of a run-time input with five constants produced by data-movement ops on constants."""
    rng = np.random.default_rng(11)
    c = rng.integers(-128, 128, size=(3, 4), dtype=np.int8)
    d = rng.integers(-128, 128, size=(4, 6), dtype=np.int8)
    e = rng.integers(-128, 128, size=(8, 3), dtype=np.int8)
    f = rng.integers(-128, 128, size=(1, 2, 3, 1), dtype=np.int8)
    h = rng.integers(-128, 128, size=(4, 2, 3), dtype=np.int8)
    tensors = [
        _i8((4, 3)),  # 0 run-time input
        _i8((3, 4), data=c), const_spec(np.array([1, 0])), _i8((4, 3)),  # 1-3 TRANSPOSE
        _i8((4, 6), data=d), const_spec(np.array([0, 5])), const_spec(np.array([4, 0])), const_spec(np.array([1, -2])),
        _i8((4, 3)),  # 4-8 STRIDED_SLICE (columns 5, 3, 1)
        const_spec(np.array(0)), _i8((8, 3), data=e), _i8((4, 3)), _i8((4, 3)),  # 9-12 SPLIT
        _i8((1, 2, 3, 1), data=f), const_spec(np.array([4, 3])), _i8((1, 4, 3, 1)),  # 13-15 RESIZE_NEAREST_NEIGHBOR
        const_spec(np.array([4, 3])), _i8((4, 3)),  # 16, 17 RESHAPE
        _i8((4, 2, 3), data=h), _i8((4, 3)), _i8((4, 3)),  # 18-20 UNPACK
        _i8((6, 4, 3)),  # 21 PACK
    ]
    ops = [
        OpSpec("TRANSPOSE", (1, 2), (3,)),
        OpSpec("STRIDED_SLICE", (4, 5, 6, 7), (8,)),
        OpSpec("SPLIT", (9, 10), (11, 12), {"num_splits": 2}),
        OpSpec("RESIZE_NEAREST_NEIGHBOR", (13, 14), (15,), {"half_pixel_centers": True}),
        OpSpec("RESHAPE", (15, 16), (17,)),
        OpSpec("UNPACK", (18,), (19, 20), {"num": 2, "axis": 1}),
        OpSpec("PACK", (0, 3, 8, 12, 17, 20), (21,), {"values_count": 6, "axis": 0}),
    ]
    return build_model(tensors, ops, [0], [21])


def test_constant_data_movement_folds_and_matches_tflm():
    buf = constant_operands_model()
    model = load_model(buf)
    assert [op.kind for op in model.graph.operators] == ["PACK"]
    x = np.random.default_rng(5).integers(-128, 128, size=(4, 4, 3), dtype=np.int8)
    np.testing.assert_array_equal(run_outputs(model, [x])[0], tflm_run(buf, x)[0])
    result = verify(model, n=8, source_bytes=buf, sanitize=True)
    assert result.ok, result


# ---- one op, two ways: data at run time through TFLM vs the same data folded by kwsgen ----

DataTensor = Callable[[int, tuple[int, ...]], TensorSpec]
Maker = Callable[[DataTensor, str], tuple[list[TensorSpec], list[OpSpec], list[int], list[int]]]


def _two_ways(make: Maker, dtype: str, rng: np.random.Generator) -> tuple[bytes, list[np.ndarray], list[np.ndarray]]:
    """`make(data, dtype)` builds a graph whose data tensors come from `data(i, shape)`: once as run-time inputs
    (for TFLM), once as constants holding random values (folded by kwsgen). Returns (run-time model, values, folded)."""
    shapes: dict[int, tuple[int, ...]] = {}

    def runtime(i: int, shape: tuple[int, ...]) -> TensorSpec:
        shapes[i] = shape
        return TensorSpec(shape, dtype)

    tensors, ops, inputs, outputs = make(runtime, dtype)
    rt = build_model(tensors, ops, inputs, outputs)
    values = [(rng.normal(size=shapes[i]) * 100).astype(dtype) for i in range(len(shapes))]
    tensors, ops, _, outputs = make(lambda i, shape: TensorSpec(shape, dtype, data=values[i]), dtype)
    folded = fold_constants(load(build_model(tensors, ops, [], outputs)))
    assert not folded.operators, [op.kind for op in folded.operators]
    return rt, values, [folded.tensors[o].data for o in outputs]


def _slice(data, dt):
    return [data(0, (4, 5)), const_spec(np.array([3, 4])), const_spec(np.array([0, 0])), const_spec(np.array([-1, -2])),
            TensorSpec((3, 2), dt)], [OpSpec("STRIDED_SLICE", (0, 1, 2, 3), (4,))], [0], [4]


def _split(data, dt):
    return [const_spec(np.array(-2)), data(0, (6, 2))] + [TensorSpec((2, 2), dt) for _ in range(3)], \
        [OpSpec("SPLIT", (0, 1), (2, 3, 4), {"num_splits": 3})], [1], [2, 3, 4]


def _split_v(data, dt):
    return [data(0, (2, 7)), const_spec(np.array([3, -1, 1])), const_spec(np.array([1])),
            TensorSpec((2, 3), dt), TensorSpec((2, 3), dt), TensorSpec((2, 1), dt)], \
        [OpSpec("SPLIT_V", (0, 1, 2), (3, 4, 5), {"num_splits": 3})], [0], [3, 4, 5]


def _pack(data, dt):
    return [data(0, (3,)), data(1, (3,)), TensorSpec((3, 2), dt)], \
        [OpSpec("PACK", (0, 1), (2,), {"values_count": 2, "axis": -1})], [0, 1], [2]


def _unpack(data, dt):
    return [data(0, (3, 2)), TensorSpec((3,), dt), TensorSpec((3,), dt)], \
        [OpSpec("UNPACK", (0,), (1, 2), {"num": 2, "axis": -1})], [0], [1, 2]


def _transpose(data, dt):
    return [data(0, (2, 3, 4)), const_spec(np.array([2, 0, 1])), TensorSpec((4, 2, 3), dt)], \
        [OpSpec("TRANSPOSE", (0, 1), (2,))], [0], [2]


def _resize(data, dt):
    return [data(0, (1, 2, 3, 1)), const_spec(np.array([3, 5])), TensorSpec((1, 3, 5, 1), dt)], \
        [OpSpec("RESIZE_NEAREST_NEIGHBOR", (0, 1), (2,), {"align_corners": True})], [0], [2]


# Only the (op, dtype) combinations TFLM's kernels accept.
CASES = [
    (_slice, "float32"), (_slice, "int32"),
    (_split, "float32"), (_split, "int32"),
    (_split_v, "float32"), (_split_v, "int32"),
    (_pack, "float32"), (_pack, "int32"), (_pack, "int64"),
    (_unpack, "float32"), (_unpack, "int32"),
    (_transpose, "float32"),
    (_resize, "float32"),
]


@pytest.mark.parametrize("make, dtype", CASES, ids=[f"{m.__name__[1:]}-{d}" for m, d in CASES])
def test_folding_matches_tflm_on_any_dtype(make, dtype):
    rt, values, folded = _two_ways(make, dtype, np.random.default_rng(1))
    want = tflm_run(rt, [v[None] for v in values])
    for f, w in zip(folded, want, strict=True):
        assert f.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(f, w[0])


def test_int64_shape_arithmetic_folds():
    """SHAPE(out_type int64) -> STRIDED_SLICE and PACK of int64: TFLM's SHAPE is int32-only, so NumPy is the oracle."""
    tensors = [
        _i8((1, 5, 4), (-1, 5, 4)), TensorSpec((3,), "int64"),
        const_spec(np.array([-1])), const_spec(np.array([0])), const_spec(np.array([-1])),
        TensorSpec((2,), "int64"),
    ]
    ops = [OpSpec("SHAPE", (0,), (1,), {"out_type": "INT64"}), OpSpec("STRIDED_SLICE", (1, 2, 3, 4), (5,))]
    graph = fold_constants(load(build_model(tensors, ops, [0], [5])))
    sliced = graph.tensors[5].data
    assert not graph.operators
    assert sliced.dtype == np.int64 and sliced.tolist() == [4, 5]  # [1, 5, 4][-1:0:-1]
    packed = fold_constants(load(build_model(
        [const_spec(np.array(7), "int64"), const_spec(np.array(-1), "int64"), TensorSpec((2,), "int64")],
        [OpSpec("PACK", (0, 1), (2,), {"values_count": 2, "axis": 0})], [], [2]))).tensors[2].data
    assert packed.dtype == np.int64 and packed.tolist() == [7, -1]
