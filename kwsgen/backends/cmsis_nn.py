"""CMSIS-NN v7.0.0 backend: locating the user's sources, and building or shipping them.

CMSIS-NN is in no package registry and is never committed here: the user names a checkout
(`--cmsis-nn DIR` or `CMSIS_NN_PATH`). kwsgen checks it is a v7.0.0-compatible tree (the API
changed in v5, v6 and v7), then either builds it for a host run (cached static archive) or copies
its integer sources into a generated project with a PlatformIO `library.json`, so that project
builds offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import KwsgenError

REQUIRED_RELEASE = "v7.0.0"
# Symbols that exist from v7.0.0 on and whose signatures kwsgen calls (v7: conv gained upscale_dims,
# per-channel FC appeared); their absence means an older tree.
_V7_MARKERS = ("arm_fully_connected_per_channel_s8", "upscale_dims", "arm_fully_connected_wrapper_s8")
_HOW_TO_PROVIDE = (
    "pass --cmsis-nn DIR or set CMSIS_NN_PATH to a CMSIS-NN v7.0.0 source tree "
    "(git clone --branch v7.0.0 https://github.com/ARM-software/CMSIS-NN, the release archive, or the ARM.CMSIS-NN pack), "
    "or use --kernels portable"
)


@dataclass(frozen=True)
class CmsisNN:
    root: Path

    @property
    def include(self) -> Path:
        return self.root / "Include"

    def sources(self) -> list[Path]:
        """Integer kernel sources: no C++ Bindings, no float (f16/f32) variants."""
        return sorted(
            p for p in (self.root / "Source").rglob("*.c")
            if "Bindings" not in p.parts and not p.stem.endswith(("_f16", "_f32"))
        )

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for p in [self.include / "arm_nnfunctions.h", *self.sources()]:
            h.update(p.relative_to(self.root).as_posix().encode())
            h.update(p.read_bytes())
        return h.hexdigest()[:16]


def locate(path: Path | str | None) -> CmsisNN:
    """Validate a CMSIS-NN tree given by the user (or CMSIS_NN_PATH); one-line error otherwise."""
    if path is None:
        env = os.environ.get("CMSIS_NN_PATH")
        path = Path(env) if env else None
    if path is None:
        raise KwsgenError(f"the cmsis-nn kernels need the CMSIS-NN {REQUIRED_RELEASE} sources: {_HOW_TO_PROVIDE}")
    root = Path(path).expanduser()
    header = root / "Include" / "arm_nnfunctions.h"
    if not header.is_file() or not (root / "Source").is_dir():
        raise KwsgenError(f"{root}: not a CMSIS-NN source tree (no Include/arm_nnfunctions.h or Source/); {_HOW_TO_PROVIDE}")
    text = header.read_text(errors="replace")
    missing = [m for m in _V7_MARKERS if m not in text]
    if missing:
        raise KwsgenError(f"{root}: CMSIS-NN older than {REQUIRED_RELEASE} (missing {', '.join(missing)}); {_HOW_TO_PROVIDE}")
    return CmsisNN(root)


def cache_dir() -> Path:
    base = os.environ.get("KWSGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kwsgen")
    return Path(base)


def _archive(lib: CmsisNN, cc: str, cflags: tuple[str, ...], kind: str) -> Path:
    """Compile every integer source once into a static archive, cached by sources, compiler and flags."""
    key = hashlib.sha256(("|".join([lib.fingerprint(), cc, *cflags])).encode()).hexdigest()[:16]
    out = cache_dir() / f"cmsis-nn-{kind}-{key}"
    archive = out / "libcmsis-nn.a"
    if archive.is_file():
        return archive
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    objects = []
    for i, src in enumerate(lib.sources()):
        obj = tmp / f"{i:03d}_{src.stem}.o"
        proc = subprocess.run([cc, *cflags, f"-I{lib.include}", "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise KwsgenError(f"building CMSIS-NN {src.name} ({kind}) failed: {(proc.stderr.strip().splitlines() or ['?'])[0]}")
        objects.append(str(obj))
    ar = cc[: -len("gcc")] + "ar" if cc.endswith("gcc") else "ar"
    subprocess.run([ar, "rcs", str(tmp / "libcmsis-nn.a"), *objects], check=True, capture_output=True)
    try:
        os.replace(tmp, out)
    except OSError:  # another process won the race: use its archive
        shutil.rmtree(tmp, ignore_errors=True)
    return archive


def host_archive(lib: CmsisNN, cc: str, cflags: tuple[str, ...]) -> Path:
    """CMSIS-NN built for the host (its scalar code path)."""
    return _archive(lib, cc, cflags, "host")


def firmware_archive(lib: CmsisNN, gcc: str, cflags: tuple[str, ...]) -> Path:
    """CMSIS-NN built for a firmware with the board's flags (its DSP or MVE code path where the core has it)."""
    return _archive(lib, gcc, cflags, "fw")


def project_files(lib: CmsisNN) -> dict[str, bytes]:
    """CMSIS-NN copied into a project as lib/cmsis_nn (a PlatformIO library), so the project builds offline."""
    files: dict[str, bytes] = {}
    dest = Path("lib") / "cmsis_nn"
    for p in sorted(lib.include.rglob("*.h")):
        files[str(dest / "Include" / p.relative_to(lib.include))] = p.read_bytes()
    for p in lib.sources():
        files[str(dest / "Source" / p.relative_to(lib.root / "Source"))] = p.read_bytes()
    license_file = lib.root / "LICENSE"
    if license_file.is_file():
        files[str(dest / "LICENSE")] = license_file.read_bytes()
    manifest = {
        "name": "cmsis_nn",
        "version": REQUIRED_RELEASE.lstrip("v"),
        "description": f"CMSIS-NN {REQUIRED_RELEASE} integer kernels (copied by kwsgen from the user's tree)",
        "license": "Apache-2.0",
        "build": {"srcDir": "Source", "includeDir": "Include", "flags": ["-std=c99"]},
    }
    files[str(dest / "library.json")] = (json.dumps(manifest, indent=2) + "\n").encode()
    return files
