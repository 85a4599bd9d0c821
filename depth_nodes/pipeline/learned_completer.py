"""Learned completers for the bench and ``depth-nodes complete``: the shipped ``learned`` model by name.

``learned`` runs the checkpoint shipped in ``depth_nodes/models/weights/learned/`` on ONNX Runtime (its ONNX is
shipped next to the weights, so no torch is needed); ``learned_torch`` runs the same weights on torch (for
the bench's latency column). ``model_dir`` selects another model directory or ``.onnx``. The model loads on
the first frame; importing this module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import numpy as np

from depth_nodes.completion.base import Completer, Completion
from depth_nodes.completion.registry import register
from depth_nodes.errors import EmptyInputError


class LearnedCompleter(Completer):
    """A model of :mod:`depth_nodes.models` behind the completer interface (image required)."""

    uses_image = True

    def __init__(
        self, model_dir: str = "", backend: str = "onnxruntime", threads: int = 0, max_depth_m: float = 120.0
    ):
        self.model_dir = model_dir
        self.backend = backend
        self.threads = int(threads)
        self.max_depth_m = float(max_depth_m)
        self.name = "learned" if backend == "onnxruntime" else f"learned_{backend}"
        self._est = None

    def estimator(self):
        if self._est is None:
            from depth_nodes.runtime.predictor import LearnedOptions, build_learned

            self._est = build_learned(
                LearnedOptions(model_dir=self.model_dir, backend=self.backend, threads=self.threads)
            )
        return self._est

    @property
    def torch_forward(self):
        """``(image 0..1, sparse m) -> depth`` tensors with gradients (PGD), for the torch backend; else None."""
        if self.backend != "torch":
            return None
        return lambda image, sparse: self.estimator().torch_forward(image, sparse)

    def _complete(self, sparse: np.ndarray, image: np.ndarray | None) -> Completion:
        if image is None:
            raise EmptyInputError("completer 'learned' needs the camera image")
        out = self.estimator().predict(image, sparse)
        far = ~(out.depth <= self.max_depth_m)
        out.depth[far] = np.nan
        out.confidence[far] = 0.0
        return out


@register("learned", "the shipped learned model (residual + propagation) on ONNX Runtime")
def _learned(**params) -> LearnedCompleter:
    return LearnedCompleter(**params)


@register("learned_torch", "the shipped learned model on torch (CPU or CUDA)")
def _learned_torch(**params) -> LearnedCompleter:
    return LearnedCompleter(**{"backend": "torch", **params})
