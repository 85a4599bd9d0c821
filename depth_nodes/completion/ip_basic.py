"""IP-Basic (Ku, Harakeh, Waslander, "In Defense of Classical Image Processing: Fast Depth Completion on
the CPU", CRV 2018), re-implemented from the published code (github.com/kujason/ip_basic,
``ip_basic/depth_map_utils.py``: ``fill_in_fast`` and ``fill_in_multiscale``), step for step.

Depth is inverted (``max_depth - d``) so that dilation, a max filter, prefers the nearer surface; the
inversion constant is the completer's ``max_depth_m`` (returns at or beyond it are dropped, as in the
published code). Registered settings are the published demo's (``demos/depth_completion.py``):

- ``ip_basic``: ``fill_in_fast`` with ``extrapolate=True``, ``blur_type='gaussian'`` (the paper result);
- ``ip_basic_multiscale``: ``fill_in_multiscale`` with ``extrapolate=False``, ``blur_type='bilateral'``.

Differences from the published functions are in form only: boolean-mask writes use ``np.copyto(...,
where=...)`` and the per-column loops are vectorised (same values, less time); the input is not modified;
the completer reports pixels left at <= 0.1 (the published "empty") as NaN with confidence 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from depth_nodes.completion.base import Completer, Completion

FULL_KERNEL_5 = np.ones((5, 5), np.uint8)
FULL_KERNEL_7 = np.ones((7, 7), np.uint8)
FULL_KERNEL_9 = np.ones((9, 9), np.uint8)
FULL_KERNEL_31 = np.ones((31, 31), np.uint8)
DIAMOND_KERNEL_5 = np.array(
    [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]], np.uint8
)
CROSS_KERNEL_3 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
CROSS_KERNEL_5 = np.zeros((5, 5), np.uint8)
CROSS_KERNEL_5[2, :] = CROSS_KERNEL_5[:, 2] = 1
CROSS_KERNEL_7 = np.zeros((7, 7), np.uint8)
CROSS_KERNEL_7[3, :] = CROSS_KERNEL_7[:, 3] = 1
BLUR_TYPES = ("bilateral", "gaussian", "none")


def _above_top(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows above each column's first valid pixel as a mask, that row per column).

    The published ``np.argmax(col > 0.1)`` is 0 for a column without any valid pixel, so such a column
    has nothing "above" it: it stays in the mask of pixels to fill.
    """
    top = np.argmax(valid, axis=0)
    return np.arange(valid.shape[0])[:, None] < top[None, :], top


def _extend_top(depth: np.ndarray, above: np.ndarray, top: np.ndarray) -> None:
    """Published ``extrapolate``: each column's top value copied to the rows above it (in place)."""
    np.copyto(depth, np.broadcast_to(depth[top, np.arange(depth.shape[1])], depth.shape), where=above)


def fill_in_fast(
    depth_map: np.ndarray,
    max_depth: float = 100.0,
    custom_kernel: np.ndarray = DIAMOND_KERNEL_5,
    extrapolate: bool = False,
    blur_type: str = "bilateral",
) -> np.ndarray:
    """Published ``fill_in_fast`` (defaults as there). ``depth_map`` float32 metres, 0 = empty, is
    modified in place like the published function's input: pass a copy to keep it."""
    valid = depth_map > 0.1
    np.subtract(np.float32(max_depth), depth_map, out=depth_map, where=valid)  # invert
    depth_map = cv2.dilate(depth_map, custom_kernel)
    depth_map = cv2.morphologyEx(depth_map, cv2.MORPH_CLOSE, FULL_KERNEL_5)  # hole closing
    np.copyto(depth_map, cv2.dilate(depth_map, FULL_KERNEL_7), where=depth_map < 0.1)
    if extrapolate:
        _extend_top(depth_map, *_above_top(depth_map > 0.1))
        np.copyto(depth_map, cv2.dilate(depth_map, FULL_KERNEL_31), where=depth_map < 0.1)  # large fill
    depth_map = cv2.medianBlur(depth_map, 5)
    if blur_type == "bilateral":
        depth_map = cv2.bilateralFilter(depth_map, 5, 1.5, 2.0)
    elif blur_type == "gaussian":
        valid = depth_map > 0.1
        np.copyto(depth_map, cv2.GaussianBlur(depth_map, (5, 5), 0), where=valid)
    valid = depth_map > 0.1
    np.subtract(np.float32(max_depth), depth_map, out=depth_map, where=valid)  # invert back
    return depth_map


