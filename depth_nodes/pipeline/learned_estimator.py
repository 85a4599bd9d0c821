"""The pipeline's ``learned`` estimator: the runtime's learned predictor with a classical safety net that tells
transient failures from permanent ones.

:class:`GuardedLearnedEstimator` loads the model in the background (a TensorRT build takes minutes on a Jetson)
and serves the classical completer until it is ready. Then, per frame (:mod:`trt_errors` classifies):

- **transient** (CUDA out of memory, a launch failure): the frame gets the classical completer, the model is
  retried after a backoff (``retry_backoff_s`` doubling up to ``MAX_BACKOFF_S``); ``max_retries`` in a row
  make it permanent. ``learned_state: retrying``, ``learned_error_kind: transient``.
- **new input size** outside the TensorRT engine's profiles: the engine is rebuilt for it in the background
  while ONNX Runtime (CPU) runs the same ONNX (``learned_state: rebuilding``, ``learned_serving``); then
  TensorRT takes over again. ``learned_engine_sizing`` says whether a profile covered the size or a rebuild did.
- a transient error while loading (out of GPU memory during the engine build) is retried the same way;
- **permanent** (missing / corrupt / mismatched model, ONNX or engine, anything else): the classical completer
  for good, ``learned_state: fallback``, ``learned_error_kind: permanent``, the reason in ``learned_reason``;
  the node reports WARN.

The same estimator serves ``depth-nodes eval --method learned`` (:mod:`depth_nodes.pipeline.learned_completer`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from depth_nodes import completion
from depth_nodes.errors import DepthNodesError, EmptyInputError
from depth_nodes.runtime.predictor import LearnedOptions, parse_resolutions
from depth_nodes.runtime.trt_errors import NEW_SIZE, PERMANENT, TRANSIENT, classify

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DepthNodesError) else f"{type(exc).__name__}: {exc}"


class GuardedLearnedEstimator:
    """The learned estimator with a classical safety net (see the module docstring)."""

    needs_image = True
    needs_lidar = True

    def __init__(
        self,
        options=None,
        fallback: str = completion.DEFAULT_COMPLETER,
        log_warning: Callable[[str], None] | None = None,
        background: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from depth_nodes.runtime.predictor import LearnedOptions

        self.options = options or LearnedOptions()
        self.fallback = completion.create(fallback)
        self.fallback_name = fallback
        self._warn = log_warning or log.warning
        self._clock = clock
        self.learned = None
        self.state = "loading"  # -> active | retrying | rebuilding | fallback | closed
        self.reason = "learned model loading"
        self.error_kind = ""
        self.failures = 0  # transient failures in a row
        self.recovered = 0  # transient failures recovered from, in total
        self.sizing = ""
        self._retry_at = 0.0
        self._stand_in = None  # ONNX Runtime estimator while the TensorRT engine is rebuilt
        self._rebuilder: threading.Thread | None = None
        self._lock = threading.Lock()
        if background:
            self._loader = threading.Thread(target=self._load, name="learned-model-loader", daemon=True)
            self._loader.start()
        else:
            self._load()

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        from depth_nodes.runtime.predictor import build_predictor

        for attempt in range(1, int(self.options.max_retries) + 2):
            try:
                est = build_predictor(self.options, on_line=lambda s: log.info("%s", s))
                break
            except Exception as exc:  # noqa: BLE001 - any failure of an optional model must leave the node running
                kind = classify(exc)
                if kind != TRANSIENT or attempt > int(self.options.max_retries) or self.state == "closed":
                    self._fail(f"learned model unusable, using {self.fallback_name!r}: {_why(exc)}",
                               PERMANENT)  # fmt: skip
                    return
                delay = min(MAX_BACKOFF_S, float(self.options.retry_backoff_s) * 2 ** (attempt - 1))
                with self._lock:
                    self.error_kind, self.failures = TRANSIENT, attempt
                    self.reason = f"loading: transient error {attempt} ({_why(exc)}), retrying in {delay:.2g} s"
                self._warn(self.reason)
                time.sleep(delay)
        with self._lock:
            self.failures, self.error_kind = 0, ""
        with self._lock:
            if self.state == "closed":  # shut down while loading
                est.backend.close()
                return
            self.learned, self.state = est, "active"
            self.reason = est.backend.reason
        log.info("learned estimator %s ready: %s", est.name, est.backend.describe())

    def _fail(self, reason: str, kind: str = PERMANENT) -> None:
        with self._lock:
            self.learned, self.state, self.reason = None, "fallback", reason
            self.error_kind = PERMANENT if kind == NEW_SIZE else kind
        self._warn(reason)

    @property
    def name(self) -> str:
        est = self.learned
        return est.name if est is not None else f"{self.fallback_name} (fallback)"

    # ------------------------------------------------------------------ frames
    def estimate(self, inputs):
        with self._lock:
            est, state, stand_in = self.learned, self.state, self._stand_in
        if est is not None and state == "rebuilding" and stand_in is not None:
            return stand_in.estimate(inputs)
        if est is not None and state in ("active", "retrying") and self._clock() >= self._retry_at:
            try:
                out = est.estimate(inputs)
            except EmptyInputError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failing model falls back instead of failing frames
                served = self._on_error(est, exc, inputs)
                if served is not None:
                    return served
            else:
                self._on_success(est, inputs)
                return out
        if inputs.sparse is None:
            raise EmptyInputError("no LiDAR depth for a LiDAR-based estimator")
        return self.fallback.complete(inputs.sparse.depth, inputs.rgb, conditioned=True)  # projected + filtered

    def _on_success(self, est, inputs) -> None:
        if self.failures:
            with self._lock:
                self.recovered += self.failures
                log.info("learned model recovered after %d transient error(s)", self.failures)
                self.failures, self.state, self.error_kind = 0, "active", ""
                self.reason = f"{est.backend.reason}; recovered from {self.recovered} transient error(s)"
        profiles = getattr(est.backend, "engine_profiles", None)
        idx = getattr(est.backend, "_profile", -1)
        if profiles and 0 <= idx < len(profiles) and not self.sizing.startswith("engine rebuilt"):
            h, w = inputs.sparse.depth.shape
            self.sizing = f"input {h}x{w} runs in profile {profiles[idx].describe()}"

    def _on_error(self, est, exc: BaseException, inputs):
        kind = classify(exc)
        if kind == NEW_SIZE and hasattr(est.backend, "rebuild_for"):
            return self._start_rebuild(est, exc.size, inputs)
        if kind == TRANSIENT:
            with self._lock:
                self.failures += 1
                n = self.failures
            if n <= int(self.options.max_retries):
                delay = min(MAX_BACKOFF_S, float(self.options.retry_backoff_s) * 2 ** (n - 1))
                with self._lock:
                    self._retry_at = self._clock() + delay
                    self.state, self.error_kind = "retrying", TRANSIENT
                    self.reason = (
                        f"transient error {n}/{self.options.max_retries} ({_why(exc)}): {self.fallback_name!r} "
                        f"serves frames, learned model retried in {delay:.2g} s"
                    )
                self._warn(self.reason)
                return None
            self._fail(f"learned model failed {n} times in a row (transient errors), using "
                       f"{self.fallback_name!r} for good: {_why(exc)}", PERMANENT)  # fmt: skip
            return None
        self._fail(f"learned model failed on a frame, using {self.fallback_name!r}: {_why(exc)}", kind)
        return None

    def _start_rebuild(self, est, size: tuple[int, int], inputs):
        """Rebuild the engine for ``size`` in the background; ONNX Runtime serves meanwhile (None: classical)."""
        stand_in = self._make_stand_in(est)
        h, w = size
        with self._lock:
            if self.state == "rebuilding":
                return stand_in.estimate(inputs) if stand_in is not None else None
            self.state, self._stand_in = "rebuilding", stand_in
            serving = "onnxruntime (cpu)" if stand_in is not None else f"{self.fallback_name!r} (classical)"
            self.sizing = f"engine rebuilding for {h}x{w} in the background, {serving} serving meanwhile"
            self.reason = self.sizing
        log.warning("input %dx%d is outside the engine's profiles: %s", h, w, self.sizing)

        def rebuild() -> None:
            try:
                est.backend.rebuild_for(size)
            except Exception as exc:  # noqa: BLE001
                self._fail(f"engine rebuild for {h}x{w} failed, using {self.fallback_name!r}: {_why(exc)}",
                           classify(exc))  # fmt: skip
                return
            with self._lock:
                if self.state != "rebuilding":
                    return
                self.state, self._stand_in = "active", None
                self.sizing = f"engine rebuilt for {h}x{w} (profiles {est.backend.describe()['profiles']})"
                self.reason = est.backend.reason
            if stand_in is not None:
                stand_in.backend.close()
            log.info("%s", self.sizing)

        self._rebuilder = threading.Thread(target=rebuild, name="trt-engine-rebuild", daemon=True)
        self._rebuilder.start()
        return stand_in.estimate(inputs) if stand_in is not None else None

    def _make_stand_in(self, est):
        from depth_nodes.runtime.factory import _has

        if not _has("onnxruntime") or not hasattr(est.backend, "onnx_path"):
            return None
        from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend
        from depth_nodes.runtime.predictor import LearnedPredictor

        ort = OnnxRuntimeBackend(est.backend.onnx_path)
        ort.ensure_loaded()
        return LearnedPredictor(ort, est.norm, est.stride, est.fixed)

    def wait_rebuilt(self, timeout_s: float = 60.0) -> None:
        """Join a running engine rebuild (tests, shutdown)."""
        t = self._rebuilder
        if t is not None:
            t.join(timeout_s)

    # ------------------------------------------------------------------ life cycle, diagnostics
    def close(self) -> None:
        """Release the model (node shutdown); later frames use the classical completer. A load or rebuild
        still running is waited for first (a daemon thread in native ONNX Runtime / TensorRT code at exit aborts)."""
        loader = getattr(self, "_loader", None)
        if loader is not None:
            loader.join(60.0)
        self.wait_rebuilt(60.0)
        with self._lock:
            est, self.learned = self.learned, None
            stand_in, self._stand_in = self._stand_in, None
            if est is not None:
                self.state, self.reason = "closed", "node shutting down"
        for e in (est, stand_in):
            if e is not None:
                e.backend.close()

    def diagnostics(self) -> tuple[dict[str, str], list[str]]:
        """(key/values, warnings) for the node's diagnostics; a warning makes the node report WARN."""
        with self._lock:
            est, state, reason = self.learned, self.state, self.reason
        values = {"learned_state": state, "learned_reason": reason, "learned_error_kind": self.error_kind,
                  "learned_retries": str(self.failures), "learned_recovered_errors": str(self.recovered)}  # fmt: skip
        if state == "rebuilding":
            values["learned_serving"] = "onnxruntime (cpu)" if self._stand_in is not None else self.fallback_name
        elif state == "active" and est is not None:
            values["learned_serving"] = est.backend.kind
        else:
            values["learned_serving"] = self.fallback_name
        if self.sizing:
            values["learned_engine_sizing"] = self.sizing
        warnings = [reason] if state in ("fallback", "retrying") else []
        if est is not None:
            values.update({f"learned_{k}": v for k, v in est.backend.describe().items()})
            if getattr(est.backend, "gpu_unused", ""):
                values["learned_gpu_unused"] = est.backend.gpu_unused
                warnings.append(est.backend.gpu_unused)
        return values, warnings


def learned_factory(log: Callable[[str], None] | None = None, **options) -> GuardedLearnedEstimator:
    """Factory of ``learned`` in the pipeline's estimator table (options: LearnedOptions fields;
    ``resolutions`` may be the node parameter's ``"HxW,HxW"`` text)."""
    known = set(LearnedOptions.__dataclass_fields__)
    if isinstance(options.get("resolutions"), str):
        options["resolutions"] = parse_resolutions(options["resolutions"])
    opts = LearnedOptions(**{k: v for k, v in options.items() if k in known})
    return GuardedLearnedEstimator(opts, log_warning=log, background=options.get("background", True))
