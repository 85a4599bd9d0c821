"""Fake ``tensorrt`` modules shaped like the real 10.x and 11.x Python APIs, for testing without a GPU.

Shaped after the API references (docs.nvidia.com/deeplearning/tensorrt, Python API + the 10.x -> 11.x
migration guide): ``Builder.create_network(flags)``, ``OnnxParser.parse/num_errors/get_error``,
``IBuilderConfig.set_memory_pool_limit(MemoryPoolType.WORKSPACE, n)``, ``set_flag(BuilderFlag.FP16)`` (10.x
only: 11.x has no precision flags, no ``int8_calibrator``, no ``IInt8EntropyCalibrator2``),
``create_optimization_profile().set_shape(name, min, opt, max)``, ``create_timing_cache / set_timing_cache /
get_timing_cache().serialize()``, ``build_serialized_network`` (None on failure), ``Runtime.deserialize_cuda_engine``
(None for a corrupt plan or one of another version), ``ICudaEngine.num_io_tensors / get_tensor_name /
get_tensor_mode / get_tensor_dtype / num_optimization_profiles / get_tensor_profile_shape``, and
``IExecutionContext.set_optimization_profile_async / set_input_shape / get_tensor_shape / set_tensor_address /
execute_async_v3``.

The "engine" is the ONNX itself (run by ONNX Runtime) behind a header, and execution reads and writes the
tensors at the addresses bound by name (CPU torch tensors here): binding by name and by address is exercised
for real. ``module.fp16_overflow = True`` makes reduced-precision engines output inf (the FP16 guard's case).
"""

from __future__ import annotations

import ctypes
import json
import threading
import time
import types

import numpy as np

MAGIC = b"FAKETRT1"


class _Enum:
    def __init__(self, name: str, value: int) -> None:
        self.name, self.value = name, value

    def __int__(self) -> int:
        return self.value

    def __eq__(self, other) -> bool:
        return isinstance(other, _Enum) and (self.name, self.value) == (other.name, other.value)

    def __hash__(self) -> int:
        return hash((self.name, self.value))

    def __repr__(self) -> str:
        return self.name


def _enum(cls_name: str, names: list[str]):
    return type(cls_name, (), {n: _Enum(f"{cls_name}.{n}", i) for i, n in enumerate(names)})


