"""Whole models (fixtures and the real shared KWS models).

- the NumPy reference equals the TFLM interpreter on 200 random inputs per model (issue 2);
- the generated C equals the reference on 1,000 inputs on the host, and is clean under ASan/UBSan;
- the generated C compiles with -pedantic under gcc and arm-none-eabi-gcc for Cortex-M4 (issue 3).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from kwsgen.interpreter import run
from kwsgen.legalize import load_model
from kwsgen.ops import EmitTarget
from kwsgen.project import lower, write_tree, library_files
from kwsgen.testing.oracle import tflm_run
from kwsgen.toolchain import arm_gcc
from kwsgen.verify import verify

from conftest import fixture_models, shared_models

MODELS = shared_models() + fixture_models()
IDS = [p.stem.replace("_quantized", "") for p in MODELS]


def random_inputs(model, n: int, seed: int) -> list[np.ndarray]:
    """Inputs in the model's own dtype; float inputs spread over the whole int8 range of the QUANTIZE edge."""
    rng = np.random.default_rng(seed)
    g = model.graph
    xs = []
    for idx, core in zip(g.inputs, model.core_inputs):
        t = g.tensors[idx]
        if t.dtype == "float32":
            q = g.tensors[core].quant
            x = (rng.integers(-128, 128, (n,) + t.shape) - q.zp) * q.s + rng.uniform(-0.5, 0.5, (n,) + t.shape) * q.s
            xs.append(x.astype(np.float32))
        else:
            xs.append(rng.integers(-128, 128, (n,) + t.shape, dtype=np.int8))
    return xs


def test_every_fixture_is_present():
    assert len(fixture_models()) >= 11
    for p in shared_models():
        assert p.is_file(), p


@pytest.mark.parametrize("path", MODELS, ids=IDS)
def test_reference_matches_tflm(path: Path):
    model = load_model(path)
    xs = random_inputs(model, 200, seed=len(path.name))
    ours = run(model, xs).outputs
    theirs = tflm_run(path.read_bytes(), xs)
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape
        mismatches = int(np.count_nonzero(a.view(np.uint8) != b.view(np.uint8)))
        assert mismatches == 0, f"{mismatches} output elements differ"


@pytest.mark.parametrize("path", MODELS, ids=IDS)
def test_generated_c_matches_reference_on_host(path: Path):
    model = load_model(path)
    result = verify(model, n=1000, source_bytes=path.read_bytes(), given=random_inputs(model, 50, 7)[0]
                    if len(model.graph.inputs) == 1 else None)
    assert result.ok and result.inputs >= 1000, result


@pytest.mark.parametrize("path", MODELS, ids=IDS)
def test_generated_c_clean_under_sanitizers(path: Path):
    model = load_model(path)
    result = verify(model, n=50, source_bytes=path.read_bytes(), sanitize=True)
    assert result.ok, result


@pytest.mark.parametrize("kernels", ["portable", "cmsis-nn"])
@pytest.mark.parametrize("path", MODELS, ids=IDS)
def test_generated_c_is_pedantic_clean_for_cortex_m4(path: Path, kernels: str, tmp_path, request):
    cmsis_include = []
    if kernels == "cmsis-nn":
        cmsis = request.getfixturevalue("cmsis_nn")
        cmsis_include = [f"-I{cmsis / 'Include'}"]
    model = load_model(path)
    compiled = lower(model, EmitTarget(kernels, "dsp"), board="mps2_an386", source_name=path.name, source_bytes=b"")
    write_tree(tmp_path, library_files(compiled.library))
    src = tmp_path / "lib" / "kws_model" / "src"
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", f"-I{src}", *cmsis_include]
    for cc, target in ((arm_gcc(), ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]), ("gcc", [])):
        for c in sorted(src.glob("*.c")):
            proc = subprocess.run([cc, *target, *flags, "-c", str(c), "-o", str(tmp_path / (c.stem + ".o"))],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, f"{cc} {c.name}: {proc.stderr}"
