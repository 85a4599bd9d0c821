"""The pipeline's ``learned`` estimator: the learned predictor guarded by the classical completer.

``completer: learned`` (node parameter) makes the guided mode run the model of ``model_dir`` (a model
directory or an ``.onnx``) on ``backend`` / ``precision`` / ``device``. :class:`GuardedLearnedEstimator` loads
it in the background (a TensorRT build takes minutes on a Jetson) and serves the classical completer until it
is ready; a missing, corrupt or mismatched model, ONNX or engine -- at load or on any later frame -- switches
it to the classical completer for good, with the reason in :meth:`diagnostics` (the node reports WARN).
The same estimator serves ``depth-nodes eval --method learned`` (:mod:`depth_nodes.pipeline.learned_completer`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from depth_nodes import completion
from depth_nodes.completion.base import Completion
from depth_nodes.errors import DepthNodesError, EmptyInputError
from depth_nodes.runtime.predictor import LearnedOptions, LearnedPredictor, build_predictor, parse_resolutions

log = logging.getLogger(__name__)


class GuardedLearnedEstimator:
    """The learned estimator with a classical safety net (see the module docstring)."""

    needs_image = True
    needs_lidar = True

    def __init__(
        self,
        options: LearnedOptions | None = None,
        fallback: str = completion.DEFAULT_COMPLETER,
        log_warning: Callable[[str], None] | None = None,
        background: bool = True,
    ) -> None:
        self.options = options or LearnedOptions()
        self.fallback = completion.create(fallback)
        self.fallback_name = fallback
        self._warn = log_warning or log.warning
        self.learned: LearnedPredictor | None = None
        self.state = "loading"  # -> active | fallback | closed
        self.reason = "learned model loading"
        self._lock = threading.Lock()
        if background:
            self._loader = threading.Thread(target=self._load, name="learned-model-loader", daemon=True)
            self._loader.start()
        else:
            self._load()

    def _load(self) -> None:
        try:
            est = build_predictor(self.options, on_line=lambda s: log.info("%s", s))
        except Exception as exc:  # noqa: BLE001 - any failure of an optional model must leave the node running
            self._fail(f"learned model unusable, using {self.fallback_name!r}: {_why(exc)}")
            return
        with self._lock:
            if self.state == "closed":  # shut down while loading
                est.backend.close()
                return
            self.learned, self.state = est, "active"
            self.reason = est.backend.reason
        log.info("learned estimator %s ready: %s", est.name, est.backend.describe())

    def _fail(self, reason: str) -> None:
        with self._lock:
            self.learned, self.state, self.reason = None, "fallback", reason
        self._warn(reason)

    @property
    def name(self) -> str:
        est = self.learned
        return est.name if est is not None else f"{self.fallback_name} (fallback)"

    def estimate(self, inputs) -> Completion:
        if inputs.sparse is None:
            raise EmptyInputError("no LiDAR depth for the learned estimator")
        return self.predict(inputs.rgb, inputs.sparse.depth)

    def predict(self, rgb: np.ndarray | None, sparse_m: np.ndarray) -> Completion:
        """Depth + confidence of one frame whose sparse depth is already conditioned (projected + filtered):
        the model's, or the fallback completer's once the model is unusable."""
        est = self.learned
        if est is not None:
            if rgb is None:
                raise EmptyInputError("the learned estimator needs the camera image")
            try:
                return est.predict(rgb, sparse_m)
            except Exception as exc:  # noqa: BLE001 - a failing model falls back instead of failing frames
                self._fail(f"learned model failed on a frame, using {self.fallback_name!r}: {_why(exc)}")
        return self.fallback.complete(sparse_m, rgb, conditioned=True)

    def close(self) -> None:
        """Release the model (node shutdown); later frames use the classical completer. A load still running
        is waited for first (a daemon thread in native ONNX Runtime / TensorRT code at exit aborts)."""
        loader = getattr(self, "_loader", None)
        if loader is not None:
            loader.join(60.0)
        with self._lock:
            est, self.learned = self.learned, None
            if est is not None:
                self.state, self.reason = "closed", "node shutting down"
        if est is not None:
            est.backend.close()

    def diagnostics(self) -> tuple[dict[str, str], list[str]]:
        """(key/values, warnings) for the node's diagnostics; a warning makes the node report WARN."""
        with self._lock:
            est, state, reason = self.learned, self.state, self.reason
        values = {"learned_state": state, "learned_reason": reason}
        if est is not None:
            values.update({f"learned_{k}": v for k, v in est.backend.describe().items()})
        warnings = [reason] if state == "fallback" else []
        return values, warnings


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DepthNodesError) else f"{type(exc).__name__}: {exc}"


def learned_factory(log: Callable[[str], None] | None = None, **options) -> GuardedLearnedEstimator:
    """Factory of ``learned`` in the pipeline's estimator table (options: LearnedOptions fields;
    ``resolutions`` may be the node parameter's ``"HxW,HxW"`` text)."""
    known = set(LearnedOptions.__dataclass_fields__)
    if isinstance(options.get("resolutions"), str):
        options["resolutions"] = parse_resolutions(options["resolutions"])
    opts = LearnedOptions(**{k: v for k, v in options.items() if k in known})
    return GuardedLearnedEstimator(opts, log_warning=log, background=options.get("background", True))
