"""The simplest completer: nearest LiDAR return (Voronoi fill via a distance transform)."""

from __future__ import annotations

import cv2
import numpy as np

from depth_nodes.completion.base import Completer, Completion, distance_confidence


def nearest_fill(sparse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill every pixel with its nearest valid return; returns (depth, distance_px). Empty input -> NaN."""
    valid = sparse > 0
    if not valid.any():
        return np.full(sparse.shape, np.nan, np.float32), np.full(sparse.shape, np.inf, np.float32)
    # Distance transform with labels gives the index of the nearest zero pixel (the LiDAR returns).
    dist, labels = cv2.distanceTransformWithLabels(
        (~valid).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(valid)
    lut = np.zeros(labels.max() + 1, np.float32)
    lut[labels[ys, xs]] = sparse[ys, xs]
    return lut[labels], dist


class NearestCompleter(Completer):
    """Nearest-neighbour fill; confidence decays with the distance to the nearest return."""

    name = "nearest"
    uses_image = False
    keeps_returns = True

    def __init__(self, confidence_scale_px: float = 4.0, max_depth_m: float = 200.0) -> None:
        if confidence_scale_px <= 0:
            raise ValueError("confidence_scale_px must be > 0")
        if not max_depth_m > 0:
            raise ValueError(f"max_depth_m must be > 0, got {max_depth_m}")
        self.confidence_scale_px = confidence_scale_px
        self.max_depth_m = float(max_depth_m)

    def _complete(self, sparse: np.ndarray, image: np.ndarray | None) -> Completion:
        depth, dist = nearest_fill(sparse)  # returns beyond max_depth_m were removed by complete()
        return Completion(depth, distance_confidence(dist, self.confidence_scale_px))
