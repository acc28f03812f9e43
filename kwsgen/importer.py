"""TFLite flatbuffer -> IR.

Reads with the PyPI `tflite` package. The importer decodes everything faithfully (operators it
will later reject included) so that `legalize` can report every problem at once; it only fails
itself when the bytes are not a readable TFLite model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import tflite

from .errors import KwsgenError, Problem, UnsupportedModelError
from .ir import ABSENT, Graph, Operator, Quant, Tensor, const_array, freeze_options

_BUILTIN_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_OPTIONS_NAMES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
_PADDING = {v: k for k, v in vars(tflite.Padding).items() if not k.startswith("_")}
_ACTIVATION = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
_TYPES = {
    tflite.TensorType.FLOAT32: "float32",
    tflite.TensorType.FLOAT16: "float16",
    tflite.TensorType.FLOAT64: "float64",
    tflite.TensorType.INT8: "int8",
    tflite.TensorType.UINT8: "uint8",
    tflite.TensorType.INT16: "int16",
    tflite.TensorType.UINT16: "uint16",
    tflite.TensorType.INT32: "int32",
    tflite.TensorType.UINT32: "uint32",
    tflite.TensorType.INT64: "int64",
    tflite.TensorType.BOOL: "bool",
}
_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_ACCESSOR_SKIP = ("GetRootAs",)
MAX_ELEMENTS = 1 << 28  # no KWS tensor comes near; guards against corrupt shapes


class ModelFormatError(KwsgenError):
    """The input is not a readable TFLite flatbuffer."""


def _snake(name: str) -> str:
    """CamelCase accessor -> schema field name: DilationHFactor -> dilation_h_factor."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def _vector(value: Any) -> tuple:
    """`...AsNumpy()` returns the integer 0 for an absent vector."""
    if not isinstance(value, np.ndarray):
        return ()
    return tuple(float(v) for v in value) if value.dtype.kind == "f" else tuple(int(v) for v in value)


def decode_options(op: "tflite.Operator") -> dict[str, Any]:
    """Every field of the operator's builtin options table, snake_case, enums as names."""
    table = op.BuiltinOptions()
    type_name = _OPTIONS_NAMES.get(op.BuiltinOptionsType(), "NONE")
    if table is None or type_name == "NONE" or not hasattr(tflite, type_name):
        return {}
    cls = getattr(tflite, type_name)
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    result: dict[str, Any] = {}
    for attr in dir(cls):
        if attr.startswith("_") or attr == "Init" or attr.startswith(_ACCESSOR_SKIP) or attr.endswith(
            ("BufferHasIdentifier", "Length", "IsNone", "AsNumpy")
        ):
            continue
        if hasattr(cls, attr + "AsNumpy"):
            value: Any = _vector(getattr(opts, attr + "AsNumpy")())
        else:
            try:
                value = getattr(opts, attr)()
            except TypeError:  # an accessor needing an argument (vector of tables): not used here
                continue
        key = _snake(attr)
        if key == "padding":
            value = _PADDING.get(value, str(value))
        elif key.endswith("activation_function"):
            value = _ACTIVATION.get(value, str(value))
            key = "fused_activation_function"
        elif isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        result[key] = value
    return result


def _quant(t: "tflite.Tensor") -> Quant | None:
    q = t.Quantization()
    if q is None:
        return None
    scale = q.ScaleAsNumpy()
    zp = q.ZeroPointAsNumpy()
    if not isinstance(scale, np.ndarray) or scale.size == 0:
        return None
    zps = tuple(int(z) for z in zp) if isinstance(zp, np.ndarray) and zp.size else (0,) * scale.size
    if len(zps) == 1 and scale.size > 1:
        zps = zps * scale.size
    return Quant(tuple(float(s) for s in scale), zps, int(q.QuantizedDimension()))


def _tensor_data(model: "tflite.Model", t: "tflite.Tensor", buf: bytes, shape: tuple, dtype: str):
    b = model.Buffers(t.Buffer())
    if b is None:
        return None
    if b.Offset() > 1:  # large models keep data outside the flatbuffer table
        raw = buf[b.Offset() : b.Offset() + b.Size()]
    else:
        data = b.DataAsNumpy()
        if not isinstance(data, np.ndarray) or data.size == 0:
            return None
        raw = data.tobytes()
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == "bool":
        arr = np.frombuffer(raw, dtype=np.uint8)[:count].astype(bool)
    else:
        dt = np.dtype(dtype).newbyteorder("<")
        if len(raw) < count * dt.itemsize:
            raise ModelFormatError(f"tensor {t.Name()!r}: constant data holds {len(raw)} bytes, shape needs {count * dt.itemsize}")
        arr = np.frombuffer(raw, dtype=dt, count=count).astype(dtype)
    return const_array(arr.reshape(shape))


