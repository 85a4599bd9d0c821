"""The TensorRT backend: engine from the cache (or built), run by tensor name on torch CUDA memory.

Execution uses the name-based API of TensorRT 10/11 (``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``) on a dedicated torch CUDA stream; inputs and outputs are torch tensors owned by torch's
allocator, so pre- and post-processing stay on the GPU (no pycuda, no host copies unless numpy is passed).

FP16 guard + accuracy gate: reduced-precision engines run the warm-up frames first; any NaN/inf output means an
overflow the ONNX did not guard against, and depth off ONNX Runtime fp32 by more than the precision's tolerance
(:mod:`trt_accuracy`) means the engine is wrong; either way it is replaced by an fp32 one, with the reason in
the log and diagnostics. A failed ``execute_async_v3`` whose TensorRT error is a CUDA out-of-memory / launch
failure is a :class:`TransientEngineError` (retried by the guarded estimator), anything else permanent.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from depth_nodes.runtime import trt_build
from depth_nodes.runtime.base import Backend, is_torch
from depth_nodes.runtime.errors import BackendUnavailableError, EngineError, ModelError
from depth_nodes.runtime.onnx_io import read_onnx, sha256_file
from depth_nodes.runtime.trt_cache import EngineCache, EngineKey, atomic_write, onnx_fingerprint, read_trusted
from depth_nodes.runtime.trt_checks import PrecisionChecks
from depth_nodes.runtime.trt_errors import TransientEngineError, is_transient_text
from depth_nodes.runtime.trt_gpu import GpuInfo
from depth_nodes.runtime.trt_profiles import padded, profiles_for, select_profile

log = logging.getLogger(__name__)
DEFAULT_CACHE_DIR = "~/.cache/depth_nodes/engines"


def _torch_dtype(trt, dt):
    import torch

    table = {"FLOAT": torch.float32, "HALF": torch.float16, "INT8": torch.int8, "INT32": torch.int32,
             "INT64": torch.int64, "BOOL": torch.bool, "BF16": torch.bfloat16, "UINT8": torch.uint8}  # fmt: skip
    for name, tdt in table.items():
        if getattr(trt.DataType, name, object()) == dt:
            return tdt
    raise EngineError(f"engine tensor type {dt} is not supported by the depth_nodes runtime")


def _check_onnx(path: Path) -> None:
    """``onnx.checker`` by path, so a model with external weights (``model.onnx.data``) is checked with them."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - the checker raises several types
        raise ModelError(f"ONNX file {path} fails onnx.checker: {exc}") from None


