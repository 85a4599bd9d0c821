"""Fake ``tensorrt`` modules derived from the real 10.x / 11.x Python bindings, for testing without a GPU.

Derived, not imagined: a fake of version V offers exactly the names of ``trt_api.USED`` for V's version paths
that exist in the real bindings' surface (``test/trt_api/<real version>.json``, written from the real module by
``test/trt_bindings.py`` and checked against it in CI by ``test/test_runtime_trt_api.py``). Enum members carry
the real values; every fake method has the real pybind argument names in the real order (checked when the
fake is made: :func:`validate`). So the code under test cannot use a name, an argument name or a version path's
member that the real API of that version lacks: on 10.12+ there is no ``BuilderFlag`` (the backend must take
the strongly typed path), on 11.x no ``int8_calibrator`` and no ``IInt8EntropyCalibrator2``.

Behaviour modelled on the real one: ``OnnxParser.parse(model, path)`` fails on external weights without
``path``; ``build_serialized_network`` returns None for precision flags on a strongly typed network or a
dynamic input without a profile; ``deserialize_cuda_engine`` returns None for a corrupt plan or one of another
version; tensor dtypes are the ONNX's own; output shapes come from running the graph at the bound input shapes
(not invented); ``execute_async_v3`` reads and writes the memory at the addresses bound by name (CPU torch
tensors here: the device pointers of the real thing), returns False with an error on the logger when an I/O
tensor has no address, and records the stream handle it was given. The "engine" is the ONNX behind a header,
run by ONNX Runtime.

Test controls (not API): ``calls`` (what the code did), ``fp16_overflow`` (reduced-precision engines output
inf), ``precision_error`` (reduced-precision engines scale depth by 1 + this), ``fail_execute`` (a list of CUDA
error texts: each execute pops one, logs it as TensorRT does and returns False), ``build_delay_s``.
"""

from __future__ import annotations

import ctypes
import json
import threading
import time
import types
from pathlib import Path

import numpy as np
from runtime_trt_fakes_api import _enum, allowed, snapshot_version, validate
from trt_bindings import snapshot

from depth_nodes.runtime import trt_api

__all__ = ["MAGIC", "allowed", "make_fake_trt", "snapshot_version", "validate"]

MAGIC = b"FAKETRT2"
#: ONNX TensorProto elem_type -> TensorRT DataType name
ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 16: "BF16", 2: "UINT8"}
TRT_TO_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
             "BOOL": np.bool_, "UINT8": np.uint8}  # fmt: skip


def _np_dtype(name: str):
    return TRT_TO_NP[name]


