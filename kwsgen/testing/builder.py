"""Write TFLite flatbuffers without TensorFlow, for property tests and fuzzers.

Property tests need thousands of small models with exactly the shapes, strides, zero points and
scales hypothesis picked; converting Keras models cannot give that control and TensorFlow is not a
test dependency. This module writes the flatbuffer directly with the `tflite` package's generated
builder functions.

Operator options are encoded generically: the op kind names its options table, and every field
is found by reflection on the generated module (`<Table>Add<Field>`, `<Table>Start<Field>Vector`),
using the same snake_case names and enum names that `kwsgen.importer.decode_options` produces, so
`build_model` -> `kwsgen.importer.load` round-trips. A misspelt option raises ValueError instead of
being dropped silently.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import flatbuffers
import numpy as np
import tflite

ABSENT = -1  # operator input index of an omitted optional input (as in the TFLite schema)
SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
BUFFER_ALIGNMENT = 16  # constant data aligned like the converter does, so int32/float reads are aligned
_MAX_DEPRECATED_CODE = 127  # BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES

# Op kinds whose options table name does not follow from the kind's name.
_TABLE_OVERRIDES = {
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "L2_POOL_2D": "Pool2DOptions",
    "MEAN": "ReducerOptions",
    "SUM": "ReducerOptions",
    "REDUCE_PROD": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions",
    "REDUCE_ANY": "ReducerOptions",
    "REDUCE_ALL": "ReducerOptions",
    "MAXIMUM": "MaximumMinimumOptions",
    "MINIMUM": "MaximumMinimumOptions",
    "L2_NORMALIZATION": "L2NormOptions",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions",
    "CONV_3D_TRANSPOSE": "Conv3DOptions",
    "RANDOM_STANDARD_NORMAL": "RandomOptions",
    "RANDOM_UNIFORM": "RandomOptions",
    "MULTINOMIAL": "RandomOptions",
}

# Options fields holding an enum other than TensorType, by schema field name.
_FIELD_ENUMS = {
    "padding": "Padding",
    "fused_activation_function": "ActivationFunctionType",
    "kernel_type": "LSTMKernelType",
    "weights_format": "FullyConnectedOptionsWeightsFormat",
    "mode": "MirrorPadMode",
    "combiner": "CombinerType",
    "type": "LSHProjectionType",
    "reduce_function": "ReduceWindowFunction",
}


# Fields whose schema default (0) no converter ever writes and TFLM does not reject: a stride of 0
# makes every output read the same window, a depth multiplier of 0 reads out of bounds. A test that
# forgets them would get plausible nonsense from TFLM, so they must be given (0 explicitly if meant).
_REQUIRED_OPTIONS = {
    "Conv2DOptions": ("stride_w", "stride_h"),
    "DepthwiseConv2DOptions": ("stride_w", "stride_h", "depth_multiplier"),
    "Pool2DOptions": ("stride_w", "stride_h", "filter_width", "filter_height"),
    "TransposeConvOptions": ("stride_w", "stride_h"),
    "Conv3DOptions": ("stride_d", "stride_w", "stride_h"),
}


def _enum_members(enum_name: str) -> dict[str, int]:
    return {k: v for k, v in vars(getattr(tflite, enum_name)).items() if not k.startswith("_")}


_OPERATORS = _enum_members("BuiltinOperator")
_OPTIONS_TYPES = _enum_members("BuiltinOptions")
_TENSOR_TYPES = _enum_members("TensorType")


# --------------------------------------------------------------------------- specs


def _as_tuple(value: Any, cast: Callable[[Any], Any]) -> tuple | None:
    if value is None:
        return None
    arr = np.asarray(value)
    return tuple(cast(v) for v in arr.reshape(-1))


def _checked_data(data: Any, dtype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A read-only array of `dtype`; refuses lossy casts, which would hide mistakes in tests."""
    arr = np.asarray(data)
    target = np.dtype(dtype)
    cast = arr.astype(target)
    if arr.dtype != target and not np.array_equal(cast.astype(arr.dtype), arr):
        raise ValueError(f"tensor {name!r}: data does not fit {dtype} without loss")
    if cast.size != math.prod(shape):
        raise ValueError(f"tensor {name!r}: data has {cast.size} elements, shape {list(shape)} needs {math.prod(shape)}")
    cast = np.ascontiguousarray(cast.reshape(shape))
    cast.flags.writeable = False
    return cast