class TensorRTBackend(PrecisionChecks, Backend):
    kind = "tensorrt"

    def __init__(
        self,
        onnx_path: str | Path,
        precision: str = "fp16",
        device: str = "cuda:0",
        engine_cache_dir: str | Path = DEFAULT_CACHE_DIR,
        resolutions: list[tuple[int, int]] | None = None,
        workspace_mb: int = 1024,
        force_engine_update: bool = False,
        engine_path: str | Path | None = None,
        calib_inputs: list[dict[str, np.ndarray]] | None = None,
        warmup_inputs: list[dict[str, np.ndarray]] | None = None,
        trt_module: Any = None,
        gpu: GpuInfo | None = None,
        on_line: Callable[[str], None] | None = None,
        check_source: str = "",
    ) -> None:
        super().__init__(precision, device)
        self.onnx_path = Path(onnx_path)
        self.cache = EngineCache(engine_cache_dir)
        self.resolutions = list(resolutions or [(352, 1216)])
        self.check_source = check_source  # what the warm-up / accuracy frames are (diagnostics)
        self.accuracy = None  # trt_accuracy.Accuracy of the engine in use (reduced precision)
        self.converter = ""
        self.workspace_bytes = int(workspace_mb) << 20
        self.force_engine_update = force_engine_update
        self.given_engine = Path(engine_path) if engine_path else None  # a user's engine: never rebuilt
        self.engine_file: Path | None = None
        self.calib_inputs = calib_inputs
        self.warmup_inputs = warmup_inputs
        self._trt = trt_module
        self._gpu = gpu
        self.on_line = on_line or (lambda s: log.info("%s", s))
        self.build_path = ""
        self.cache_event = ""
        self.engine = None
        self.context = None
        self._profile = -1
        self._stream = None

    # ------------------------------------------------------------------ engine
    def _key(self, precision: str, profiles: list[trt_build.Profile]) -> EngineKey:
        calib = ""
        if precision == "int8" and self.calib_inputs:
            import hashlib

            h = hashlib.sha256()
            for feed in self.calib_inputs:
                for n in sorted(feed):
                    h.update(np.ascontiguousarray(feed[n]).tobytes())
            calib = h.hexdigest()
        return EngineKey(
            self.fingerprint, self.gpu.name, self.gpu.compute_capability, str(self.trt.__version__), precision,
            tuple(p.key() for p in profiles), calib, self.workspace_bytes, self._converter_for(precision),
        )  # fmt: skip

    def _converts(self, precision: str) -> bool:
        """Whether ``precision`` needs the ONNX converted first (the strongly typed path, an fp32 ONNX)."""
        from depth_nodes.runtime.trt_api import precision_path

        return precision != "fp32" and not self.typed_onnx and precision_path(self.trt.__version__) == "strong"

    def _converter_for(self, precision: str) -> str:
        from depth_nodes.runtime import trt_precision

        if not self._converts(precision):
            return ""
        return trt_precision.converter_id(precision)

    def _prepared_onnx(self, precision: str) -> tuple[Path, bool]:
        """The ONNX to build from and whether it is typed (strongly typed build)."""
        from depth_nodes.runtime import trt_precision

        if not self._converts(precision):
            return self.onnx_path, self.typed_onnx
        out = self.cache.dir / f"{self.fingerprint[:16]}.{precision}.onnx"
        if precision == "fp16":
            tool = trt_precision.convert_fp16(self.onnx_path, out, self._calib_arrays())
        else:
            if not self.calib_inputs:
                raise EngineError("int8 needs calibration frames (--calib-dir / calib_inputs)")
            tool = trt_precision.quantize_int8(self.onnx_path, out, self._calib_arrays())
        self.notes.append(f"ONNX converted to {precision} by {tool}")
        return out, True

    def _calib_arrays(self) -> dict[str, np.ndarray] | None:
        """The calibration frames as name -> N x C x H x W (AutoCast and ModelOpt PTQ read them), or None."""
        if not self.calib_inputs:
            return None
        return {n: np.concatenate([f[n] for f in self.calib_inputs]) for n in self.calib_inputs[0]}

    def _build(self, precision: str, profiles: list[trt_build.Profile], key: EngineKey, engine: Path) -> bytes:
        from depth_nodes.runtime import trt_precision

        onnx_path, typed = self._prepared_onnx(precision)
        calibrator = None
        if precision == "int8" and not typed:
            if not self.calib_inputs:
                raise EngineError("int8 on TensorRT 10.x needs calibration frames (--calib-dir / calib_inputs)")
            calibrator = trt_precision.make_entropy_calibrator(
                self.trt, self.calib_inputs, self.device, engine.with_suffix(".calib")
            )
        tpath = self.cache.timing_cache_path(self.gpu.name, str(self.trt.__version__))
        timing = tpath.read_bytes() if tpath.is_file() else None
        plan, tc, self.build_path = trt_build.build_serialized(
            self.trt, onnx_path, precision, profiles, self.workspace_bytes, timing, calibrator, typed, self.on_line
        )
        if tc:
            atomic_write(tpath, tc)
        self.cache.store(self.info.model_name, key, plan)
        return plan

    def _engine_bytes(self, precision: str, profiles: list[trt_build.Profile], force: bool) -> tuple[bytes, Path]:
        key = self._key(precision, profiles)
        path = self.cache.engine_path(self.info.model_name, key)
        if not force and (hit := self.cache.lookup(self.info.model_name, key)):
            self.cache_event = f"cache hit {hit.name}"
            return read_trusted(hit), hit
        if precision == "int8" and not self.calib_inputs:  # e.g. the node: use what build-engine calibrated
            hit = None if force else self.cache.find_like(self.info.model_name, key, ("calib_sha256",))
            if hit is None:
                raise EngineError(
                    "no cached int8 engine for this ONNX/GPU/TensorRT/profiles: build it first with "
                    "`depth-nodes build-engine MODEL.onnx --precision int8 --calib-dir FRAMES`"
                )
            self.cache_event = f"cache hit {hit.name} (int8, calibrated by build-engine)"
            return read_trusted(hit), hit
        with self.cache.lock(path):
            if not force and (hit := self.cache.lookup(self.info.model_name, key)):
                self.cache_event = f"built by another process meanwhile: {hit.name}"
                return read_trusted(hit), hit
            why = "force_engine_update" if force else "no cached engine for this ONNX/GPU/TensorRT/precision/profiles"
            self.on_line(f"TensorRT engine {path.name}: building ({why})")
            plan = self._build(precision, profiles, key, path)
            self.cache_event = f"built {path.name} ({why})"
            return plan, path

    def _deserialize(self, plan: bytes, origin: str):
        self._trt_logger = trt_build.make_logger(self.trt)
        runtime = self.trt.Runtime(self._trt_logger)
        engine = runtime.deserialize_cuda_engine(plan) if plan else None
        if engine is None:
            raise EngineError(
                f"TensorRT {self.trt.__version__} cannot deserialize {origin}: corrupt, truncated, or built by another "
                "TensorRT version / GPU (rebuild: force_engine_update, or delete the file)"
            )
        self._runtime = runtime  # the runtime must outlive its engines
        return engine

    def _open_engine(self, precision: str, force: bool) -> None:
        profiles = profiles_for(self.info, self.resolutions)
        if self.given_engine is not None:
            if not self.given_engine.is_file():
                raise EngineError(f"engine file {self.given_engine} does not exist")
            self.engine = self._deserialize(read_trusted(self.given_engine, "engine"), str(self.given_engine))
            self.engine_file, self.cache_event = self.given_engine, f"given engine {self.given_engine.name}"
            self.precision = self._given_precision()
        else:
            plan, path = self._engine_bytes(precision, profiles, force)
            try:
                self.engine = self._deserialize(plan, str(path))
            except EngineError as exc:
                if force:
                    raise
                self.on_line(f"cached engine unusable ({exc}): rebuilding")
                self.cache.invalidate(path)
                plan, path = self._engine_bytes(precision, profiles, True)
                self.engine = self._deserialize(plan, str(path))
            self.engine_file = path
        self._check_io()
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise EngineError("TensorRT could not create an execution context (out of GPU memory?)")
        self._profile = -1

    def _check_io(self) -> None:
        trt, e = self.trt, self.engine
        names = [e.get_tensor_name(i) for i in range(e.num_io_tensors)]
        ins = tuple(n for n in names if e.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        outs = tuple(n for n in names if n not in ins)
        if set(ins) != set(self.info.inputs) or set(outs) != set(self.info.outputs):
            raise EngineError(
                f"engine I/O {list(ins)} -> {list(outs)} does not match {self.onnx_path.name} "
                f"{list(self.info.inputs)} -> {list(self.info.outputs)} (engine from another model?)"
            )
        self.input_names, self.output_names = ins, outs
        self.engine_profiles = []
        for p in range(e.num_optimization_profiles):
            shapes = tuple((n, *(tuple(s) for s in e.get_tensor_profile_shape(n, p))) for n in ins)
            self.engine_profiles.append(trt_build.Profile(shapes))

    def load(self) -> None:
        self.trt = self._trt or trt_build.import_tensorrt()
        gen = trt_build.api_generation(self.trt)
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise BackendUnavailableError("tensorrt backend needs a CUDA GPU; none is visible to torch")
            self._stream = torch.cuda.Stream(torch.device(self.device))
        elif self._trt is None:
            raise BackendUnavailableError(f"tensorrt backend runs on a CUDA device, not {self.device!r}")
        from depth_nodes.runtime import trt_precision
        from depth_nodes.runtime.trt_api import precision_path

        self.gpu = self._gpu or GpuInfo.of(self.device)
        self.info = read_onnx(self.onnx_path, check=False)
        _check_onnx(self.onnx_path)
        self.fingerprint = onnx_fingerprint(self.onnx_path)
        self.typed_onnx = trt_precision.is_typed_onnx(self.onnx_path)
        self.model_name = self.info.model_name
        onnx_prec = trt_precision.onnx_precision(self.onnx_path)
        if onnx_prec != "fp32" and onnx_prec != self.precision:
            self.notes.append(f"{self.onnx_path.name} is already {onnx_prec}: engine labelled {onnx_prec} "
                              f"(requested {self.precision})")  # fmt: skip
            self.precision = onnx_prec
        stride = max(1, self.info.stride)
        if padded(self.resolutions, stride) != list(dict.fromkeys(map(tuple, self.resolutions))):
            self.notes.append(f"resolutions padded to the model stride {stride}: "
                              + ", ".join(f"{h}x{w}" for h, w in padded(self.resolutions, stride)))  # fmt: skip
        path = precision_path(self.trt.__version__)
        self.on_line(f"TensorRT {self.trt.__version__}: using the {gen}.x API path, {path}ly typed precision "
                     f"({self.precision})")  # fmt: skip
        self._open_engine(self.precision, self.force_engine_update)
        if self.warmup_inputs is None and self.precision != "fp32":
            self.warmup_inputs = self._default_warmup()
            self.check_source = self.check_source or "street frames (procedural)"
        self._fp16_guard()
        self._accuracy_gate()

    def rebuild_for(self, size: tuple[int, int]) -> None:
        """Add the (padded) input size ``size`` to the resolutions and open the engine that covers it."""
        self.resolutions.append(tuple(size))
        self.on_line(f"TensorRT engine: adding a profile for {size[0]}x{size[1]} (new input size)")
        self._open_engine(self.precision, False)

    def close(self) -> None:
        self.context = self.engine = None
        super().close()

    # ------------------------------------------------------------------ execution
    def select_profile(self, shapes: dict[str, tuple]) -> int:
        return select_profile(self.engine_profiles, shapes)

    def _infer(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        import torch

        trt, e, ctx = self.trt, self.engine, self.context
        as_numpy = not any(is_torch(v) for v in inputs.values())
        dev = torch.device(self.device)
        feed = {}
        for n in self.input_names:
            t = inputs[n] if is_torch(inputs[n]) else torch.from_numpy(np.ascontiguousarray(inputs[n]))
            feed[n] = t.to(dev, _torch_dtype(trt, e.get_tensor_dtype(n))).contiguous()
        idx = self.select_profile({n: tuple(t.shape) for n, t in feed.items()})
        cuda = self._stream is not None
        if cuda:
            self._stream.wait_stream(torch.cuda.current_stream(dev))
        handle = self._stream.cuda_stream if cuda else 0
        if idx != self._profile:
            ctx.set_optimization_profile_async(idx, handle)
            self._profile = idx
        for n, t in feed.items():
            if not ctx.set_input_shape(n, tuple(t.shape)):
                raise EngineError(f"engine rejected input {n!r} shape {tuple(t.shape)} for profile {idx}")
            ctx.set_tensor_address(n, t.data_ptr())
        outs = {}
        with torch.cuda.stream(self._stream) if cuda else contextlib.nullcontext():
            for n in self.output_names:
                shape = tuple(ctx.get_tensor_shape(n))
                if any(d < 0 for d in shape):
                    raise EngineError(f"output {n!r} shape {shape} is unresolved: input shapes do not fit the engine")
                outs[n] = torch.empty(shape, dtype=_torch_dtype(trt, e.get_tensor_dtype(n)), device=dev)
                ctx.set_tensor_address(n, outs[n].data_ptr())
            if not ctx.execute_async_v3(handle):
                errors = list(getattr(self._trt_logger, "errors", []))
                why = errors[-1] if errors else "no TensorRT error logged"
                if errors and is_transient_text(why):
                    raise TransientEngineError(f"TensorRT execute_async_v3 failed: {why}")
                raise EngineError(f"TensorRT execute_async_v3 failed: {why}")
        if cuda:
            torch.cuda.current_stream(dev).wait_stream(self._stream)
            for t in feed.values():  # allocated on the caller's stream, read on ours
                t.record_stream(self._stream)
        result = {n: t.float() for n, t in outs.items()}
        return {n: t.cpu().numpy() for n, t in result.items()} if as_numpy else result

    def describe(self) -> dict[str, str]:
        d = super().describe()
        d.update({
            "trt_version": str(getattr(getattr(self, "trt", None), "__version__", "")),
            "trt_build": self.build_path,
            "engine": str(self.engine_file or ""),
            "engine_cache": self.cache_event,
            "profiles": ", ".join(p.describe() for p in getattr(self, "engine_profiles", [])),
            "gpu": f"{self.gpu.name} (sm {self.gpu.compute_capability})" if getattr(self, "gpu", None) else "",
            "accuracy": self.accuracy.describe() if self.accuracy is not None else "",
        })  # fmt: skip
        return d


__all__ = ["DEFAULT_CACHE_DIR", "GpuInfo", "TensorRTBackend", "profiles_for", "sha256_file"]
