"""Colourised depth on a fixed range through one ``cv2.LUT`` pass (NaN = black)."""

from __future__ import annotations

import cv2
import numpy as np

from depth_nodes.errors import DepthNodesError

_COLORMAPS: dict[str, np.ndarray] = {}


def colormap_lut(name: str) -> np.ndarray:
    """256 x 3 uint8 RGB lookup table of an OpenCV colour map by lower-case name (``turbo``, ``jet`` ...)."""
    key = name.lower()
    if key not in _COLORMAPS:
        code = getattr(cv2, f"COLORMAP_{key.upper()}", None)
        if code is None:
            raise DepthNodesError(
                f"unknown colour map {name!r}; use an OpenCV name such as turbo, jet, viridis"
            )
        ramp = np.arange(256, dtype=np.uint8).reshape(-1, 1)
        _COLORMAPS[key] = cv2.cvtColor(cv2.applyColorMap(ramp, code), cv2.COLOR_BGR2RGB).reshape(256, 3)
    return _COLORMAPS[key]


def _nan_black_lut(name: str) -> np.ndarray:
    """1 x 256 x 3 LUT for cv2.LUT: index 0 = black (no estimate), 1..255 = the colour map resampled."""
    key = f"{name.lower()}#nan"
    if key not in _COLORMAPS:
        lut = colormap_lut(name)
        out = np.zeros((1, 256, 3), np.uint8)
        out[0, 1:] = lut[np.round(np.linspace(0, 255, 255)).astype(int)]
        _COLORMAPS[key] = out
    return _COLORMAPS[key]


def colorize_depth(depth: np.ndarray, min_m: float, max_m: float, colormap: str = "turbo") -> np.ndarray:
    """H x W x 3 uint8 RGB of ``depth`` on a fixed range: ``min_m`` red (near) .. ``max_m`` blue (far).

    Fixed (not per-frame) so that colours are comparable over time; NaN / no estimate is black. Depth maps
    to LUT index 1..255 and NaN to index 0 (black), so one ``cv2.LUT`` pass colours the whole image.
    """
    if not max_m > min_m:
        raise DepthNodesError(f"colour range must have max > min, got [{min_m}, {max_m}] m")
    scale = np.float32(254.0 / (max_m - min_m))
    t = (np.float32(max_m) - np.asarray(depth, dtype=np.float32)) * scale  # near -> 254
    np.clip(t, 0.0, 254.0, out=t)
    t += np.float32(1.5)  # 1..255, rounded to nearest on the cast below
    t = cv2.patchNaNs(t, 0.0)
    idx = t.astype(np.uint8)
    return cv2.LUT(cv2.merge((idx, idx, idx)), _nan_black_lut(colormap))