@dataclass(frozen=True, eq=False)
class TensorSpec:
    """One tensor as written: quantization is per-tensor (one scale) or per-channel along `quantized_dimension`.

    `scale`/`zero_point` accept a number or a sequence and are stored as tuples; a single zero
    point with several scales is broadcast (TFLM wants both vectors the same length). `data` makes
    the tensor a constant with its own buffer.
    """

    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: float | Sequence[float] | None = None
    zero_point: int | Sequence[int] | None = None
    quantized_dimension: int = 0
    data: np.ndarray | None = None
    name: str = ""
    shape_signature: tuple[int, ...] | None = None
    is_variable: bool = False

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.shape)
        object.__setattr__(self, "shape", shape)
        if self.dtype.upper() not in _TENSOR_TYPES or self.dtype.upper() in ("STRING", "RESOURCE", "VARIANT", "INT4"):
            raise ValueError(f"tensor {self.name!r}: unsupported dtype {self.dtype!r}")
        scale = _as_tuple(self.scale, float)
        zp = _as_tuple(self.zero_point, int)
        if scale is None and zp is not None:
            raise ValueError(f"tensor {self.name!r}: zero_point without scale")
        if scale is not None:
            zp = zp or (0,)
            if len(zp) == 1 and len(scale) > 1:
                zp = zp * len(scale)
            if len(zp) != len(scale):
                raise ValueError(f"tensor {self.name!r}: {len(scale)} scales but {len(zp)} zero points")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zp)
        if self.shape_signature is not None:
            object.__setattr__(self, "shape_signature", tuple(int(d) for d in self.shape_signature))
        if self.data is not None:
            object.__setattr__(self, "data", _checked_data(self.data, self.dtype, shape, self.name))

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class OpSpec:
    """One operator: `kind` is the TFLite builtin name; inputs/outputs index the tensor list (-1 = absent).

    `options` uses the importer's snake_case field names with enum values by name
    (e.g. {"padding": "SAME", "stride_w": 2, "fused_activation_function": "RELU"}).
    """

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    custom_code: str | None = None
    custom_options: bytes = b""
    version: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "outputs", tuple(int(i) for i in self.outputs))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if self.kind not in _OPERATORS:
            raise ValueError(f"unknown TFLite builtin operator {self.kind!r}")
        if (self.kind == "CUSTOM") != (self.custom_code is not None):
            raise ValueError("custom_code is required for, and only for, kind 'CUSTOM'")


# --------------------------------------------------------------------------- options by reflection


