"""The own mono net's inputs as numpy arrays (torch-free: the ONNX Runtime path and the tools share them)."""

from __future__ import annotations

import numpy as np

from depth_nodes.models.registry import IMAGENET_MEAN, IMAGENET_STD


def ray_elevation(h: int, w: int, K: np.ndarray) -> np.ndarray:
    """``(v - cy) / fy`` per pixel (H x W float32) for intrinsics ``K`` at this resolution."""
    v = (np.arange(h, dtype=np.float32) - np.float32(K[1, 2])) / np.float32(K[1, 1])
    return np.repeat(v[:, None], w, axis=1)


def normalise_rgb(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB -> 3 x H x W float32, ImageNet-normalised."""
    x = rgb.astype(np.float32) * (1.0 / 255.0)
    x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
