"""Conformance of the TensorRT backend and its fakes with the REAL TensorRT Python bindings of each version.

``scripts/trt_bindings.sh`` (run by scripts/test.sh) downloads ``tensorrt-cu12-bindings`` 10.3.0 (JetPack 6's
version, the weakly typed path), 10.13.3.9 (10.12+: the strongly typed path) and 11.4.0.106 and builds stub
native libraries so the real modules import on a CPU machine. For each version, in a child process:

- every name of ``trt_api.USED`` that the version's path uses exists in the real module, each method with the
  real pybind argument names in the real order (``check_used``);
- the snapshot the fakes are derived from (``test/trt_api/<version>.json``) equals the live module's surface.

Offline (always): the fakes of every version validate against the snapshots (``runtime_trt_fakes.validate``:
nothing outside USED and the real API, real argument names: runtime_trt_fakes_api.py), every ``trt.X...`` chain in the backend's source is
in USED, and the checker itself reports a wrong name and a wrong argument order.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from runtime_trt_fakes import allowed, make_fake_trt, snapshot_version
from trt_bindings import bindings_dir, missing_reason, real_surface, run_real, snapshot

from depth_nodes.runtime import trt_api

RUNTIME = Path(__file__).resolve().parents[1] / "depth_nodes" / "runtime"


def _need(version: str) -> None:
    if bindings_dir(version) is None:
        pytest.skip(missing_reason(version))


@pytest.mark.parametrize("version", trt_api.CHECKED_VERSIONS)
def test_every_used_name_and_signature_exists_in_the_real_bindings(version) -> None:
    _need(version)
    live = real_surface(version)
    assert live["version"] == version
    problems = trt_api.check_used(live)
    assert not problems, "\n".join(problems)
    assert live == snapshot(version), (
        f"test/trt_api/{version}.json is stale: rerun `python3 test/trt_bindings.py` (the fakes derive from it)"
    )
    print(f"TensorRT {version}: {sum(len(trt_api.USED[g]) for g in trt_api.paths_of(version))} names of paths "
          f"{'+'.join(trt_api.paths_of(version))} match the real bindings")  # fmt: skip


@pytest.mark.parametrize("version", trt_api.CHECKED_VERSIONS)
def test_the_real_module_is_loaded_not_a_fake(version) -> None:
    """The stubs return NULL: the real Builder refuses to exist, as it does on a machine without TensorRT's libs."""
    _need(version)
    r = run_real(version, "import tensorrt_bindings as trt\ntry:\n    trt.Builder(trt.Logger())\n"
                          "except Exception as exc:\n    print(type(exc).__name__, exc)\n")  # fmt: skip
    assert r.returncode == 0 and "factory function returned nullptr" in r.stdout, r.stderr


@pytest.mark.parametrize("version", ["10.0.1", "10.3.0", "10.11.0", "10.12.0", "10.13.3", "11.0.0", "11.4.0"])
def test_fakes_offer_only_what_the_real_version_has(version) -> None:
    trt = make_fake_trt(version)  # validate() runs inside: raises on any name / argument the real API lacks
    surf = snapshot(snapshot_version(version))
    weak = trt_api.precision_path(version) == "weak" and trt_api.version_tuple(version)[0] == 10
    assert hasattr(trt, "BuilderFlag") == weak and hasattr(trt, "IInt8EntropyCalibrator2") == weak
    if trt_api.version_tuple(version)[0] == 10:  # the flag is set on 10.x only (ignored, deprecated on 11.x)
        real = trt_api.lookup(surf, "NetworkDefinitionCreationFlag.STRONGLY_TYPED")["value"]
        assert int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == real
    else:
        assert not hasattr(trt, "NetworkDefinitionCreationFlag")
    assert set(allowed(version)) <= set(surf["classes"])


def test_used_matches_the_snapshots_offline() -> None:
    for v in trt_api.CHECKED_VERSIONS:
        assert not trt_api.check_used(snapshot(v)), v


def _chains(tree: ast.AST) -> set[str]:
    """Dotted chains read off the tensorrt module: ``trt.X.Y`` or ``self.trt.X.Y``."""
    out = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        parts, cur = [], node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        root = cur.id if isinstance(cur, ast.Name) else None
        if root == "trt" or (root == "self" and parts and parts[-1] == "trt"):
            parts = parts[:-1] if root == "self" else parts
            if parts:
                out.add(".".join(reversed(parts)))
    return out


def test_every_module_attribute_the_backend_reads_is_in_used() -> None:
    used = {trt_api.parse_entry(e)[0] for g in trt_api.USED.values() for e in g}
    prefixes = {p.rsplit(".", 1)[0] for p in used if "." in p} | used
    chains = set()
    for f in sorted(RUNTIME.glob("trt_*.py")):
        chains |= _chains(ast.parse(f.read_text()))
    extra = {c for c in chains if c != "__version__" and c not in prefixes and not any(c.startswith(u + ".") for u in used)}
    assert chains and not extra, f"tensorrt names used in depth_nodes/runtime/trt_*.py but missing from trt_api.USED: {extra}"


def test_the_checker_catches_a_wrong_name_and_a_wrong_argument_order(monkeypatch) -> None:
    surf = json.loads(json.dumps(snapshot("10.13.3.9")))
    monkeypatch.setitem(trt_api.USED, "common", (*trt_api.USED["common"], "IExecutionContext.execute_async_v4(stream_handle)",
                                           "IOptimizationProfile.set_shape(input, opt, min, max)"))  # fmt: skip
    problems = trt_api.check_used(surf)
    assert any("execute_async_v4 does not exist" in p for p in problems)
    assert any("set_shape('input', 'opt', 'min', 'max') does not match" in p for p in problems)
    # a 10.x-only name on a path 11.x takes: reported against the real 11.4 surface
    monkeypatch.setitem(trt_api.USED, "common", (*trt_api.USED["common"], "BuilderFlag.FP16"))
    assert any("BuilderFlag.FP16 does not exist" in p for p in trt_api.check_used(snapshot("11.4.0.106")))