def _camel(snake: str) -> str:
    """Schema field name -> generated accessor name: dilation_h_factor -> DilationHFactor."""
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def _snake(camel: str) -> str:
    """Generated accessor name -> schema field name; the same rule as kwsgen.importer."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", camel)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


@functools.lru_cache(maxsize=None)
def options_table(kind: str) -> str | None:
    """The BuiltinOptions table an op kind carries (None: the op has no options, e.g. LOGISTIC)."""
    if kind in _TABLE_OVERRIDES:
        return _TABLE_OVERRIDES[kind]
    wanted = kind.replace("_", "").lower() + "options"
    matches = [name for name in _OPTIONS_TYPES if name.lower() == wanted]
    return matches[0] if matches else None


@dataclass(frozen=True)
class _Field:
    adder: Callable[[flatbuffers.Builder, Any], None]
    kind: str  # "scalar", "vector", "string" or "unsupported"
    slot_type: str  # Prepend<slot_type>Slot, e.g. Int32, Bool, Float32, UOffsetTRelative
    element_dtype: np.dtype | None = None  # vectors only


def _flags_dtype(source: str) -> np.dtype | None:
    """numpy dtype of a flatbuffers `number_types.<X>Flags` named in generated accessor source."""
    m = re.search(r"number_types\.(\w+Flags)", source.split("GetVectorAsNumpy", 1)[-1])
    if m is None:
        return None
    flags = getattr(flatbuffers.number_types, m.group(1))
    return np.dtype(flags.packer_type.format)


@functools.lru_cache(maxsize=None)
def _table_fields(table: str) -> Mapping[str, _Field]:
    """Every writable field of an options table, keyed by snake_case name, from the generated module."""
    module = importlib.import_module(f"tflite.{table}")
    reader = getattr(module, table)
    prefix = f"{table}Add"
    fields: dict[str, _Field] = {}
    for name, fn in vars(module).items():
        if not name.startswith(prefix) or not callable(fn):
            continue
        camel = name[len(prefix):]
        m = re.search(r"Prepend(\w+?)Slot", inspect.getsource(fn))
        slot_type = m.group(1) if m else "?"
        start = getattr(module, f"{table}Start{camel}Vector", None)
        as_numpy = getattr(reader, f"{camel}AsNumpy", None)
        accessor = getattr(reader, camel, None)
        if start is not None:
            dtype = _flags_dtype(inspect.getsource(as_numpy)) if as_numpy is not None else None
            kind = "vector" if dtype is not None else "unsupported"
            fields[_snake(camel)] = _Field(fn, kind, slot_type, dtype)
        elif slot_type == "UOffsetTRelative":
            is_string = accessor is not None and "_tab.String(" in inspect.getsource(accessor)
            fields[_snake(camel)] = _Field(fn, "string" if is_string else "unsupported", slot_type)
        else:
            fields[_snake(camel)] = _Field(fn, "scalar", slot_type)
    return MappingProxyType(fields)


def option_fields(kind: str) -> tuple[str, ...]:
    """The option names `kind` accepts (sorted), for error messages and tests."""
    table = options_table(kind)
    return tuple(sorted(_table_fields(table))) if table else ()


def _enum_value(kind: str, key: str, value: str) -> int:
    enum_name = _FIELD_ENUMS.get(key) or ("TensorType" if key.endswith("type") else None)
    members = _enum_members(enum_name) if enum_name else {}
    if value not in members:
        choices = ", ".join(members) if members else "an integer"
        raise ValueError(f"{kind} option {key}={value!r}: expected one of {choices}")
    return members[value]


def _scalar_value(kind: str, key: str, f: _Field, value: Any) -> Any:
    if isinstance(value, str):
        return _enum_value(kind, key, value)
    if f.slot_type == "Bool":
        if value not in (0, 1):
            raise ValueError(f"{kind} option {key}={value!r}: expected a bool")
        return bool(value)
    if f.slot_type.startswith("Float"):
        return float(value)
    if isinstance(value, (float, np.floating)) or not float(value).is_integer():
        raise ValueError(f"{kind} option {key}={value!r}: expected an integer")
    return int(value)


def _vector_value(kind: str, key: str, f: _Field, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{kind} option {key}={value!r}: expected a 1-D sequence")
    cast = arr.astype(f.element_dtype)
    if arr.size and not np.array_equal(cast.astype(arr.dtype), arr):
        raise ValueError(f"{kind} option {key}={value!r}: does not fit {f.element_dtype}")
    return cast.astype(f.element_dtype.newbyteorder("<"))


def encode_options(b: flatbuffers.Builder, kind: str, options: Mapping[str, Any]) -> tuple[int, int]:
    """Write `kind`'s options table; returns (BuiltinOptions type code, table offset or 0)."""
    table = options_table(kind)
    if table is None:
        if options:
            raise ValueError(f"{kind} takes no options, got {sorted(options)}")
        return 0, 0
    fields = _table_fields(table)
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(f"{kind} ({table}) has no option(s) {unknown}; known: {sorted(fields)}")
    missing = [k for k in _REQUIRED_OPTIONS.get(table, ()) if k not in options]
    if missing:
        raise ValueError(f"{kind} needs option(s) {missing}: their schema default 0 is never meant")
    # Children (vectors, strings) must be finished before the table is started.
    prepared: list[tuple[_Field, Any]] = []
    for key, value in options.items():
        f = fields[key]
        if f.kind == "unsupported":
            raise ValueError(f"{kind} option {key}: nested tables are not supported by this builder")
        if f.kind == "vector":
            prepared.append((f, b.CreateNumpyVector(_vector_value(kind, key, f, value))))
        elif f.kind == "string":
            prepared.append((f, b.CreateString(str(value))))
        else:
            prepared.append((f, _scalar_value(kind, key, f, value)))
    module = importlib.import_module(f"tflite.{table}")
    getattr(module, f"{table}Start")(b)
    for f, value in prepared:
        f.adder(b, value)
    return _OPTIONS_TYPES[table], getattr(module, f"{table}End")(b)


# --------------------------------------------------------------------------- model


def _offset_vector(b: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _int_vector(b: flatbuffers.Builder, values: Sequence[int], dtype: str = "<i4") -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=dtype).reshape(-1))


def _write_buffer(b: flatbuffers.Builder, data: np.ndarray | None) -> int:
    raw = None
    if data is not None:
        le = data.astype(np.uint8) if data.dtype == np.bool_ else data.astype(data.dtype.newbyteorder("<"))
        raw = np.frombuffer(le.tobytes(), dtype=np.uint8)
    vec = None
    if raw is not None and raw.size:
        b.Prep(BUFFER_ALIGNMENT, raw.size)  # pads so the data that follows ends up aligned
        vec = b.CreateNumpyVector(raw)
    tflite.BufferStart(b)
    if vec is not None:
        tflite.BufferAddData(b, vec)
    return tflite.BufferEnd(b)