def _read_tensor(model, sg, index: int, buf: bytes) -> tuple[Tensor, str | None]:
    t = sg.Tensors(index)
    name = (t.Name() or b"").decode("utf-8", "replace")
    type_code = t.Type()
    dtype = _TYPES.get(type_code)
    shape = _vector(t.ShapeAsNumpy())
    problem = None
    if dtype is None:
        problem = f"tensor {index} {name!r} has type {_TYPE_NAMES.get(type_code, type_code)}"
        dtype = "uint8"
    if any(d < 0 for d in shape):
        problem = f"tensor {index} {name!r} has a dynamic shape {list(shape)}"
        shape = tuple(max(d, 1) for d in shape)
    if int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS:
        raise ModelFormatError(f"tensor {index} {name!r} has an implausible shape {list(shape)}")
    data = _tensor_data(model, t, buf, shape, dtype) if problem is None else None
    tensor = Tensor(index, name, shape, dtype, _quant(t), data, bool(t.IsVariable()))
    return tensor, problem


def read_bytes(source: str | Path | bytes) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KwsgenError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise KwsgenError(f"{path}: is a directory, expected a .tflite file") from None
    except OSError as e:
        raise KwsgenError(f"{path}: cannot read ({e.strerror})") from None


def load(source: str | Path | bytes) -> Graph:
    """Parse a .tflite (path or bytes) into a Graph. Raises KwsgenError on anything unreadable."""
    buf = read_bytes(source)
    label = "model" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    if len(buf) < 8:
        raise ModelFormatError(f"{label}: not a TFLite model (only {len(buf)} bytes)")
    if buf[4:8] != b"TFL3":
        raise ModelFormatError(f"{label}: not a TFLite model (file identifier {buf[4:8]!r}, expected b'TFL3')")
    try:
        return _load(buf)
    except KwsgenError:
        raise
    except Exception as e:  # corrupt flatbuffer: the flatbuffers runtime raises anything
        raise ModelFormatError(f"{label}: corrupt TFLite flatbuffer ({type(e).__name__}: {e})") from None


def _load(buf: bytes) -> Graph:
    model = tflite.Model.GetRootAs(buf, 0)
    n_sub = model.SubgraphsLength()
    if n_sub == 0:
        raise ModelFormatError("model has no subgraph")
    problems: list[Problem | str] = []
    if n_sub > 1:
        problems.append(f"model has {n_sub} subgraphs (control flow or multiple signatures); kwsgen compiles single-subgraph models")
    sg = model.Subgraphs(0)
    tensors = []
    for i in range(sg.TensorsLength()):
        tensor, problem = _read_tensor(model, sg, i, buf)
        tensors.append(tensor)
        if problem:
            problems.append(problem)
    n_tensors = len(tensors)
    operators = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code_table = model.OperatorCodes(op.OpcodeIndex())
        if code_table is None:
            raise ModelFormatError(f"operator {i} names operator code {op.OpcodeIndex()}, which does not exist")
        code = max(code_table.BuiltinCode(), code_table.DeprecatedBuiltinCode())
        kind = _BUILTIN_NAMES.get(code, f"BUILTIN_{code}")
        options = decode_options(op)
        if kind == "CUSTOM":
            options["custom_code"] = (code_table.CustomCode() or b"").decode("utf-8", "replace")
        inputs, outputs = _vector(op.InputsAsNumpy()), _vector(op.OutputsAsNumpy())
        for idx in inputs + outputs:
            if idx != ABSENT and not 0 <= idx < n_tensors:
                raise ModelFormatError(f"operator {i} ({kind}) refers to tensor {idx}, model has {n_tensors}")
        operators.append(Operator(i, kind, inputs, outputs, freeze_options(options)))
    graph_inputs, graph_outputs = _vector(sg.InputsAsNumpy()), _vector(sg.OutputsAsNumpy())
    for idx in graph_inputs + graph_outputs:
        if not 0 <= idx < n_tensors:
            raise ModelFormatError(f"subgraph input/output refers to tensor {idx}, model has {n_tensors}")
    if problems:
        raise UnsupportedModelError(problems)
    description = (model.Description() or b"").decode("utf-8", "replace")
    return Graph(tuple(tensors), tuple(operators), graph_inputs, graph_outputs, description)
