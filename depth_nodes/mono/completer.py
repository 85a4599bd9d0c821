"""Monocular estimators as completers, for ``depth-nodes eval DIR --method mono[:NAME]`` and the benches.

The scale is fitted on **the frame's own input LiDAR** (``velodyne_raw``) and applied to the same frame: the
fallback's best case (in the node the scale comes from an earlier frame); the method name says so.
Names: ``mono`` (the shipped own net, or ``--param model_dir=DIR``), ``mono:depth_anything_v2`` and
``mono:prompt_depth_anything`` (``--param model_dir=DIR`` required). The evaluator hands each frame's
intrinsics to :meth:`MonoCompleter.set_intrinsics` (the own net needs them).
"""

from __future__ import annotations

import numpy as np

from depth_nodes.completion.base import Completer, Completion
from depth_nodes.core.scale_fit import ScaleFitError, apply_scale, fit_scale
from depth_nodes.errors import EmptyInputError

OWN_FIT = "scale fitted on this frame's own input LiDAR"


class MonoCompleter(Completer):
    """A mono model; per frame its scale (and shift, for relative models) is fitted to the frame's LiDAR."""

    uses_image = True

    def __init__(self, kind: str = "mono", model_dir: str = "", input_size_px: int = 0,
                 max_depth_m: float = 120.0, min_fit_points: int = 50) -> None:  # fmt: skip
        from depth_nodes.mono.fallback_estimator import MonoOptions, load_model

        self.model = load_model(kind, MonoOptions(model_dir=model_dir, input_size_px=input_size_px))
        self.max_depth_m = float(max_depth_m)
        self.min_fit_points = int(min_fit_points)
        self.K: np.ndarray | None = None
        self.name = f"{'mono' if kind == 'mono' else 'mono:' + kind} ({self.model.name}; {OWN_FIT})"
        self.last_fit = None

    def set_intrinsics(self, K: np.ndarray) -> None:
        self.K = np.asarray(K, np.float64)

    def predict(self, image: np.ndarray, sparse: np.ndarray) -> np.ndarray:
        m = self.model
        if getattr(m, "prompted", False):
            return m.predict(image, sparse)[0]
        if hasattr(m, "focal_px"):
            if self.K is None:
                raise EmptyInputError("the own mono net needs the camera intrinsics (set_intrinsics)")
            return m.predict(image, self.K)
        return m.predict(image)[0]

    def _complete(self, sparse: np.ndarray, image: np.ndarray | None) -> Completion:
        if image is None:
            raise EmptyInputError("a monocular estimator needs the camera image")
        pred = self.predict(image, sparse)
        try:
            fit = fit_scale(pred, sparse, self.model.kind, min_points=self.min_fit_points, max_depth_m=self.max_depth_m)
        except ScaleFitError as exc:
            raise EmptyInputError(f"no scale fit on this frame: {exc}") from None
        self.last_fit = fit
        depth = apply_scale(pred, fit.kind, fit.scale, fit.shift, self.max_depth_m)
        conf = np.where(np.isfinite(depth), 1.0 / (1.0 + fit.residual / 0.15) / (1.0 + depth / 30.0), 0.0)
        return Completion(depth, np.nan_to_num(conf).astype(np.float32))