def _write_quantization(b: flatbuffers.Builder, t: TensorSpec) -> int:
    scale = b.CreateNumpyVector(np.asarray(t.scale, dtype="<f4"))
    zp = _int_vector(b, t.zero_point, "<i8")
    tflite.QuantizationParametersStart(b)
    tflite.QuantizationParametersAddScale(b, scale)
    tflite.QuantizationParametersAddZeroPoint(b, zp)
    tflite.QuantizationParametersAddQuantizedDimension(b, t.quantized_dimension)
    return tflite.QuantizationParametersEnd(b)


def _write_tensor(b: flatbuffers.Builder, t: TensorSpec, index: int, buffer: int) -> int:
    name = b.CreateString(t.name or f"t{index}")
    shape = _int_vector(b, t.shape)
    signature = _int_vector(b, t.shape_signature) if t.shape_signature is not None else None
    quant = _write_quantization(b, t) if t.scale is not None else None
    tflite.TensorStart(b)
    tflite.TensorAddShape(b, shape)
    tflite.TensorAddType(b, _TENSOR_TYPES[t.dtype.upper()])
    tflite.TensorAddBuffer(b, buffer)
    tflite.TensorAddName(b, name)
    if quant is not None:
        tflite.TensorAddQuantization(b, quant)
    if t.is_variable:
        tflite.TensorAddIsVariable(b, True)
    if signature is not None:
        tflite.TensorAddShapeSignature(b, signature)
    return tflite.TensorEnd(b)


def _opcode_key(op: OpSpec) -> tuple[str, str | None, int]:
    return (op.kind, op.custom_code, op.version)


def _write_opcode(b: flatbuffers.Builder, key: tuple[str, str | None, int]) -> int:
    kind, custom_code, version = key
    code = _OPERATORS[kind]
    custom = b.CreateString(custom_code) if custom_code is not None else None
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, _MAX_DEPRECATED_CODE))
    tflite.OperatorCodeAddBuiltinCode(b, code)
    tflite.OperatorCodeAddVersion(b, version)
    if custom is not None:
        tflite.OperatorCodeAddCustomCode(b, custom)
    return tflite.OperatorCodeEnd(b)


def _write_operator(b: flatbuffers.Builder, op: OpSpec, opcode_index: int) -> int:
    inputs = _int_vector(b, op.inputs)
    outputs = _int_vector(b, op.outputs)
    options_type, options = encode_options(b, op.kind, op.options)
    custom = b.CreateNumpyVector(np.frombuffer(op.custom_options, dtype=np.uint8)) if op.custom_options else None
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, opcode_index)
    tflite.OperatorAddInputs(b, inputs)
    tflite.OperatorAddOutputs(b, outputs)
    if options:
        tflite.OperatorAddBuiltinOptionsType(b, options_type)
        tflite.OperatorAddBuiltinOptions(b, options)
    if custom is not None:
        tflite.OperatorAddCustomOptions(b, custom)
    return tflite.OperatorEnd(b)


def _check_indices(n_tensors: int, ops: Sequence[OpSpec], inputs: Sequence[int], outputs: Sequence[int]) -> None:
    """Index mistakes in a test would otherwise surface as a confusing TFLM crash."""
    for i, op in enumerate(ops):
        for idx in op.inputs + op.outputs:
            if idx != ABSENT and not 0 <= idx < n_tensors:
                raise ValueError(f"operator {i} ({op.kind}) refers to tensor {idx}, there are {n_tensors}")
        if ABSENT in op.outputs:
            raise ValueError(f"operator {i} ({op.kind}) has an absent output")
    for idx in tuple(inputs) + tuple(outputs):
        if not 0 <= idx < n_tensors:
            raise ValueError(f"graph input/output refers to tensor {idx}, there are {n_tensors}")


