"""Static memory planning: every activation and scratch buffer gets a fixed offset in one arena.

Buffers are the core's activation tensors grouped by aliasing (a view operator's output *is* its
input, reinterpreted) plus one scratch buffer per layer that needs one. A buffer is live from the
step that writes it to the last step that reads it (model inputs from step 0, outputs to the end).
Offsets come from several strategies (greedy by size, by lifetime, by conflicts); the smallest
arena wins. The lower bound is the largest total size of buffers live at any single step: no
assignment for this operator order can go below it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence

from .legalize import Model
from .ops import EmitTarget

DEFAULT_ALIGNMENT = 16


@dataclass(frozen=True)
class Buffer:
    """One planned region. `tensors` share it (views); a scratch buffer has `scratch_of` set."""

    id: int
    name: str
    size: int
    first: int  # first step it is live (inclusive)
    last: int  # last step it is live (inclusive)
    tensors: tuple[int, ...] = ()
    scratch_of: int | None = None  # layer step owning this scratch buffer

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Plan:
    buffers: tuple[Buffer, ...]
    offsets: tuple[int, ...]  # per buffer, same order
    arena_bytes: int
    lower_bound_bytes: int
    alignment: int
    strategy: str
    strategies: dict[str, int] = field(default_factory=dict)  # strategy -> arena bytes it reached

    def offset_of_tensor(self, tensor: int) -> int:
        for b, off in zip(self.buffers, self.offsets):
            if tensor in b.tensors:
                return off
        raise KeyError(tensor)

    def buffer_of_tensor(self, tensor: int) -> Buffer:
        for b in self.buffers:
            if tensor in b.tensors:
                return b
        raise KeyError(tensor)

    def scratch(self, step: int) -> tuple[int, int] | None:
        """(offset, size) of the scratch buffer of layer `step`, if any."""
        for b, off in zip(self.buffers, self.offsets):
            if b.scratch_of == step:
                return off, b.size
        return None

    def to_json(self) -> dict:
        return {
            "arena_bytes": self.arena_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            "alignment": self.alignment,
            "strategy": self.strategy,
            "strategies": dict(self.strategies),
            "buffers": [dict(asdict(b), offset=off) for b, off in zip(self.buffers, self.offsets)],
        }


def align_up(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


# ---- buffers from a model ----


def alias_root(model: Model) -> dict[int, int]:
    """Map every core activation tensor to the tensor whose storage it uses (views chase their input)."""
    root: dict[int, int] = {}
    for layer in model.core_layers:
        if layer.opdef.view:
            src = layer.op.inputs[0]
            root[layer.op.outputs[0]] = root.get(src, src)
    return root


def _is_activation(model: Model, t: int) -> bool:
    return t >= 0 and not model.graph.tensors[t].is_const


def scratch_sizes(model: Model, target: EmitTarget) -> list[int]:
    return [layer.opdef.scratch(layer.op, model.graph, layer.params, target) for layer in model.core_layers]


def model_buffers(model: Model, target: EmitTarget) -> list[Buffer]:
    """Lifetimes of every activation group and scratch buffer, in execution steps of the core."""
    g = model.graph
    layers = model.core_layers
    root = alias_root(model)
    end = max(len(layers) - 1, 0)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    members: dict[int, list[int]] = {}

    def touch(t: int, step: int) -> None:
        r = root.get(t, t)
        first[r] = min(first.get(r, step), step)
        last[r] = max(last.get(r, step), step)
        if t not in members.setdefault(r, []):
            members[r].append(t)

    for t in model.core_inputs:
        touch(t, 0)
    for step, layer in enumerate(layers):
        for t in layer.op.inputs + layer.op.outputs:
            if _is_activation(model, t):
                touch(t, step)
    for t in model.core_outputs:
        if _is_activation(model, t):
            touch(t, end)
    buffers = []
    for r in sorted(first):
        size = max(g.tensors[m].nbytes for m in members[r])
        buffers.append(Buffer(len(buffers), g.tensors[r].short_name, size, first[r], last[r], tuple(sorted(members[r]))))
    for step, size in enumerate(scratch_sizes(model, target)):
        if size > 0:
            buffers.append(Buffer(len(buffers), f"scratch{step}", size, step, step, (), step))
    return buffers


# ---- assignment strategies ----


def lower_bound(buffers: Sequence[Buffer]) -> int:
    if not buffers:
        return 0
    steps = range(min(b.first for b in buffers), max(b.last for b in buffers) + 1)
    return max(sum(b.size for b in buffers if b.first <= s <= b.last) for s in steps)


def _first_fit(order: Iterable[Buffer], alignment: int) -> dict[int, int]:
    """Place buffers in `order`, each at the lowest aligned offset clear of every placed buffer it coexists with."""
    placed: list[tuple[int, int, Buffer]] = []  # (offset, end, buffer)
    offsets: dict[int, int] = {}
    for b in order:
        busy = sorted((off, end) for off, end, other in placed if other.overlaps_in_time(b))
        candidate = 0
        for off, end in busy:
            if candidate + b.size <= off:
                break
            candidate = max(candidate, align_up(end, alignment))
        offsets[b.id] = candidate
        placed.append((candidate, candidate + b.size, b))
    return offsets


def _by_size(buffers: Sequence[Buffer]) -> list[Buffer]:
    return sorted(buffers, key=lambda b: (-b.size, b.first, b.id))


def _by_lifetime(buffers: Sequence[Buffer]) -> list[Buffer]:
    return sorted(buffers, key=lambda b: (-(b.last - b.first), -b.size, b.id))


def _by_conflicts(buffers: Sequence[Buffer]) -> list[Buffer]:
    """Most constrained first: total size of buffers it coexists with, then size."""
    def pressure(b: Buffer) -> int:
        return sum(o.size for o in buffers if o.overlaps_in_time(b))
    return sorted(buffers, key=lambda b: (-pressure(b), -b.size, b.id))


def _by_start(buffers: Sequence[Buffer]) -> list[Buffer]:
    return sorted(buffers, key=lambda b: (b.first, -b.size, b.id))


STRATEGIES: dict[str, Callable[[Sequence[Buffer]], list[Buffer]]] = {
    "greedy_by_size": _by_size,
    "greedy_by_conflicts": _by_conflicts,
    "greedy_by_lifetime": _by_lifetime,
    "greedy_by_start": _by_start,
}


def arena_size(buffers: Sequence[Buffer], offsets: dict[int, int], alignment: int) -> int:
    return align_up(max((offsets[b.id] + b.size for b in buffers), default=0), alignment)


def plan_buffers(buffers: Sequence[Buffer], alignment: int = DEFAULT_ALIGNMENT) -> Plan:
    """Run every strategy and keep the smallest arena (ties: the first strategy listed)."""
    if alignment <= 0 or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, got {alignment}")
    results = {name: _first_fit(order(buffers), alignment) for name, order in STRATEGIES.items()}
    sizes = {name: arena_size(buffers, offs, alignment) for name, offs in results.items()}
    best = min(STRATEGIES, key=lambda name: sizes[name])
    offsets = results[best]
    return Plan(
        tuple(buffers),
        tuple(offsets[b.id] for b in buffers),
        sizes[best],
        lower_bound(buffers),
        alignment,
        best,
        sizes,
    )


def plan(model: Model, target: EmitTarget = EmitTarget(), alignment: int = DEFAULT_ALIGNMENT) -> Plan:
    return plan_buffers(model_buffers(model, target), alignment)


def check_plan(p: Plan) -> list[str]:
    """Invariants any valid plan satisfies (used by tests and as a self-check before emitting C)."""
    errors = []
    for i, (a, oa) in enumerate(zip(p.buffers, p.offsets)):
        if oa % p.alignment:
            errors.append(f"buffer {a.name} at {oa} is not {p.alignment}-aligned")
        if oa + a.size > p.arena_bytes:
            errors.append(f"buffer {a.name} ends past the arena")
        for b, ob in zip(p.buffers[i + 1 :], p.offsets[i + 1 :]):
            if a.overlaps_in_time(b) and oa < ob + b.size and ob < oa + a.size and a.size and b.size:
                errors.append(f"buffers {a.name} and {b.name} overlap while both live")
    if p.arena_bytes < p.lower_bound_bytes:
        errors.append("arena below the lower bound")
    return errors
