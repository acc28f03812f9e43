"""The intermediate representation: an immutable graph of tensors and operators.

The importer builds it from a flatbuffer, `legalize` rewrites it (folding constants, fixing the
batch), and every later stage only reads it. Operators keep TFLite's builtin names and decoded
options so that a reader can map each IR node back to the source model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

ABSENT = -1  # index of an optional input that the model leaves out


@dataclass(frozen=True)
class Quant:
    """Affine quantization: real = scale * (q - zero_point); per-channel along `axis` when len(scale) > 1."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    @property
    def s(self) -> float:
        """The per-tensor scale (only meaningful when not per-channel)."""
        return self.scale[0]

    @property
    def zp(self) -> int:
        """The per-tensor zero point."""
        return self.zero_point[0]

    def scales(self, channels: int) -> np.ndarray:
        """Scales as float64, a per-tensor scale broadcast to `channels` (what TFLM does)."""
        s = np.asarray(self.scale, dtype=np.float64)
        return np.broadcast_to(s, (channels,)).copy() if s.size == 1 else s


@dataclass(frozen=True, eq=False)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: int8, int16, int32, int64, uint8, float32, bool
    quant: Quant | None = None
    data: np.ndarray | None = None  # constant value (read-only), None for activations
    variable: bool = False

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def short_name(self) -> str:
        """A readable identifier fragment: the last path component of the TFLite name."""
        tail = self.name.split(";")[0].rstrip("/").split("/")
        parts = [p for p in tail if p] or ["t"]
        base = parts[-1] if len(parts) == 1 or len(parts[-1]) > 6 else "_".join(parts[-2:])
        ident = "".join(c if c.isalnum() else "_" for c in base.lower()).strip("_")
        return (ident or "t")[:32]


def const_array(value: np.ndarray) -> np.ndarray:
    """A read-only copy, so IR constants can never be mutated by a later stage."""
    a = np.array(value, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class Operator:
    index: int  # position in the source model's execution order
    kind: str  # TFLite builtin name, e.g. "CONV_2D"
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def opt(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def __str__(self) -> str:
        return f"operator {self.index} ({self.kind})"


def freeze_options(options: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(options))


@dataclass(frozen=True)
class Graph:
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str = ""

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def ins(self, op: Operator) -> list[Tensor | None]:
        """Input tensors of `op`, None for an absent optional input."""
        return [None if i == ABSENT else self.tensors[i] for i in op.inputs]

    def outs(self, op: Operator) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs]

    def producers(self) -> dict[int, Operator]:
        return {t: op for op in self.operators for t in op.outputs}

    def consumers(self) -> dict[int, list[Operator]]:
        result: dict[int, list[Operator]] = {}
        for op in self.operators:
            for t in op.inputs:
                if t != ABSENT:
                    result.setdefault(t, []).append(op)
        return result

    def with_tensors(self, updates: Iterable[Tensor]) -> "Graph":
        tensors = list(self.tensors)
        for t in updates:
            tensors[t.index] = t
        return replace(self, tensors=tuple(tensors))
