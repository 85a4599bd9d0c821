"""The layering of docs/architecture.md, enforced on the source: an import against an arrow fails here, and
every entry of the two name tables (completers, pipeline estimators) resolves to a real factory."""

from __future__ import annotations

import ast
from importlib import import_module
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "depth_nodes"

#: package (or module path prefix) -> packages of depth_nodes it must never import
FORBIDDEN = {
    "core": {"msgs", "completion", "runtime", "mono", "models", "pipeline", "ros", "data", "eval", "train"},
    "msgs": {"completion", "runtime", "mono", "models", "pipeline", "ros", "data", "eval", "train"},
    "completion": {"runtime", "mono", "models", "pipeline", "ros", "data", "eval", "train"},
    "runtime": {"mono", "pipeline", "ros", "data", "eval", "train"},
    "mono": {"pipeline", "ros", "data", "eval", "train"},
    "models": {"completion", "mono", "pipeline", "ros", "data", "eval", "train"},
    "pipeline": {"ros", "data", "eval", "train"},
}
#: command-line / bench modules inside a layer, which drive the tools above it (documented exceptions)
TOOL_MODULES = {"completion/cli.py", "mono/bench.py"}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("depth_nodes"):
            out |= {f"{node.module}.{a.name}" for a in node.names} if node.module == "depth_nodes" else {node.module}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("depth_nodes")}
    return out


def test_no_import_against_the_layering():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        layer = rel.parts[0] if len(rel.parts) > 1 else ""
        for mod in _imports(path):
            parts = mod.split(".")
            target = parts[1] if len(parts) > 1 else ""
            if layer in FORBIDDEN and str(rel) not in TOOL_MODULES and target in FORBIDDEN[layer]:
                offenders.append(f"{rel}: {mod}")
            # the node never imports its tooling (bench, bag tools, harness)
            if layer == "ros" and rel.parts[1] != "tools" and mod.startswith("depth_nodes.ros.tools"):
                offenders.append(f"{rel}: {mod}")
    assert not offenders, "imports against docs/architecture.md's layering:\n" + "\n".join(offenders)


def test_modules_register_nothing_on_import():
    """Completers and estimators are named in the two tables (plus explicit run-time calls): no module imports
    the registration functions at module level, so none can register itself on import."""
    names = {("depth_nodes.completion.registry", "register"), ("depth_nodes.completion", "register"),
             ("depth_nodes.pipeline.estimators", "register_estimator"), ("depth_nodes.pipeline", "register_estimator")}  # fmt: skip
    api = {"completion/__init__.py", "pipeline/__init__.py"}  # the packages' public API re-exports them
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if str(path.relative_to(PACKAGE)) in api:
            continue
        for node in ast.parse(path.read_text()).body:  # module level only (a function may register on request)
            if isinstance(node, ast.ImportFrom) and any((node.module, a.name) in names for a in node.names):
                offenders.append(f"{path.relative_to(PACKAGE)}: from {node.module} import ...")
    assert not offenders, offenders


def _resolve(target: str):
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def test_completer_table_entries_resolve():
    from depth_nodes.completion.registry import COMPLETERS, available

    assert set(COMPLETERS) <= set(available())
    for name, (target, fixed, description) in COMPLETERS.items():
        assert callable(_resolve(target)), name
        assert isinstance(fixed, dict) and description, name


def test_estimator_table_entries_resolve():
    from depth_nodes import pipeline as pl

    assert {"learned", "mono", "depth_anything_v2", "prompt_depth_anything"} <= set(pl.estimator_names())
    for name, (target, _) in pl.BUILTIN_ESTIMATORS.items():
        assert callable(_resolve(target)), name
    with pytest.raises(KeyError):
        pl.estimator_factory("no_such_estimator")