def build_model(
    tensors: Sequence[TensorSpec],
    ops: Sequence[OpSpec],
    inputs: Sequence[int],
    outputs: Sequence[int],
    *,
    description: str = "kwsgen test",
) -> bytes:
    """One-subgraph TFLite model (schema version 3, identifier TFL3) as bytes.

    Buffer 0 is the schema's empty sentinel; every constant tensor gets its own buffer, every
    other tensor points at buffer 0. Operator codes are shared between ops of the same kind.
    """
    _check_indices(len(tensors), ops, inputs, outputs)
    b = flatbuffers.Builder(1024)
    buffer_offsets = [_write_buffer(b, None)]
    buffer_of: list[int] = []
    for t in tensors:
        if t.is_const:
            buffer_of.append(len(buffer_offsets))
            buffer_offsets.append(_write_buffer(b, t.data))
        else:
            buffer_of.append(0)
    tensor_offsets = [_write_tensor(b, t, i, buffer_of[i]) for i, t in enumerate(tensors)]
    opcode_keys = list(dict.fromkeys(_opcode_key(op) for op in ops))
    op_offsets = [_write_operator(b, op, opcode_keys.index(_opcode_key(op))) for op in ops]

    tensors_vec = _offset_vector(b, tensor_offsets)
    inputs_vec = _int_vector(b, inputs)
    outputs_vec = _int_vector(b, outputs)
    ops_vec = _offset_vector(b, op_offsets)
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_vec)
    tflite.SubGraphAddInputs(b, inputs_vec)
    tflite.SubGraphAddOutputs(b, outputs_vec)
    tflite.SubGraphAddOperators(b, ops_vec)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)

    codes_vec = _offset_vector(b, [_write_opcode(b, k) for k in opcode_keys])
    subgraphs_vec = _offset_vector(b, [subgraph])
    buffers_vec = _offset_vector(b, buffer_offsets)
    desc = b.CreateString(description)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, SCHEMA_VERSION)
    tflite.ModelAddOperatorCodes(b, codes_vec)
    tflite.ModelAddSubgraphs(b, subgraphs_vec)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, buffers_vec)
    model = tflite.ModelEnd(b)
    b.Finish(model, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def single_op_model(
    kind: str,
    inputs: Sequence[TensorSpec | None],
    outputs: Sequence[TensorSpec],
    options: Mapping[str, Any] | None = None,
    *,
    custom_code: str | None = None,
    custom_options: bytes = b"",
    description: str = "kwsgen test",
) -> bytes:
    """A model of one operator; `None` in `inputs` is an absent optional input (e.g. no bias).

    Inputs that are neither constant nor variable become the model's inputs, in order; all
    outputs become the model's outputs.
    """
    present = [t for t in inputs if t is not None]
    tensors = present + list(outputs)
    op_inputs, k = [], 0
    for t in inputs:
        op_inputs.append(ABSENT if t is None else k)
        k += t is not None
    op_outputs = list(range(len(present), len(tensors)))
    graph_inputs = [i for i, t in enumerate(present) if not t.is_const and not t.is_variable]
    op = OpSpec(kind, tuple(op_inputs), tuple(op_outputs), options or {}, custom_code, custom_options)
    return build_model(tensors, [op], graph_inputs, op_outputs, description=description)


# --------------------------------------------------------------------------- spec helpers


def int8_spec(shape: Sequence[int], scale: float = 1.0, zero_point: int = 0, *, name: str = "") -> TensorSpec:
    """A per-tensor int8 activation."""
    return TensorSpec(tuple(shape), "int8", scale, zero_point, name=name)


def float_spec(shape: Sequence[int], *, name: str = "") -> TensorSpec:
    """An unquantized float32 activation (float model edges)."""
    return TensorSpec(tuple(shape), "float32", name=name)


def const_spec(array: Any, dtype: str | None = None, *, name: str = "") -> TensorSpec:
    """An unquantized constant (shape vectors, axes, paddings, begin/end/strides), int32 by default for ints."""
    arr = np.asarray(array)
    if dtype is None:
        dtype = "int32" if arr.dtype.kind in "iu" else str(arr.dtype)
    return TensorSpec(arr.shape, dtype, data=arr, name=name)


def const_int8(
    array: Any,
    scale: float | Sequence[float],
    zero_point: int | Sequence[int] = 0,
    axis: int = 0,
    *,
    name: str = "",
) -> TensorSpec:
    """Int8 weights, per-channel along `axis` when `scale` is a sequence (conv: 0, depthwise: 3)."""
    arr = np.asarray(array)
    return TensorSpec(arr.shape, "int8", scale, zero_point, axis, data=arr, name=name)


def const_int32(array: Any, scale: float | Sequence[float], axis: int = 0, *, name: str = "") -> TensorSpec:
    """Int32 bias, zero point 0, scale input_scale * weight_scale (per output channel)."""
    arr = np.asarray(array)
    return TensorSpec(arr.shape, "int32", scale, 0, axis, data=arr, name=name)


def conv_output_size(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """TFLite's output length along one spatial axis (SAME: ceil(in/stride); VALID: only full windows)."""
    if padding == "SAME":
        return -(-size // stride)
    if padding == "VALID":
        effective = (kernel - 1) * dilation + 1
        return max(0, (size - effective) // stride + 1)
    raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
