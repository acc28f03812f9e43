"""`kwsgen verify`: build the generated C, run it on N inputs, compare every output bit with the reference.

On the host the harness is built with gcc; on an emulated board it is cross-compiled and run under
QEMU, where instructions per inference are counted too. On a mismatch the harness is rebuilt with
per-layer tracing and compared against the reference's intermediates to name the first layer
that differs.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import KwsgenError
from .interpreter import run
from .legalize import Model
from .project import LibraryBuild, render_verify_project
from .targets import Board

VERIFY_SEED = 20261122


@dataclass(frozen=True)
class VerifyResult:
    board: str
    kernels: str
    inputs: int
    mismatches: int  # output elements that differ
    mismatching_inputs: int
    first_bad_layer: str | None
    instructions_per_inference: int | None
    flash_bytes: int | None
    ram_bytes: int | None
    arena_bytes: int
    weights_bytes: int

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def to_json(self) -> dict:
        return asdict(self)


def random_core_inputs(model: Model, n: int, seed: int = VERIFY_SEED) -> list[np.ndarray]:
    """Uniform int8 vectors for every core input (covers saturation paths better than realistic data)."""
    rng = np.random.default_rng(seed)
    g = model.graph
    return [rng.integers(-128, 128, size=(n,) + g.tensors[i].shape, dtype=np.int8) for i in model.core_inputs]


def to_core_inputs(model: Model, given: np.ndarray) -> list[np.ndarray]:
    """User inputs in the model's input dtype -> the int8 core inputs (applying a float QUANTIZE edge)."""
    g = model.graph
    if len(g.inputs) != 1:
        raise KwsgenError("--input is supported for single-input models only")
    t = g.tensors[g.inputs[0]]
    x = np.asarray(given)
    if x.dtype != np.dtype(t.dtype):
        raise KwsgenError(f"--input must be {t.dtype} with shape [N, {', '.join(map(str, t.shape))}], got {x.dtype}")
    if x.ndim < 1 or int(np.prod(x.shape[1:])) != t.size:
        raise KwsgenError(f"--input must have shape [N, {', '.join(map(str, t.shape))}], got {list(x.shape)}")
    x = x.reshape((x.shape[0],) + t.shape)
    edge = model.input_edges[0]
    if edge is None:
        return [x]
    out = edge.opdef.reference(edge.op, g, edge.params, [x], model.rounding)[0]
    return [out]


def _pack_inputs(core_inputs: Sequence[np.ndarray]) -> bytes:
    n = core_inputs[0].shape[0]
    flat = [np.ascontiguousarray(x).reshape(n, -1) for x in core_inputs]
    return np.concatenate(flat, axis=1).astype(np.int8).tobytes()


def _split_outputs(model: Model, raw: bytes, n: int) -> list[np.ndarray]:
    g = model.graph
    data = np.frombuffer(raw, dtype=np.int8)
    sizes = [g.tensors[i].size for i in model.core_outputs]
    if data.size != n * sum(sizes):
        raise KwsgenError(f"harness wrote {data.size} output bytes, expected {n * sum(sizes)}")
    data = data.reshape(n, sum(sizes))
    outs, start = [], 0
    for i, size in zip(model.core_outputs, sizes):
        outs.append(data[:, start : start + size].reshape((n,) + g.tensors[i].shape))
        start += size
    return outs


def parse_trace(raw: bytes) -> list[tuple[int, np.ndarray]]:
    """The harness trace: (int32 step, int32 bytes, data) records."""
    records, pos = [], 0
    while pos + 8 <= len(raw):
        step, size = np.frombuffer(raw[pos : pos + 8], dtype=np.int32)
        pos += 8
        records.append((int(step), np.frombuffer(raw[pos : pos + size], dtype=np.int8)))
        pos += int(size)
    return records


def first_bad_layer(model: Model, build: LibraryBuild, core_input: Sequence[np.ndarray], workdir: Path) -> str | None:
    """Rebuild with tracing, run one input, and name the first layer whose output differs."""
    trace = parse_trace(build.run_trace(_pack_inputs(core_input), workdir))
    ref = run(model, list(core_input), intermediates=True, core_only=True).intermediates
    layers = model.core_layers
    expected = [(step, t) for step, layer in enumerate(layers) if not layer.opdef.view for t in layer.op.outputs]
    for (step, data), (ref_step, t) in zip(trace, expected):
        want = np.ascontiguousarray(ref[t][0]).ravel().view(np.int8)
        if step != ref_step or not np.array_equal(want, data):
            layer = layers[ref_step]
            return f"step {ref_step} ({layer.op.kind}, source operator {layer.op.index})"
    return None


def verify(
    model: Model,
    *,
    board: "str | Board" = "host",
    kernels: str = "portable",
    n: int = 100,
    given: np.ndarray | None = None,
    sanitize: bool = False,
    cmsis_nn: Path | None = None,
    source_name: str = "model.tflite",
    source_bytes: bytes = b"",
    seed: int = VERIFY_SEED,
    workdir: Path | None = None,
) -> VerifyResult:
    core_inputs = random_core_inputs(model, n, seed)
    if given is not None:
        extra = to_core_inputs(model, given)
        core_inputs = [np.concatenate([g, r]) for g, r in zip(extra, core_inputs)]
    total = core_inputs[0].shape[0]
    expected = run(model, core_inputs, core_only=True).outputs
    with tempfile.TemporaryDirectory(prefix="kwsgen-verify-") as tmp:
        work = Path(workdir or tmp)
        build = render_verify_project(model, work / "project", board=board, kernels=kernels, cmsis_nn=cmsis_nn,
                                      source_name=source_name, source_bytes=source_bytes, sanitize=sanitize)
        raw, counts = build.run(_pack_inputs(core_inputs), work)
        got = _split_outputs(model, raw, total)
        bad_elems = sum(int(np.count_nonzero(g != e)) for g, e in zip(got, expected))
        bad_rows = np.zeros(total, dtype=bool)
        for g, e in zip(got, expected):
            bad_rows |= (g.reshape(total, -1) != e.reshape(total, -1)).any(axis=1)
        culprit = None
        if bad_elems:
            i = int(np.argmax(bad_rows))
            culprit = first_bad_layer(model, build, [x[i : i + 1] for x in core_inputs], work)
        per_inference = counts // total if counts is not None and total else None
        return VerifyResult(
            build.board.name, kernels, total, bad_elems, int(bad_rows.sum()), culprit, per_inference,
            build.flash_bytes, build.ram_bytes, build.arena_bytes, build.weights_bytes,
        )
