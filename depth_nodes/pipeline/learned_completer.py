"""The pipeline's ``learned`` estimator as a completer, for ``depth-nodes eval``, ``complete`` and the benches.

``learned`` is the node's ``completer: learned``: the same :class:`GuardedLearnedEstimator` with the same options
(``model_dir``, ``backend`` = auto, ``precision``, ``device``, ``threads`` ...; empty ``model_dir``: the
checkpoint shipped in ``depth_nodes/models/weights/learned/``) and the same classical fallback. A model that
cannot load or fails on a frame is replaced by the fallback completer, reported as a warning and in the
completer's :attr:`LearnedCompleter.name` (the method column of every report); ``fallback=""`` makes it an
error instead (``bench completion --model``). ``learned_torch`` runs the same weights on torch (the bench's
latency column, PGD). The model loads on the first frame; importing this module imports neither torch nor
onnxruntime.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np

from depth_nodes import completion
from depth_nodes.completion.base import Completer, Completion
from depth_nodes.errors import EmptyInputError
from depth_nodes.runtime.errors import ModelError
from depth_nodes.runtime.predictor import LearnedOptions

log = logging.getLogger(__name__)


class LearnedCompleter(Completer):
    """A model of :mod:`depth_nodes.models` behind the completer interface (image required), guarded as in the node."""

    uses_image = True

    def __init__(self, max_depth_m: float = 120.0, fallback: str = completion.DEFAULT_COMPLETER, **options) -> None:
        unknown = set(options) - set(LearnedOptions.__dataclass_fields__)
        if unknown:
            raise TypeError(f"learned: unknown parameters {sorted(unknown)}")
        self.options = LearnedOptions(**options)
        self.max_depth_m = float(max_depth_m)
        self.fallback = fallback
        self._label = "learned" if self.options.backend == "auto" else f"learned_{self.options.backend}"
        self._est = None

    def estimator(self):
        """The :class:`GuardedLearnedEstimator` (loaded on first use, in this thread)."""
        if self._est is None:
            from depth_nodes.pipeline.learned_estimator import GuardedLearnedEstimator

            self._est = GuardedLearnedEstimator(
                self.options, fallback=self.fallback or completion.DEFAULT_COMPLETER, background=False
            )
        return self._est

    @property
    def name(self) -> str:
        est = self._est
        if est is None or est.state != "fallback":
            return self._label
        return f"{self._label} -> {est.fallback_name} (fallback: {est.reason})"

    @property
    def torch_forward(self):
        """``(image 0..1, sparse m) -> depth`` tensors with gradients (PGD), for the torch backend; else None."""
        if self.options.backend != "torch":
            return None
        return lambda image, sparse: self._model().torch_forward(image, sparse)

    def _model(self):
        est = self.estimator()
        if est.learned is None:
            raise ModelError(f"{self._label}: {est.reason}")
        return est.learned

    def _complete(self, sparse: np.ndarray, image: np.ndarray | None) -> Completion:
        if image is None:
            raise EmptyInputError("completer 'learned' needs the camera image")
        if not self.fallback:
            self._model()  # strict: an unusable model is an error, not the fallback's numbers
        est = self.estimator()
        out = est.estimate(SimpleNamespace(rgb=image, sparse=SimpleNamespace(depth=sparse)))  # conditioned already
        if not self.fallback and est.state == "fallback":
            raise ModelError(f"{self._label}: {est.reason}")
        far = ~(out.depth <= self.max_depth_m)
        out.depth[far] = np.nan
        out.confidence[far] = 0.0
        return out