def fill_in_multiscale(
    depth_map: np.ndarray,
    max_depth: float = 100.0,
    dilation_kernel_far: np.ndarray = CROSS_KERNEL_3,
    dilation_kernel_med: np.ndarray = CROSS_KERNEL_5,
    dilation_kernel_near: np.ndarray = CROSS_KERNEL_7,
    extrapolate: bool = False,
    blur_type: str = "bilateral",
) -> np.ndarray:
    """Published ``fill_in_multiscale`` (defaults as there; returns only the depth, not the process dict)."""
    depths_in = np.asarray(depth_map, dtype=np.float32)
    # Bins before inversion: near <= 15 m, medium <= 30 m, far beyond.
    near = (depths_in > 0.1) & (depths_in <= 15.0)
    med = (depths_in > 15.0) & (depths_in <= 30.0)
    far = depths_in > 30.0
    s1 = depths_in.copy()
    np.subtract(np.float32(max_depth), s1, out=s1, where=s1 > 0.1)
    dilated_far = cv2.dilate(np.multiply(s1, far), dilation_kernel_far)
    dilated_med = cv2.dilate(np.multiply(s1, med), dilation_kernel_med)
    dilated_near = cv2.dilate(np.multiply(s1, near), dilation_kernel_near)
    s2 = s1.copy()  # combined far to near: nearer bins written last win
    for dilated in (dilated_far, dilated_med, dilated_near):
        np.copyto(s2, dilated, where=dilated > 0.1)
    s3 = cv2.morphologyEx(s2, cv2.MORPH_CLOSE, FULL_KERNEL_5)  # small hole closure
    s4 = s3.copy()
    np.copyto(s4, cv2.medianBlur(s3, 5), where=s3 > 0.1)  # outlier removal
    # Top mask from the closed + median-filtered image; a column without returns is not masked.
    top_mask = ~_above_top(s4 > 0.1)[0]
    s5 = s4.copy()
    np.copyto(s5, cv2.dilate(s4, FULL_KERNEL_9), where=~(s4 > 0.1) & top_mask)  # hole fill
    s6 = s5.copy()
    above, top = _above_top(s5 > 0.1)
    if extrapolate:
        _extend_top(s6, above, top)
        top_mask = np.ones(s6.shape, bool)
    else:
        top_mask = ~above
    s7 = s6.copy()
    for _ in range(6):  # large holes, masked dilations
        np.copyto(s7, cv2.dilate(s7, FULL_KERNEL_5), where=(s7 < 0.1) & top_mask)
    blurred = cv2.medianBlur(s7, 5)
    valid = (s7 > 0.1) & top_mask
    np.copyto(s7, blurred, where=valid)
    if blur_type == "gaussian":
        blurred = cv2.GaussianBlur(s7, (5, 5), 0)
        np.copyto(s7, blurred, where=(s7 > 0.1) & top_mask)
    elif blur_type == "bilateral":
        np.copyto(s7, cv2.bilateralFilter(s7, 5, 0.5, 2.0), where=valid)  # the median step's mask
    np.subtract(np.float32(max_depth), s7, out=s7, where=s7 > 0.1)
    return s7


class IPBasicCompleter(Completer):
    """IP-Basic (Ku et al. 2018); confidence decays with the distance to the nearest LiDAR return.

    ``extrapolate`` / ``blur_type`` default to the published demo's setting of the ``mode``;
    ``max_depth_m`` is the inversion constant (the published 100 m by default; the node passes its own).
    """

    uses_image = False
    #: Published setting: raw input, no see-through filter (``create(..., occlusion="default")`` adds it).
    occlusion = None

    def __init__(
        self,
        mode: str = "fast",
        extrapolate: bool | None = None,
        blur_type: str | None = None,
        max_depth_m: float = 100.0,
        confidence_scale_px: float = 4.0,
    ) -> None:
        if mode not in ("fast", "multiscale"):
            raise ValueError(f"ip_basic mode must be 'fast' or 'multiscale', got {mode!r}")
        if extrapolate is None:
            extrapolate = mode == "fast"
        if blur_type is None:
            blur_type = "gaussian" if mode == "fast" else "bilateral"
        if blur_type not in BLUR_TYPES:
            raise ValueError(f"blur_type must be one of {', '.join(BLUR_TYPES)}, got {blur_type!r}")
        if not max_depth_m > 0.1:
            raise ValueError(f"max_depth_m must be > 0.1 m, got {max_depth_m}")
        if confidence_scale_px <= 0:
            raise ValueError("confidence_scale_px must be > 0")
        self.mode, self.extrapolate, self.blur_type = mode, bool(extrapolate), blur_type
        self.max_depth_m = float(max_depth_m)
        self.confidence_scale_px = float(confidence_scale_px)
        self.name = "ip_basic" if mode == "fast" else "ip_basic_multiscale"
        self._conf_lut: np.ndarray | None = None

    def _complete(self, sparse: np.ndarray, image: np.ndarray | None) -> Completion:
        if self.mode == "fast":
            out = fill_in_fast(
                sparse.copy(), self.max_depth_m, extrapolate=self.extrapolate, blur_type=self.blur_type
            )
        else:
            out = fill_in_multiscale(
                sparse, self.max_depth_m, extrapolate=self.extrapolate, blur_type=self.blur_type
            )
        empty = ~(out > 0.1)
        np.putmask(out, empty, np.float32(np.nan))
        return Completion(out, self._confidence(sparse, empty))

    def _confidence(self, sparse: np.ndarray, empty: np.ndarray) -> np.ndarray:
        """exp(-d / scale) of the city-block distance d (px) to the nearest return, through a 256-entry
        table indexed by OpenCV's saturating uint8 distance transform (a float distance + exp per pixel
        costs 2-3x more); 0 at empty pixels and >= 255 px away."""
        if self._conf_lut is None:
            lut = np.exp(-np.arange(256, dtype=np.float64) / self.confidence_scale_px).astype(np.float32)
            lut[255] = 0.0
            self._conf_lut = lut
        dist = cv2.distanceTransform((sparse <= 0).view(np.uint8), cv2.DIST_L1, 3, dstType=cv2.CV_8U)
        np.putmask(dist, empty, 255)
        return np.take(self._conf_lut, dist)
