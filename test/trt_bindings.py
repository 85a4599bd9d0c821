"""The real TensorRT Python bindings of each checked version, imported in a subprocess on stub native libraries.

``scripts/trt_bindings.sh`` puts them under ``.cache/trt_bindings/<version>/`` (``pkg/`` = the unpacked wheel,
``stubs/`` = libnvinfer.so.N & co. returning NULL). :func:`real_surface` imports ``tensorrt_bindings`` of one
version in a child process (LD_LIBRARY_PATH to the stubs, PYTHONPATH to the wheel: the versions cannot share a
process) and returns :func:`depth_nodes.runtime.trt_api.surface` of it. ``python3 test/trt_bindings.py`` rewrites
the snapshots in ``test/trt_api/`` that the fakes are derived from (offline, CI checks them against the live
modules).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "trt_bindings"
SNAPSHOTS = Path(__file__).resolve().parent / "trt_api"
#: classes the fakes model (beyond trt_api.used_classes(): what the fakes construct)
FAKE_CLASSES = {"INetworkDefinition", "IHostMemory", "ITimingCache"}


def bindings_dir(version: str) -> Path | None:
    d = CACHE / version
    return d if (d / "ok").is_file() else None


def missing_reason(version: str) -> str:
    log = CACHE / version / "pip.log"
    why = log.read_text().strip().splitlines()[-1:] if log.is_file() else []
    return (
        f"real TensorRT {version} bindings not prepared in {CACHE / version} (run `bash scripts/trt_bindings.sh`; "
        f"needs PyPI + gcc){': ' + why[0] if why else ''}"
    )


def run_real(version: str, code: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    """Run ``code`` in a child Python where ``import tensorrt_bindings as trt`` is the real ``version``."""
    d = bindings_dir(version)
    assert d is not None, missing_reason(version)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(d / "stubs"), env.get("LD_LIBRARY_PATH")]))
    env["PYTHONPATH"] = os.pathsep.join([str(d / "pkg"), str(REPO)])
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout_s)


def real_surface(version: str) -> dict:
    code = (
        "import json, tensorrt_bindings as trt\n"
        "from depth_nodes.runtime import trt_api as A\n"
        f"print(json.dumps(A.surface(trt, A.used_classes() | set({sorted(FAKE_CLASSES)!r}))))\n"
    )
    r = run_real(version, code)
    assert r.returncode == 0, f"importing the real TensorRT {version} bindings failed:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout)


def snapshot(version: str) -> dict:
    return json.loads((SNAPSHOTS / f"{version}.json").read_text())


if __name__ == "__main__":
    from depth_nodes.runtime.trt_api import CHECKED_VERSIONS

    SNAPSHOTS.mkdir(exist_ok=True)
    for v in CHECKED_VERSIONS:
        (SNAPSHOTS / f"{v}.json").write_text(json.dumps(real_surface(v), indent=1, sort_keys=True) + "\n")
        print(f"wrote {SNAPSHOTS / f'{v}.json'}")