def make_fake_trt(version: str = "10.3.0"):
    """A fake ``tensorrt`` module of ``version``; ``mod.calls`` records what the code under test did."""
    mod = types.ModuleType("tensorrt")
    mod.__version__ = version
    mod.snapshot_version = snapshot_version(version)
    mod.calls = {"builds": 0, "flags": [], "network_flags": [], "workspace": [], "profiles": [], "calib_batches": 0,
                 "parsed_paths": [], "streams": [], "executes": 0}  # fmt: skip
    mod.fp16_overflow, mod.precision_error, mod.fail_execute, mod.build_delay_s = False, 0.0, [], 0.0
    surf = snapshot(mod.snapshot_version)
    ok = allowed(version)
    lock = threading.Lock()
    weak = "IInt8EntropyCalibrator2" in ok
    for enum_name in ("NetworkDefinitionCreationFlag", "MemoryPoolType", "TensorIOMode", "DataType", "BuilderFlag"):
        if enum_name in ok:
            setattr(mod, enum_name, _enum(surf, enum_name, ok[enum_name]))
    Severity = _enum(surf, "ILogger.Severity", ok["ILogger"]["Severity"])

    def _log(logger, msg: str) -> None:
        if hasattr(logger, "log"):  # our ILogger subclass; a plain trt.Logger prints to stderr
            logger.log(Severity.ERROR, msg)

    class ILogger:
        def __init__(self) -> None:
            pass

    ILogger.Severity = Severity

    class Logger(ILogger):
        Severity = _enum(surf, "Logger.Severity", ok["ILogger"]["Severity"])
        WARNING = Severity.WARNING

        def __init__(self, min_severity=None) -> None:
            self._min = min_severity

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    class IHostMemory(bytes):
        """The real IHostMemory exposes the buffer protocol (memoryview / bytes work on it)."""

    class ITimingCache:
        def __init__(self, data: bytes) -> None:
            self._data = bytes(data)

        def serialize(self):
            return IHostMemory(self._data + b"+t")

    class IOptimizationProfile:
        def __init__(self) -> None:
            self._shapes = {}

        def set_shape(self, input, min, opt, max) -> None:  # noqa: A002 - the real argument names
            self._shapes[input] = (tuple(min), tuple(opt), tuple(max))

    class INetworkDefinition:
        def __init__(self, flags: int) -> None:
            self._flags, self._onnx = flags, b""

    class OnnxParser:
        def __init__(self, network, logger) -> None:
            self._network, self._errors = network, []

        def parse(self, model, path=None) -> bool:
            import onnx
            from onnx.external_data_helper import load_external_data_for_model, uses_external_data

            mod.calls["parsed_paths"].append(path)
            try:
                m = onnx.load_from_string(bytes(model))
                if any(uses_external_data(t) for t in m.graph.initializer):
                    if path is None:  # the real parser: "Failed to open file ... external weights" without a path
                        raise ValueError("model has external weights but no path was given to locate them")
                    load_external_data_for_model(m, str(Path(path).parent))
            except Exception as exc:  # noqa: BLE001
                self._errors = [f"ModelImporter: failed to parse ONNX: {exc}"]
                return False
            self._network._onnx = m.SerializeToString()
            return True

        num_errors = property(lambda self: len(self._errors))

        def get_error(self, index):
            return self._errors[index]

    class IBuilderConfig:
        def __init__(self) -> None:
            self._flags, self._pools, self._profiles = set(), {}, []
            self._calibrator, self._timing, self._monitor, self._calibration_profile = None, None, None, None

        def set_memory_pool_limit(self, pool, pool_size) -> None:
            self._pools[pool] = int(pool_size)

        def add_optimization_profile(self, profile) -> int:
            self._profiles.append(profile)
            return len(self._profiles) - 1

        def create_timing_cache(self, serialized_timing_cache):
            return ITimingCache(serialized_timing_cache)

        def set_timing_cache(self, cache, ignore_mismatch) -> bool:
            self._timing = cache
            return True

        def get_timing_cache(self):
            return self._timing

        progress_monitor = property(lambda self: self._monitor, lambda self, m: setattr(self, "_monitor", m))

        if weak:

            def set_flag(self, flag) -> None:
                self._flags.add(flag)

            int8_calibrator = property(lambda self: self._calibrator, lambda self, c: setattr(self, "_calibrator", c))

            def set_calibration_profile(self, profile) -> bool:
                self._calibration_profile = profile
                return True

    class Builder:
        def __init__(self, logger) -> None:
            self._logger = logger

        def create_network(self, flags=0):
            return INetworkDefinition(int(flags))

        def create_builder_config(self):
            return IBuilderConfig()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            return _build(network, config)

    def _build(network, config):
        import onnx

        strong_bit = getattr(getattr(mod, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED", None)
        strongly = trt_api.version_tuple(version)[0] >= 11 or (
            strong_bit is not None and bool(network._flags & (1 << int(strong_bit)))
        )
        precision_flags = {f for f in config._flags if f.name.split(".")[-1] in ("FP16", "INT8")}
        if strongly and precision_flags:
            return None  # "precision flags cannot be used with a strongly typed network"
        model = onnx.load_from_string(network._onnx)
        inits = {i.name for i in model.graph.initializer}
        graph_inputs = [i for i in model.graph.input if i.name not in inits]
        dyn = [i.name for i in graph_inputs if any(d.dim_param or not d.dim_value for d in i.type.tensor_type.shape.dim)]
        if any(n not in p._shapes for n in dyn for p in config._profiles) or (dyn and not config._profiles):
            return None  # "Network has dynamic or shape inputs, but no optimization profile has been defined"
        for p in config._profiles:
            for lo, opt, hi in p._shapes.values():
                if any(not a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)):
                    return None  # "min <= opt <= max violated"
        cal = config._calibrator
        if cal is not None:
            assert cal.get_batch_size() >= 1
            while cal.get_batch([i.name for i in graph_inputs]) is not None:
                mod.calls["calib_batches"] += 1
        typed = any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
        qdq = any(n.op_type == "QuantizeLinear" for n in model.graph.node)
        names = {f.name.split(".")[-1] for f in config._flags}
        precision = "int8" if (qdq or "INT8" in names) else ("fp16" if (typed or "FP16" in names) else "fp32")
        with lock:
            mod.calls["builds"] += 1
            mod.calls["flags"].append(sorted(f.name for f in config._flags))
            mod.calls["network_flags"].append(network._flags)
            mod.calls["workspace"].append(config._pools.get(mod.MemoryPoolType.WORKSPACE))
            mod.calls["profiles"].append([p._shapes for p in config._profiles])
        if config._monitor is not None:
            config._monitor.phase_start("Building engine", None, 1)
            config._monitor.step_complete("Building engine", 0)
            config._monitor.phase_finish("Building engine")
        time.sleep(mod.build_delay_s)
        dtypes = {v.name: ONNX_TO_TRT[v.type.tensor_type.elem_type] for v in [*graph_inputs, *model.graph.output]}
        header = {"version": version, "precision": precision, "dtypes": dtypes,
                  "profiles": [{n: [list(s) for s in v] for n, v in p._shapes.items()} for p in config._profiles]}  # fmt: skip
        h = json.dumps(header).encode()
        return IHostMemory(MAGIC + len(h).to_bytes(4, "little") + h + network._onnx)

    class Runtime:
        def __init__(self, logger) -> None:
            self._logger = logger

        def deserialize_cuda_engine(self, serialized_engine):
            data = bytes(serialized_engine)
            if not data.startswith(MAGIC) or len(data) < 12:
                return None  # "Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed)"
            n = int.from_bytes(data[8:12], "little")
            try:
                header = json.loads(data[12 : 12 + n])
            except ValueError:
                return None
            if header["version"] != version:
                return None  # "The engine plan file is not compatible with this version of TensorRT"
            engine = ICudaEngine(header, data[12 + n :], self._logger)
            return engine if engine._session is not None else None

    class ICudaEngine:
        def __init__(self, header, onnx_bytes: bytes, logger) -> None:
            import onnxruntime as ort

            self._header, self._logger = header, logger
            try:
                self._session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
            except Exception:  # noqa: BLE001 - a truncated plan
                self._session = None
            self._inputs = [i.name for i in self._session.get_inputs()] if self._session else []
            self._outputs = [o.name for o in self._session.get_outputs()] if self._session else []
            self._names = self._inputs + self._outputs

        num_io_tensors = property(lambda self: len(self._names))
        num_optimization_profiles = property(lambda self: len(self._header["profiles"]))

        def get_tensor_name(self, index):
            return self._names[index]

        def get_tensor_mode(self, name):
            return mod.TensorIOMode.INPUT if name in self._inputs else getattr(mod.TensorIOMode, "OUTPUT", None)

        def get_tensor_dtype(self, name):
            return getattr(mod.DataType, self._header["dtypes"][name])

        def get_tensor_profile_shape(self, name, profile_index):
            return [tuple(s) for s in self._header["profiles"][profile_index][name]]

        def create_execution_context(self, strategy=None):
            return IExecutionContext(self)

    class IExecutionContext:
        def __init__(self, engine) -> None:
            self._engine, self._shapes, self._addresses, self._profile = engine, {}, {}, 0
            self._out_shapes: dict = {}
            mod.last_context = self

        def set_optimization_profile_async(self, profile_index, stream_handle) -> bool:
            self._profile = int(profile_index)
            mod.calls["streams"].append(int(stream_handle))
            return True

        def set_input_shape(self, name, shape) -> bool:
            lo, _opt, hi = self._engine.get_tensor_profile_shape(name, self._profile)
            if len(shape) != len(lo) or any(s < a or s > b for s, a, b in zip(shape, lo, hi, strict=True)):
                return False
            self._shapes[name] = tuple(int(s) for s in shape)
            return True

        def _output_shapes(self) -> dict:
            """The real output shapes at the bound input shapes: the graph is run once per input-shape set."""
            key = tuple(self._shapes.get(n) for n in self._engine._inputs)
            if key not in self._out_shapes:
                e = self._engine
                feed = {n: np.zeros(s, _np_dtype(e._header["dtypes"][n])) for n, s in zip(e._inputs, key, strict=True)}
                outs = e._session.run(e._outputs, feed)
                self._out_shapes[key] = {n: o.shape for n, o in zip(e._outputs, outs, strict=True)}
            return self._out_shapes[key]

        def get_tensor_shape(self, name):
            if name in self._engine._inputs:
                return self._shapes.get(name, (-1,))
            if any(n not in self._shapes for n in self._engine._inputs):
                return (-1, -1, -1, -1)
            return self._output_shapes()[name]

        def set_tensor_address(self, name, memory) -> bool:
            self._addresses[name] = int(memory)
            return True

        def execute_async_v3(self, stream_handle) -> bool:
            e = self._engine
            mod.calls["streams"].append(int(stream_handle))
            mod.calls["executes"] += 1
            if mod.fail_execute:
                _log(e._logger, f"[executionContext.cpp::enqueueV3] Error Code 1: {mod.fail_execute.pop(0)}")
                return False
            missing = [n for n in e._names if n not in self._addresses or (n in e._inputs and n not in self._shapes)]
            if missing:
                _log(e._logger, f"IExecutionContext::enqueueV3: Error Code 3: no address/shape for {missing}")
                return False
            feed = {}
            for n in e._inputs:
                dt, shape = np.dtype(_np_dtype(e._header["dtypes"][n])), self._shapes[n]
                buf = (ctypes.c_char * (int(np.prod(shape)) * dt.itemsize)).from_address(self._addresses[n])
                feed[n] = np.frombuffer(buf, dt).reshape(shape).copy()
            outs = e._session.run(e._outputs, feed)
            reduced = e._header["precision"] != "fp32"
            for n, o in zip(e._outputs, outs, strict=True):
                if reduced and mod.fp16_overflow:
                    o = np.full_like(o, np.inf)
                elif reduced and mod.precision_error and n == "depth":
                    o = (o * (1.0 + mod.precision_error)).astype(o.dtype)
                buf = (ctypes.c_char * o.nbytes).from_address(self._addresses[n])
                np.frombuffer(buf, o.dtype)[:] = np.ascontiguousarray(o).ravel()
            return True

    for obj in (Logger, ILogger, IProgressMonitor, Builder, OnnxParser, Runtime):
        setattr(mod, obj.__name__, obj)
    classes = {c.__name__: c for c in (ILogger, Logger, IProgressMonitor, ITimingCache, IOptimizationProfile,
               INetworkDefinition, OnnxParser, IBuilderConfig, Builder, Runtime, ICudaEngine, IExecutionContext)}  # fmt: skip
    if weak:

        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                pass

        mod.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
        classes["IInt8EntropyCalibrator2"] = IInt8EntropyCalibrator2
    validate(mod, classes)
    return mod
