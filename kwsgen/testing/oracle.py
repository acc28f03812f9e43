"""The TFLM oracle: run a .tflite through `tflite_micro.runtime.Interpreter` (reference kernels).

Every bit-exactness claim in kwsgen is checked against TFLM (see the shared oracles notes), so
tests, benchmarks and fuzzers share this one wrapper. It hides TFLM's sharp edges:

- inputs come as batches `[N, *shape]` or `[N, size]` like kwsgen's reference interpreter; TFLM
  takes one sample per invoke, so one interpreter is reused for all N samples;
- the default arena (10 x model size) is too small for small single-op models with large
  activations, so the arena defaults to a bound computed from the tensors;
- `GetTensor` on an index out of range, and allocation in a too-small arena, crash the process:
  indices are checked here and `tflm_min_arena` probes sizes in a subprocess;
- TFLM explains failures only on C stderr, which is captured into the raised TflmError.
"""

from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence, overload

import numpy as np
import tflite

ModelSource = bytes | bytearray | memoryview | str | os.PathLike

_ARENA_SLACK = 256 * 1024  # interpreter bookkeeping: eval tensors, op data, scratch buffers
_ARENA_LIMIT = 1 << 30
_PROBE_TIMEOUT_S = 60.0

_NP_TYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.FLOAT64: np.float64,
    tflite.TensorType.INT8: np.int8,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT16: np.int16,
    tflite.TensorType.UINT16: np.uint16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.UINT32: np.uint32,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.BOOL: np.bool_,
}


class TflmError(RuntimeError):
    """TFLM refused or failed to run a model; the message includes what TFLM printed."""


@dataclass(frozen=True)
class _GraphInfo:
    """What the wrapper needs from the flatbuffer, read without TFLM (which crashes on bad indices)."""

    n_tensors: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    constant: tuple[bool, ...]
    variable: tuple[bool, ...]
    nbytes: tuple[int, ...]


def model_bytes(model: ModelSource) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    return Path(model).read_bytes()


def _graph_info(buf: bytes) -> _GraphInfo:
    m = tflite.Model.GetRootAs(buf, 0)
    sg = m.Subgraphs(0)
    constant, variable, nbytes = [], [], []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        b = m.Buffers(t.Buffer())
        constant.append(b is not None and (b.DataLength() > 0 or b.Size() > 0))
        variable.append(bool(t.IsVariable()))
        shape = t.ShapeAsNumpy()
        count = int(np.prod(shape, dtype=np.int64)) if isinstance(shape, np.ndarray) else 1
        itemsize = np.dtype(_NP_TYPES.get(t.Type(), np.int64)).itemsize
        nbytes.append(max(count, 1) * itemsize)
    ins = sg.InputsAsNumpy()
    outs = sg.OutputsAsNumpy()
    return _GraphInfo(
        sg.TensorsLength(),
        tuple(int(i) for i in ins) if isinstance(ins, np.ndarray) else (),
        tuple(int(i) for i in outs) if isinstance(outs, np.ndarray) else (),
        tuple(constant),
        tuple(variable),
        tuple(nbytes),
    )


def default_arena_size(buf: bytes) -> int:
    """An arena certainly large enough: every non-constant tensor twice over plus fixed slack.

    TFLM's default (10 x model size) fails for single-op models whose weights are tiny but whose
    activations are not; preserve-all-tensors mode also needs every tensor live at once.
    """
    info = _graph_info(buf)
    live = sum(n for n, c in zip(info.nbytes, info.constant) if not c)
    return max(10 * len(buf), 2 * live + 128 * info.n_tensors + _ARENA_SLACK)


@contextmanager
def _c_stderr() -> Iterator[list[str]]:
    """Capture what C code writes to fd 2 (TFLM's error log); yields a list that receives the text."""
    sink: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield sink
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace").strip())


def _fail(what: str, err: Exception, log: list[str]) -> TflmError:
    detail = " | ".join(line for line in "\n".join(log).splitlines() if line.strip())
    return TflmError(f"TFLM {what}: {err}" + (f" ({detail})" if detail else ""))


