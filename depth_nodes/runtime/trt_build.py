"""Building TensorRT engines from ONNX with the real 10.x and 11.x Python APIs (``trt`` is the module).

Two precision paths (see docs/runtime.md; every name used is listed in :mod:`trt_api` and checked against
the real bindings of 10.3.0, 10.13.3.9 and 11.4.0.106 in CI):

- **weak** (10.0-10.11, i.e. JetPack 6's 10.3): weakly typed networks; FP16 by
  ``config.set_flag(trt.BuilderFlag.FP16)``; INT8 by ``BuilderFlag.INT8`` + an ``IInt8EntropyCalibrator2`` fed
  from real frames (``config.int8_calibrator``, ``config.set_calibration_profile``). An ONNX that already
  carries its types (fp16 tensors or Q/DQ nodes) is built ``STRONGLY_TYPED`` instead.
- **strong** (10.12+ and 11.x): the precision flags are deprecated from 10.12 (gone in 11.x), the calibrators
  from 10.1; FP16 / INT8 come from the ONNX itself, converted before the build
  (:mod:`depth_nodes.runtime.trt_precision`). 10.12+ sets ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``;
  11.x is always strongly typed (the flag is deprecated and ignored there, so it is not passed).

Everything else is shared: ``OnnxParser.parse(data, path)`` (the path locates external weights), a workspace
pool limit, min/opt/max optimization profiles, a persistent timing cache, a progress monitor,
``build_serialized_network``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from depth_nodes.runtime.errors import BackendUnavailableError, EngineError
from depth_nodes.runtime.trt_api import precision_path

log = logging.getLogger(__name__)

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """One optimization profile: per input name, (min, opt, max) shapes."""

    shapes: tuple[tuple[str, Shape, Shape, Shape], ...]

    def key(self) -> list:
        return [[n, list(a), list(b), list(c)] for n, a, b, c in self.shapes]

    def covers(self, shapes: dict[str, Shape]) -> bool:
        for name, lo, _opt, hi in self.shapes:
            got = shapes.get(name)
            if got is None or len(got) != len(lo):
                return False
            if any(g < a or g > b for g, a, b in zip(got, lo, hi, strict=True)):
                return False
        return True

    def describe(self) -> str:
        n, lo, opt, hi = self.shapes[0]
        fmt = "x".join
        if lo == hi:
            return fmt(map(str, opt[2:]))
        return f"{fmt(map(str, lo[2:]))}..{fmt(map(str, hi[2:]))} (opt {fmt(map(str, opt[2:]))})"


def trt_version(trt) -> tuple[int, int, int]:
    parts = (str(getattr(trt, "__version__", "0")).split(".") + ["0", "0"])[:3]
    try:
        return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts)  # type: ignore[return-value]
    except ValueError:
        return (0, 0, 0)


def api_generation(trt) -> int:
    """10 or 11 (the API generation); :class:`BackendUnavailableError` for anything older."""
    major = trt_version(trt)[0]
    if major < 10:
        raise BackendUnavailableError(
            f"TensorRT {trt.__version__} is too old: depth_nodes needs 10.x (JetPack 6) or 11.x"
        )
    return 11 if major >= 11 else 10


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(
            f"tensorrt is not importable ({exc}): on a Jetson use JetPack's TensorRT, elsewhere pip install "
            "'depth_nodes[trt]'"
        ) from None
    return trt


def make_logger(trt):
    """A ``trt.ILogger`` forwarding to Python logging (TensorRT's own warnings end up in our log); its
    ``errors`` keep the last error texts (an ``execute_async_v3`` that returns False says why only there)."""
    sev = trt.Logger.Severity if hasattr(trt.Logger, "Severity") else trt.Logger
    levels = {
        getattr(sev, "INTERNAL_ERROR", None): logging.CRITICAL,
        getattr(sev, "ERROR", None): logging.ERROR,
        getattr(sev, "WARNING", None): logging.WARNING,
        getattr(sev, "INFO", None): logging.DEBUG,
        getattr(sev, "VERBOSE", None): logging.DEBUG,
    }
    base = getattr(trt, "ILogger", None)
    if base is None:
        return trt.Logger(trt.Logger.WARNING)

    class _Logger(base):
        def __init__(self) -> None:
            base.__init__(self)
            self.errors: collections.deque[str] = collections.deque(maxlen=8)

        def log(self, severity, msg) -> None:
            level = levels.get(severity, logging.INFO)
            if level >= logging.ERROR:
                self.errors.append(str(msg))
            log.log(level, "TensorRT: %s", msg)

    return _Logger()


def make_progress_monitor(trt, on_line: Callable[[str], None]):
    """A ``trt.IProgressMonitor`` printing phases with elapsed time (None where the class is absent)."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None
    t0 = time.monotonic()

    class _Progress(base):
        def __init__(self) -> None:
            base.__init__(self)
            self._lock = threading.Lock()

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            if parent_phase is None:
                with self._lock:
                    on_line(f"[{time.monotonic() - t0:6.1f} s] {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name) -> None:
            pass

    return _Progress()


def _parse(trt, builder, flags: int, onnx_path: Path, trt_logger):
    network = builder.create_network(flags) if flags else builder.create_network()
    parser = trt.OnnxParser(network, trt_logger)
    data = onnx_path.read_bytes()
    if not parser.parse(data, str(onnx_path)):  # the path locates external weights (model.onnx.data)
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineError(f"TensorRT's ONNX parser rejected {onnx_path}: " + "; ".join(errors or ["no detail"]))
    return network, parser


def build_serialized(
    trt,
    onnx_path: Path,
    precision: str,
    profiles: list[Profile],
    workspace_bytes: int,
    timing_cache: bytes | None,
    calibrator=None,
    strongly_typed_onnx: bool = False,
    on_line: Callable[[str], None] = print,
) -> tuple[bytes, bytes | None, str]:
    """Build an engine; returns (plan bytes, serialized timing cache, description of the precision path)."""
    gen = api_generation(trt)
    weak = gen == 10 and precision_path(trt.__version__) == "weak" and not strongly_typed_onnx
    trt_logger = make_logger(trt)
    builder = trt.Builder(trt_logger)
    if gen >= 11:
        flags, path = 0, f"TensorRT {trt.__version__} (11.x): strongly typed network, {precision} from the ONNX"
    elif not weak:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        why = "10.12+: precision flags deprecated" if precision_path(trt.__version__) == "strong" else "typed ONNX"
        path = f"TensorRT {trt.__version__} (10.x): STRONGLY_TYPED network ({why}), {precision} from the ONNX"
    else:
        flags, path = 0, f"TensorRT {trt.__version__} (10.x): weakly typed network"
    if precision != "fp32" and not weak and not strongly_typed_onnx:
        raise EngineError(f"{precision} on {path} needs a typed ONNX (converted first); got an fp32 one")
    network, parser = _parse(trt, builder, flags, onnx_path, trt_logger)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if weak:
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
            path += " + BuilderFlag.FP16"
        if precision == "int8":
            if calibrator is None:
                raise EngineError("int8 on TensorRT 10.x needs calibration frames (--calib-dir)")
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = calibrator
            path += " + BuilderFlag.INT8 with IInt8EntropyCalibrator2"
    if not profiles:
        raise EngineError("no optimization profile: give at least one resolution")
    first = None
    for prof in profiles:
        p = builder.create_optimization_profile()
        for name, lo, opt, hi in prof.shapes:
            p.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(p)
        first = first or p
    if calibrator is not None and weak:
        config.set_calibration_profile(first)
    cache = config.create_timing_cache(timing_cache or b"")
    if not config.set_timing_cache(cache, ignore_mismatch=True):
        log.warning("TensorRT refused the timing cache (another GPU or version): starting a fresh one")
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=True)
    monitor = make_progress_monitor(trt, on_line)
    if monitor is not None:
        config.progress_monitor = monitor
    on_line(f"building TensorRT engine: {path}; profiles {', '.join(p.describe() for p in profiles)}")
    t0 = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(15.0):
            on_line(f"  ... still building ({time.monotonic() - t0:.0f} s elapsed)")

    threading.Thread(target=heartbeat, daemon=True).start()
    try:
        plan = builder.build_serialized_network(network, config)
    finally:
        done.set()
    if plan is None:
        raise EngineError(f"TensorRT failed to build {onnx_path.name} ({path}); see the TensorRT log above")
    on_line(f"engine built in {time.monotonic() - t0:.1f} s")
    tc = config.get_timing_cache()
    del parser  # the parser must outlive the build (it owns the weights)
    return bytes(memoryview(plan)), (bytes(memoryview(tc.serialize())) if tc is not None else None), path