def make_fake_trt(version: str = "10.3.0"):
    """A fake ``tensorrt`` module of ``version``; ``mod.calls`` records what the code under test did."""
    major = int(version.split(".")[0])
    mod = types.ModuleType("tensorrt")
    mod.__version__ = version
    mod.calls = {"builds": 0, "flags": [], "network_flags": [], "workspace": [], "profiles": [], "calib_batches": 0}
    mod.fp16_overflow = False
    mod.build_delay_s = 0.0
    lock = threading.Lock()
    Severity = _enum("Severity", ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"])
    mod.NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", ["EXPLICIT_BATCH", "STRONGLY_TYPED"])
    mod.MemoryPoolType = _enum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM"])
    mod.TensorIOMode = _enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
    mod.DataType = _enum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL"])
    # 11.x removed every precision-enabling flag (migration guide: "Removed Python APIs")
    flag_names = ["GPU_FALLBACK", "REFIT", "SPARSE_WEIGHTS"] + (["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"] if major < 11 else [])
    mod.BuilderFlag = _enum("BuilderFlag", flag_names)

    class Logger:
        WARNING, ERROR, INFO, VERBOSE, INTERNAL_ERROR = (Severity.WARNING, Severity.ERROR, Severity.INFO,
                                                         Severity.VERBOSE, Severity.INTERNAL_ERROR)

        def __init__(self, min_severity=None) -> None:
            self.min_severity = min_severity

    Logger.Severity = Severity

    class ILogger:
        def __init__(self) -> None:
            pass

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    class IHostMemory(bytes):
        """The real IHostMemory exposes the buffer protocol (memoryview / bytes work on it)."""

    class ITimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = bytes(data)

        def serialize(self):
            return IHostMemory(self.data + b"+t")

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes = {}

        def set_shape(self, name, min, opt, max) -> None:  # noqa: A002 - real argument names
            self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

    class INetworkDefinition:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.onnx = b""

    class OnnxParser:
        def __init__(self, network, logger) -> None:
            self.network, self._errors = network, []

        def parse(self, model: bytes) -> bool:
            import onnx

            try:
                onnx.load_from_string(bytes(model))
            except Exception as exc:  # noqa: BLE001
                self._errors = [f"ModelImporter: failed to parse ONNX: {exc}"]
                return False
            self.network.onnx = bytes(model)
            return True

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, i):
            return self._errors[i]

    class IBuilderConfig:
        def __init__(self) -> None:
            self.flags, self.pools, self.profiles = set(), {}, []
            self._calibrator = None
            self.timing_cache = None
            self.progress_monitor = None
            self.calibration_profile = None

        def set_memory_pool_limit(self, pool, size) -> None:
            self.pools[pool] = int(size)

        def set_flag(self, flag) -> None:
            self.flags.add(flag)

        def add_optimization_profile(self, profile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized_timing_cache: bytes):
            return ITimingCache(serialized_timing_cache)

        def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
            self.timing_cache = cache
            return True

        def get_timing_cache(self):
            return self.timing_cache

        if major < 11:
            int8_calibrator = property(lambda self: self._calibrator, lambda self, c: setattr(self, "_calibrator", c))

            def set_calibration_profile(self, profile) -> bool:
                self.calibration_profile = profile
                return True

    class Builder:
        def __init__(self, logger) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0):
            return INetworkDefinition(int(flags))

        def create_builder_config(self):
            return IBuilderConfig()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            import onnx

            strongly = major >= 11 or bool(network.flags & (1 << int(mod.NetworkDefinitionCreationFlag.STRONGLY_TYPED)))
            precision_flags = {f for f in config.flags if f.name.split(".")[-1] in ("FP16", "INT8")}
            if strongly and precision_flags:
                return None  # "precision flags cannot be used with a strongly typed network"
            model = onnx.load_from_string(network.onnx)
            inits = {i.name for i in model.graph.initializer}
            dyn = [i.name for i in model.graph.input if i.name not in inits
                   and any(d.dim_param for d in i.type.tensor_type.shape.dim)]
            if any(n not in p.shapes for n in dyn for p in config.profiles) or (dyn and not config.profiles):
                return None  # "Network has dynamic or shape inputs, but no optimization profile has been defined"
            cal = getattr(config, "_calibrator", None)
            if cal is not None:
                names = [i.name for i in model.graph.input if i.name not in inits]
                while cal.get_batch(names) is not None:
                    mod.calls["calib_batches"] += 1
            typed = any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
            qdq = any(n.op_type == "QuantizeLinear" for n in model.graph.node)
            precision = "int8" if (qdq or any("INT8" in f.name for f in config.flags)) else (
                "fp16" if (typed or any("FP16" in f.name for f in config.flags)) else "fp32")
            with lock:
                mod.calls["builds"] += 1
                mod.calls["flags"].append(sorted(f.name for f in config.flags))
                mod.calls["network_flags"].append(network.flags)
                mod.calls["workspace"].append(config.pools.get(mod.MemoryPoolType.WORKSPACE))
                mod.calls["profiles"].append([p.shapes for p in config.profiles])
            if config.progress_monitor is not None:
                config.progress_monitor.phase_start("Building engine", None, 1)
                config.progress_monitor.step_complete("Building engine", 0)
                config.progress_monitor.phase_finish("Building engine")
            time.sleep(mod.build_delay_s)
            header = {"version": version, "precision": precision,
                      "profiles": [{n: [list(s) for s in v] for n, v in p.shapes.items()} for p in config.profiles]}
            h = json.dumps(header).encode()
            return IHostMemory(MAGIC + len(h).to_bytes(4, "little") + h + network.onnx)

    class Runtime:
        def __init__(self, logger) -> None:
            self.logger = logger

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
            engine = ICudaEngine(header, data[12 + n :])
            return engine if engine.session is not None else None

    class ICudaEngine:
        def __init__(self, header, onnx_bytes: bytes) -> None:
            import onnxruntime as ort

            self.header = header
            try:
                self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
            except Exception:  # noqa: BLE001 - a truncated plan
                self.session = None
            self.inputs = [i.name for i in self.session.get_inputs()] if self.session else []
            self.outputs = [o.name for o in self.session.get_outputs()] if self.session else []
            self.names = self.inputs + self.outputs

        num_io_tensors = property(lambda self: len(self.names))
        num_optimization_profiles = property(lambda self: len(self.header["profiles"]))

        def get_tensor_name(self, index: int) -> str:
            return self.names[index]

        def get_tensor_mode(self, name: str):
            return mod.TensorIOMode.INPUT if name in self.inputs else mod.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str):
            return mod.DataType.FLOAT

        def get_tensor_profile_shape(self, name: str, profile_index: int):
            return [tuple(s) for s in self.header["profiles"][profile_index][name]]

        def create_execution_context(self):
            return IExecutionContext(self)

    class IExecutionContext:
        def __init__(self, engine) -> None:
            self.engine, self.shapes, self.addresses, self.profile = engine, {}, {}, 0
            mod.last_context = self

        def set_optimization_profile_async(self, profile_index: int, stream_handle: int) -> bool:
            self.profile = profile_index
            return True

        def set_input_shape(self, name: str, shape) -> bool:
            lo, _opt, hi = self.engine.get_tensor_profile_shape(name, self.profile)
            if any(s < a or s > b for s, a, b in zip(shape, lo, hi, strict=True)):
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str):
            if name in self.engine.inputs:
                return self.shapes.get(name, (-1,))
            first = self.shapes.get(self.engine.inputs[0])
            return (1, 1, *first[2:]) if first else (-1, -1, -1, -1)

        def set_tensor_address(self, name: str, memory: int) -> bool:
            self.addresses[name] = int(memory)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            feed = {}
            for n in self.engine.inputs:
                shape = self.shapes[n]
                buf = (ctypes.c_float * int(np.prod(shape))).from_address(self.addresses[n])
                feed[n] = np.ctypeslib.as_array(buf).reshape(shape).copy()
            outs = self.engine.session.run(self.engine.outputs, feed)
            for n, o in zip(self.engine.outputs, outs, strict=True):
                if mod.fp16_overflow and self.engine.header["precision"] != "fp32":
                    o = np.full_like(o, np.inf)
                buf = (ctypes.c_float * o.size).from_address(self.addresses[n])
                np.ctypeslib.as_array(buf)[:] = o.ravel()
            return True

    for obj in (Logger, ILogger, IProgressMonitor, Builder, OnnxParser, Runtime):
        setattr(mod, obj.__name__, obj)
    if major < 11:
        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                pass

        mod.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    return mod