def tflm_interpreter(model: ModelSource, *, arena_size: int | None = None, preserve_all_tensors: bool = False):
    """A `tflite_micro.runtime.Interpreter` with tensors allocated; TflmError if TFLM refuses the model."""
    from tflite_micro import runtime

    buf = model_bytes(model)
    config = runtime.InterpreterConfig.kPreserveAllTensors if preserve_all_tensors else runtime.InterpreterConfig.kAllocationRecording
    log: list[str] = []
    try:
        with _c_stderr() as log:
            return runtime.Interpreter.from_bytes(
                buf, arena_size=default_arena_size(buf) if arena_size is None else arena_size, intrepreter_config=config
            )
    except Exception as e:  # TFLM raises RuntimeError/ValueError with a generic message
        raise _fail("refused the model", e, log) from None


def _batch_inputs(interp, info: _GraphInfo, inputs: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Check count, dtype and batch size; reshape [N, size] to [N, *shape]."""
    xs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    if len(xs) != len(info.inputs):
        raise ValueError(f"model has {len(info.inputs)} input(s), {len(xs)} given")
    batched = []
    for i, x in enumerate(xs):
        x = np.asarray(x)
        details = interp.get_input_details(i)
        shape = tuple(int(d) for d in details["shape"])
        dtype = np.dtype(details["dtype"])
        if x.dtype != dtype:
            raise ValueError(f"input {i} must be {dtype}, got {x.dtype}")
        if x.ndim < 1 or int(np.prod(x.shape[1:], dtype=np.int64)) != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"input {i} must have shape [N, {', '.join(map(str, shape))}] or [N, size], got {list(x.shape)}")
        batched.append(np.ascontiguousarray(x.reshape((x.shape[0],) + shape)))
    if len({x.shape[0] for x in batched}) > 1:
        raise ValueError("all inputs must have the same batch size N")
    return batched


def _stack(samples: list[np.ndarray], n: int, shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.stack(samples) if samples else np.zeros((n,) + shape, dtype=dtype)


@overload
def tflm_run(model: ModelSource, inputs: Sequence[np.ndarray] | np.ndarray, *, intermediates: Literal[False] = False,
             arena_size: int | None = None, isolated: bool = False) -> list[np.ndarray]: ...
@overload
def tflm_run(model: ModelSource, inputs: Sequence[np.ndarray] | np.ndarray, *, intermediates: Literal[True],
             arena_size: int | None = None, isolated: bool = False) -> tuple[list[np.ndarray], dict[int, np.ndarray]]: ...


def tflm_run(model, inputs, *, intermediates=False, arena_size=None, isolated=False):
    """Run N samples through TFLM, one invoke each; outputs stacked as [N, *output_shape].

    With `intermediates=True` also returns {tensor index: [N, *shape]} for every non-constant
    tensor (indices as in the flatbuffer), for finding the first layer that differs. Models with
    variable tensors are reset before each sample so that samples stay independent.

    TFLM trusts the model: inconsistent shapes (a depthwise multiplier that does not match the
    weights), a DEPTHWISE_CONV_2D bias given as -1, or an arena below the minimum can kill the
    process. `isolated=True` runs in a child process (about 0.5 s more) and turns such a crash
    into a TflmError.
    """
    buf = model_bytes(model)
    if isolated:
        return _run_isolated(buf, inputs, intermediates, arena_size)
    info = _graph_info(buf)
    interp = tflm_interpreter(buf, arena_size=arena_size, preserve_all_tensors=intermediates)
    xs = _batch_inputs(interp, info, inputs)
    n = xs[0].shape[0] if xs else 1
    stateful = any(info.variable)
    watched = [i for i in range(info.n_tensors) if not info.constant[i]] if intermediates else []
    outs: list[list[np.ndarray]] = [[] for _ in info.outputs]
    inter: dict[int, list[np.ndarray]] = {i: [] for i in watched}
    failure: tuple[int, Exception] | None = None
    with _c_stderr() as log:  # once around the loop: a redirection per sample would cost more than a small invoke
        for k in range(n):
            try:
                if stateful:
                    interp.reset()
                for i, x in enumerate(xs):
                    interp.set_input(x[k], i)
                interp.invoke()
            except Exception as e:
                failure = (k, e)
                break
            for j in range(len(info.outputs)):
                outs[j].append(interp.get_output(j))
            for i in watched:
                inter[i].append(np.array(interp.GetTensor(i, 0)["tensor_data"]))
    if failure is not None:
        raise _fail(f"invoke failed on sample {failure[0]}", failure[1], log)
    outputs = []
    for j in range(len(info.outputs)):
        d = interp.get_output_details(j)
        outputs.append(_stack(outs[j], n, tuple(int(s) for s in d["shape"]), d["dtype"]))
    if not intermediates:
        return outputs
    return outputs, {i: np.stack(v) for i, v in inter.items() if v}


_ISOLATED_WORKER = r"""
import pickle, sys
from kwsgen.testing.oracle import tflm_run
with open(sys.argv[1], "rb") as f:
    kwargs = pickle.load(f)
try:
    result = ("ok", tflm_run(**kwargs))
except Exception as e:
    result = ("error", e)
with open(sys.argv[2], "wb") as f:
    pickle.dump(result, f)
"""


def _child_env() -> dict[str, str]:
    """The environment for a worker: this kwsgen importable even when not installed."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _run_isolated(buf: bytes, inputs, intermediates: bool, arena_size: int | None):
    """tflm_run in a fresh `python -c` process (not multiprocessing: that re-imports the caller's __main__)."""
    with tempfile.TemporaryDirectory() as tmp:
        args, result = os.path.join(tmp, "args.pkl"), os.path.join(tmp, "result.pkl")
        with open(args, "wb") as f:
            pickle.dump(dict(model=buf, inputs=inputs, intermediates=intermediates, arena_size=arena_size), f)
        proc = subprocess.run([sys.executable, "-c", _ISOLATED_WORKER, args, result],
                              env=_child_env(), capture_output=True, text=True)
        if not os.path.exists(result):
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise TflmError(f"TFLM crashed running the model (exit code {proc.returncode})" + (f" ({tail})" if tail else ""))
        with open(result, "rb") as f:
            status, value = pickle.load(f)
    if status == "error":
        raise value
    return value


# --------------------------------------------------------------------------- minimum arena

_PROBE_WORKER = r"""
import sys
import numpy as np
from tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
n_inputs = int(sys.argv[2])
for line in sys.stdin:
    size = int(line)
    try:
        it = runtime.Interpreter.from_bytes(model, arena_size=size)
        for i in range(n_inputs):
            d = it.get_input_details(i)
            it.set_input(np.zeros(tuple(d["shape"]), dtype=d["dtype"]), i)
        it.invoke()
        del it
        ok = True
    except Exception:
        ok = False
    sys.stdout.write("ok\n" if ok else "fail\n")
    sys.stdout.flush()
"""


class _Prober:
    """A worker process that answers 'does this arena size work?'; restarted when TFLM crashes it."""

    def __init__(self, path: str, n_inputs: int) -> None:
        self._args = [sys.executable, "-c", _PROBE_WORKER, path, str(n_inputs)]
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        return self._proc

    def fits(self, size: int) -> bool:
        proc = self._start()
        try:
            proc.stdin.write(f"{size}\n")
            proc.stdin.flush()
        except BrokenPipeError:
            return self._crashed()
        ready, _, _ = select.select([proc.stdout], [], [], _PROBE_TIMEOUT_S)
        if not ready:
            self.close()
            raise TflmError(f"TFLM arena probe of {size} bytes did not answer within {_PROBE_TIMEOUT_S:.0f} s")
        answer = proc.stdout.readline().strip()
        if answer == "":
            return self._crashed()
        return answer == "ok"

    def _crashed(self) -> bool:
        self.close()
        return False

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:  # the pipe of a crashed worker
                    pass
            self._proc = None


def tflm_min_arena(model: ModelSource) -> int:
    """The smallest arena (bytes) in which TFLM allocates the model and completes one invoke.

    Bisected to the byte; each size is tried in a worker process because a too-small arena can
    crash TFLM (SIGSEGV) rather than fail cleanly.
    """
    buf = model_bytes(model)
    info = _graph_info(buf)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        Path(path).write_bytes(buf)
        prober = _Prober(path, len(info.inputs))
        try:
            hi = default_arena_size(buf)
            while not prober.fits(hi):
                if hi >= _ARENA_LIMIT:
                    raise TflmError(f"TFLM cannot run the model even with a {_ARENA_LIMIT}-byte arena")
                hi *= 2
            lo = 0  # invariant: lo fails (an empty arena always does), hi fits
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if prober.fits(mid):
                    hi = mid
                else:
                    lo = mid
            return hi
        finally:
            prober.close()
