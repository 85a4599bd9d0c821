"""Every TensorRT Python API name the backend uses, per version path, and a reader of the real module's surface.

``USED`` is the single list of what :mod:`trt_build`, :mod:`trt_backend` and :mod:`trt_precision` call on the
``tensorrt`` module, with the argument names and order of each method as pybind11 documents them in the real
bindings. It is checked in CI against the real bindings of TensorRT 10.3.0, 10.13.3.9 and 11.4.0.106
(``scripts/trt_bindings.sh`` + ``test/test_runtime_trt_api.py``); the test fakes may offer nothing outside it.

Paths (:func:`paths_of`): ``common`` (every version), ``weak`` (10.0-10.11: precision builder flags and the
entropy calibrator, deprecated since 10.12 / 10.1 and gone in 11.x), ``strong10`` (10.x with a typed ONNX, and
every 10.12+ build: ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``; 11.x ignores the flag and is always
strongly typed, so it is not used there).

:func:`surface` reads a live module into plain data (classes, methods with their pybind argument lists,
properties, enum members): the test runs it in a subprocess on each real version. Signatures come from the
pybind11 docstrings (``name(self: T, a: X, b: Y = d) -> R``; overloads as ``1. name(...)``) -- pybind exposes
no ``inspect.signature``, and this parser is small and local, so it is written here.
"""

from __future__ import annotations

import re

#: "Class.member(arg, ...)" = method with its arguments in order (``self`` left out); "Class.member" = property,
#: enum member or nested class; "Class" = a class. ``*`` after a method name: overridden by our subclass (the
#: argument names are the ones TensorRT calls it with).
USED: dict[str, tuple[str, ...]] = {
    "common": (
        "Logger",
        "Logger.Severity",
        "Logger.WARNING",
        "ILogger",
        "ILogger.log*(severity, msg)",
        "ILogger.Severity.INTERNAL_ERROR",
        "ILogger.Severity.ERROR",
        "ILogger.Severity.WARNING",
        "ILogger.Severity.INFO",
        "ILogger.Severity.VERBOSE",
        "IProgressMonitor",
        "IProgressMonitor.phase_start*(phase_name, parent_phase, num_steps)",
        "IProgressMonitor.step_complete*(phase_name, step)",
        "IProgressMonitor.phase_finish*(phase_name)",
        "Builder",
        "Builder.create_network(flags)",
        "Builder.create_builder_config()",
        "Builder.create_optimization_profile()",
        "Builder.build_serialized_network(network, config)",
        "OnnxParser",
        "OnnxParser.parse(model, path)",
        "OnnxParser.num_errors",
        "OnnxParser.get_error(index)",
        "IBuilderConfig.set_memory_pool_limit(pool, pool_size)",
        "IBuilderConfig.add_optimization_profile(profile)",
        "IBuilderConfig.create_timing_cache(serialized_timing_cache)",
        "IBuilderConfig.set_timing_cache(cache, ignore_mismatch)",
        "IBuilderConfig.get_timing_cache()",
        "IBuilderConfig.progress_monitor",
        "IOptimizationProfile.set_shape(input, min, opt, max)",
        "ITimingCache.serialize()",
        "MemoryPoolType.WORKSPACE",
        "Runtime",
        "Runtime.deserialize_cuda_engine(serialized_engine)",
        "ICudaEngine.num_io_tensors",
        "ICudaEngine.num_optimization_profiles",
        "ICudaEngine.get_tensor_name(index)",
        "ICudaEngine.get_tensor_mode(name)",
        "ICudaEngine.get_tensor_dtype(name)",
        "ICudaEngine.get_tensor_profile_shape(name, profile_index)",
        "ICudaEngine.create_execution_context()",
        "TensorIOMode.INPUT",
        "DataType.FLOAT",
        "DataType.HALF",
        "DataType.INT8",
        "DataType.INT32",
        "DataType.INT64",
        "DataType.BOOL",
        "DataType.BF16",
        "DataType.UINT8",
        "IExecutionContext.set_optimization_profile_async(profile_index, stream_handle)",
        "IExecutionContext.set_input_shape(name, shape)",
        "IExecutionContext.get_tensor_shape(name)",
        "IExecutionContext.set_tensor_address(name, memory)",
        "IExecutionContext.execute_async_v3(stream_handle)",
    ),
    "weak": (
        "BuilderFlag.FP16",
        "BuilderFlag.INT8",
        "IBuilderConfig.set_flag(flag)",
        "IBuilderConfig.int8_calibrator",
        "IBuilderConfig.set_calibration_profile(profile)",
        "IInt8EntropyCalibrator2",
        "IInt8EntropyCalibrator2.get_batch_size*()",
        "IInt8EntropyCalibrator2.get_batch*(names)",
        "IInt8EntropyCalibrator2.read_calibration_cache*()",
        "IInt8EntropyCalibrator2.write_calibration_cache*(cache)",
    ),
    "strong10": ("NetworkDefinitionCreationFlag.STRONGLY_TYPED",),
}

#: The versions CI checks (scripts/trt_bindings.sh downloads exactly these bindings wheels).
CHECKED_VERSIONS = ("10.3.0", "10.13.3.9", "11.4.0.106")
#: first 10.x release whose precision flags / calibrators are deprecated (10.12): from there the strongly
#: typed path (precision from the ONNX, converted by ModelOpt) is taken, as on 11.x
STRONG_FROM = (10, 12)


