"""How the fake ``tensorrt`` modules are derived from the real bindings' surface (see runtime_trt_fakes.py).

:func:`allowed` = the ``trt_api.USED`` names of a version's paths that the real snapshot of that version has;
:func:`validate` fails a fake that offers anything else, or a method whose argument names differ from the real
pybind signature.
"""

from __future__ import annotations

import inspect
import types

from trt_bindings import snapshot

from depth_nodes.runtime import trt_api

CONTROLS = {"calls", "fp16_overflow", "precision_error", "fail_execute", "build_delay_s", "last_context",
            "snapshot_version"}  # fmt: skip

def snapshot_version(version: str) -> str:
    """The checked real version whose surface a fake of ``version`` is derived from."""
    v = trt_api.version_tuple(version)
    if v[0] >= 11:
        return "11.4.0.106"
    return "10.13.3.9" if v[:2] >= trt_api.STRONG_FROM else "10.3.0"


def allowed(version: str) -> dict[str, dict]:
    """``{class: {member: args or None or nested dict}}`` a fake of ``version`` may offer."""
    surf = snapshot(snapshot_version(version))
    out: dict[str, dict] = {}
    for group in trt_api.paths_of(version):
        for entry in trt_api.USED[group]:
            path, args, _ = trt_api.parse_entry(entry)
            if trt_api.lookup(surf, path) is None:
                continue
            head, *rest = path.split(".")
            node = out.setdefault(head, {})
            for i, part in enumerate(rest):
                if i == len(rest) - 1:
                    node.setdefault(part, args)
                else:
                    if not isinstance(node.get(part), dict):
                        node[part] = {}
                    node = node[part]
    return out


class _Enum:
    def __init__(self, name: str, value: int) -> None:
        self.name, self.value = name, value

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __eq__(self, other) -> bool:
        return isinstance(other, _Enum) and (self.name, self.value) == (other.name, other.value)

    def __hash__(self) -> int:
        return hash((self.name, self.value))

    def __repr__(self) -> str:
        return self.name


def _enum(surf: dict, path: str, names: dict):
    real = trt_api.lookup(surf, path)["members"]
    cls_name = path.split(".")[-1]
    return type(cls_name, (), {n: _Enum(f"{cls_name}.{n}", real[n]["value"]) for n in names})


def validate(mod, classes: dict[str, type]) -> None:
    """Every public name of the fake exists in the real surface, is allowed by USED, with the real arguments."""
    version = mod.__version__
    surf = snapshot(snapshot_version(version))
    ok = allowed(version)
    for n in dir(mod):
        if n.startswith("_") or n in CONTROLS or isinstance(getattr(mod, n), types.ModuleType):
            continue
        assert n in ok, f"fake tensorrt {version} offers {n}, which USED / the real {surf['version']} lacks"
    for cname, cls in classes.items():
        real = trt_api.lookup(surf, cname)
        assert real is not None and real["kind"] == "class", f"fake class {cname}: no such class in {surf['version']}"
        for m, raw in vars(cls).items():
            if m.startswith("_"):
                continue
            assert m in ok.get(cname, {}), f"fake {cname}.{m} is not in USED for {version}"
            r = real["members"].get(m)
            assert r is not None, f"fake {cname}.{m}: the real {surf['version']} has no such member"
            if isinstance(raw, property):
                assert r["kind"] == "property", f"fake {cname}.{m} is a property; real: {r['kind']}"
                assert raw.fset is None or r["settable"], f"fake {cname}.{m} is settable; the real one is not"
            elif callable(raw) and not isinstance(raw, type):
                args = tuple(list(inspect.signature(raw).parameters)[1:])
                assert r["kind"] == "method" and any(tuple(s) == args for s in r["signatures"]), (
                    f"fake {cname}.{m}{args} does not match the real {surf['version']} signatures {r.get('signatures')}"
                )