def version_tuple(version: str) -> tuple[int, int, int]:
    parts = (str(version).split(".") + ["0", "0"])[:3]
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts)  # type: ignore[return-value]


def precision_path(version: str) -> str:
    """``weak`` (10.0-10.11: builder flags + calibrator) or ``strong`` (10.12+ and 11.x: typed ONNX)."""
    v = version_tuple(version)
    return "weak" if (10, 0) <= v[:2] < STRONG_FROM else "strong"


def paths_of(version: str) -> tuple[str, ...]:
    """The ``USED`` groups the backend may touch on ``version``."""
    major = version_tuple(version)[0]
    if major >= 11:
        return ("common",)
    return ("common", "weak", "strong10") if precision_path(version) == "weak" else ("common", "strong10")


_ENTRY = re.compile(r"^(?P<path>[A-Za-z_][\w.]*?)(?P<override>\*)?(?:\((?P<args>[^)]*)\))?$")


def parse_entry(entry: str) -> tuple[str, tuple[str, ...] | None, bool]:
    """``"A.b*(x, y)"`` -> ``("A.b", ("x", "y"), True)``; no parentheses -> args None."""
    m = _ENTRY.match(entry)
    if not m:
        raise ValueError(f"bad USED entry {entry!r}")
    args = m.group("args")
    names = None if args is None else tuple(a.strip() for a in args.split(",") if a.strip())
    return m.group("path"), names, bool(m.group("override"))


def _split_top(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def doc_signatures(name: str, doc: str | None) -> list[tuple[str, ...]]:
    """Argument-name lists (without ``self``) of every pybind overload of ``name`` in ``doc``."""
    sigs = []
    for m in re.finditer(rf"(?m)^\s*(?:\d+\.\s*)?{re.escape(name)}\((.*)\)\s*->", doc or ""):
        args = []
        for part in _split_top(m.group(1)):
            arg = part.split(":")[0].split("=")[0].strip()
            if arg and arg not in ("self", "*args", "**kwargs"):
                args.append(arg)
        sigs.append(tuple(args))
    return sigs


def surface(trt, classes: set[str] | None = None) -> dict:
    """The public surface of module ``trt`` (only ``classes`` when given): version, and per class its methods
    (pybind argument lists), properties (settable or not), enum members and nested classes."""
    out: dict = {"version": str(trt.__version__), "classes": {}}
    for cname in sorted(classes or [n for n in dir(trt) if not n.startswith("_")]):
        cls = getattr(trt, cname, None)
        if not isinstance(cls, type):
            continue
        out["classes"][cname] = _class_surface(cls)
    return out


def _class_surface(cls: type) -> dict:
    members: dict = {}
    enum = getattr(cls, "__members__", None)
    for n, v in (enum or {}).items():
        members[n] = {"kind": "enum", "value": int(v)}
    for n in dir(cls):
        if n.startswith("_") or n in members:
            continue
        raw = None
        for k in cls.__mro__:
            if n in vars(k):
                raw = vars(k)[n]
                break
        if isinstance(raw, property):
            members[n] = {"kind": "property", "settable": raw.fset is not None}
        elif isinstance(raw, type):
            members[n] = {"kind": "class", "members": _class_surface(raw)}
        elif callable(raw) or type(raw).__name__ in ("instancemethod", "builtin_function_or_method"):
            members[n] = {"kind": "method", "signatures": [list(s) for s in doc_signatures(n, raw.__doc__)]}
        elif enum is not None and n in ("name", "value"):
            continue
        else:
            members[n] = {"kind": "value", "type": type(raw).__name__}
    return members


def lookup(surf: dict, path: str) -> dict | None:
    """The surface entry of ``"Class.member.sub"`` (None when absent)."""
    head, *rest = path.split(".")
    node = surf["classes"].get(head)
    if node is None:
        return None
    entry: dict = {"kind": "class", "members": node}
    for part in rest:
        if entry.get("kind") != "class":
            return None
        entry = entry["members"].get(part)
        if entry is None:
            return None
    return entry


def check_used(surf: dict, version: str | None = None) -> list[str]:
    """Problems of ``USED`` (the groups of ``version``) against ``surf``; empty when every name matches."""
    version = version or surf["version"]
    problems = []
    for group in paths_of(version):
        for entry in USED[group]:
            path, args, _override = parse_entry(entry)
            got = lookup(surf, path)
            if got is None:
                problems.append(f"{version} [{group}]: tensorrt.{path} does not exist")
                continue
            if args is None:
                continue
            if got.get("kind") != "method":
                problems.append(f"{version} [{group}]: tensorrt.{path} is a {got.get('kind')}, not a method")
            elif not any(tuple(s[: len(args)]) == args for s in got["signatures"]):
                problems.append(
                    f"{version} [{group}]: tensorrt.{path}{args} does not match the real signature(s) "
                    f"{[tuple(s) for s in got['signatures']]}"
                )
    return problems


def used_classes() -> set[str]:
    return {parse_entry(e)[0].split(".")[0] for group in USED.values() for e in group} | {"IHostMemory"}
