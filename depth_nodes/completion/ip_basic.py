"""IP-Basic (Ku, Harakeh, Waslander, "In Defense of Classical Image Processing", CRV 2018), re-implemented.

Both published variants, step for step: ``fill_in_fast`` (dilate inverted depth with a diamond kernel,
close, fill holes, median + bilateral/Gaussian blur) and ``fill_in_multiscale`` (depth-banded dilation
with cross kernels, then the same clean-up chain). Depth is inverted (``max_depth - d``) so that dilation,
a max filter, prefers the nearer surface. Region above the highest return per column stays empty unless
``extrapolate=True`` (the published benchmark setting), in which case the top value is carried upward.
"""

from __future__ import annotations

import cv2
import numpy as np

from depth_nodes.completion.base import Completer, Completion, distance_confidence
from depth_nodes.completion.registry import register

FULL_KERNEL_5 = np.ones((5, 5), np.uint8)
FULL_KERNEL_7 = np.ones((7, 7), np.uint8)
FULL_KERNEL_9 = np.ones((9, 9), np.uint8)
FULL_KERNEL_31 = np.ones((31, 31), np.uint8)
DIAMOND_KERNEL_5 = np.array(
    [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]], np.uint8
)
CROSS_KERNEL_3 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
CROSS_KERNEL_5 = np.array(
    [[0, 0, 1, 0, 0], [0, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0], [0, 0, 1, 0, 0]], np.uint8
)
CROSS_KERNEL_7 = np.zeros((7, 7), np.uint8)
CROSS_KERNEL_7[3, :] = 1
CROSS_KERNEL_7[:, 3] = 1


def _top_rows(valid: np.ndarray) -> np.ndarray:
    """Row index of the first valid pixel in each column (H where the column is empty)."""
    top = np.argmax(valid, axis=0)
    top[~valid.any(axis=0)] = valid.shape[0]
    return top


def _below_top_mask(valid: np.ndarray) -> np.ndarray:
    """True at and below the highest valid pixel of each column (vectorised form of the published loop)."""
    return np.arange(valid.shape[0])[:, None] >= _top_rows(valid)[None, :]


def _extend_top(depth: np.ndarray) -> None:
    """Carry each column's highest value up to the top row, in place (the published ``extrapolate``)."""
    valid = depth > 0.1
    top = _top_rows(valid)
    cols = np.flatnonzero(top < depth.shape[0])
    values = depth[top[cols], cols]
    above = np.arange(depth.shape[0])[:, None] < top[None, cols]
    sub = depth[:, cols]
    depth[:, cols] = np.where(above, values[None, :], sub)


def fill_in_fast(
    depth_map: np.ndarray,
    max_depth: float = 100.0,
    custom_kernel: np.ndarray = DIAMOND_KERNEL_5,
    extrapolate: bool = False,
    blur_type: str = "bilateral",
) -> np.ndarray:
    """IP-Basic fast fill. ``depth_map``: H x W float32 metres, 0 = empty. Returns 0 where still empty."""
    depth_map = depth_map.astype(np.float32, copy=True)
    valid = depth_map > 0.1
    depth_map[valid] = max_depth - depth_map[valid]
    depth_map = cv2.dilate(depth_map, custom_kernel)
    depth_map = cv2.morphologyEx(depth_map, cv2.MORPH_CLOSE, FULL_KERNEL_5)
    empty = depth_map < 0.1
    dilated = cv2.dilate(depth_map, FULL_KERNEL_7)
    depth_map[empty] = dilated[empty]
    if extrapolate:
        _extend_top(depth_map)
        empty = depth_map < 0.1
        dilated = cv2.dilate(depth_map, FULL_KERNEL_31)
        depth_map[empty] = dilated[empty]
    depth_map = cv2.medianBlur(depth_map, 5)
    if blur_type == "bilateral":
        depth_map = cv2.bilateralFilter(depth_map, 5, 1.5, 2.0)
    elif blur_type == "gaussian":
        valid = depth_map > 0.1
        blurred = cv2.GaussianBlur(depth_map, (5, 5), 0)
        depth_map[valid] = blurred[valid]
    valid = depth_map > 0.1
    depth_map[valid] = max_depth - depth_map[valid]
    depth_map[~valid] = 0.0
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
    """IP-Basic multi-scale fill (near <= 15 m, medium <= 30 m, far > 30 m dilated with 7/5/3 crosses)."""
    depths_in = np.asarray(depth_map, dtype=np.float32)
    near = (depths_in > 0.1) & (depths_in <= 15.0)
    med = (depths_in > 15.0) & (depths_in <= 30.0)
    far = depths_in > 30.0
    s1 = depths_in.copy()
    valid = s1 > 0.1
    s1[valid] = max_depth - s1[valid]

    dilated_far = cv2.dilate(s1 * far, dilation_kernel_far)
    dilated_med = cv2.dilate(s1 * med, dilation_kernel_med)
    dilated_near = cv2.dilate(s1 * near, dilation_kernel_near)
    s2 = s1.copy()
    for dil in (dilated_far, dilated_med, dilated_near):  # nearer bands written last win
        m = dil > 0.1
        s2[m] = dil[m]

    s3 = cv2.morphologyEx(s2, cv2.MORPH_CLOSE, FULL_KERNEL_5)
    s4 = s3.copy()
    median = cv2.medianBlur(s3, 5)
    valid = s3 > 0.1
    s4[valid] = median[valid]

    top_mask = _below_top_mask(depths_in > 0.1)
    empty = ~(s4 > 0.1) & top_mask
    dilated = cv2.dilate(s4, FULL_KERNEL_9)
    s5 = s4.copy()
    s5[empty] = dilated[empty]

    s6 = s5.copy()
    if extrapolate:
        _extend_top(s6)
        top_mask = np.ones(s6.shape, bool)
    else:
        top_mask = _below_top_mask(s5 > 0.1)

    s7 = s6
    for _ in range(6):
        empty = (s7 < 0.1) & top_mask
        dilated = cv2.dilate(s7, FULL_KERNEL_5)
        s7[empty] = dilated[empty]
    blurred = cv2.medianBlur(s7, 5)
    valid = (s7 > 0.1) & top_mask
    s7[valid] = blurred[valid]
    if blur_type == "gaussian":
        blurred = cv2.GaussianBlur(s7, (5, 5), 0)
        valid = (s7 > 0.1) & top_mask
        s7[valid] = blurred[valid]
    elif blur_type == "bilateral":
        blurred = cv2.bilateralFilter(s7, 5, 0.5, 2.0)
        s7[valid] = blurred[valid]

    valid = (s7 > 0.1) & top_mask
    out = np.zeros_like(s7)
    out[valid] = max_depth - s7[valid]
    return out


class IPBasicCompleter(Completer):
    """IP-Basic (Ku et al. 2018); confidence decays with distance to the nearest LiDAR return."""

    uses_image = False

    def __init__(
        self,
        mode: str = "fast",
        extrapolate: bool = False,
        blur_type: str | None = None,
        max_depth_m: float = 100.0,
        confidence_scale_px: float = 4.0,
    ) -> None:
        if mode not in ("fast", "multiscale"):
            raise ValueError(f"ip_basic mode must be 'fast' or 'multiscale', got {mode!r}")
        if blur_type is None:
            blur_type = "bilateral" if mode == "fast" else "gaussian"
        if blur_type not in ("bilateral", "gaussian", "none"):
            raise ValueError(f"blur_type must be bilateral, gaussian or none, got {blur_type!r}")
        self.mode, self.extrapolate, self.blur_type = mode, extrapolate, blur_type
        self.max_depth_m = float(max_depth_m)
        self.confidence_scale_px = confidence_scale_px
        self.name = "ip_basic" if mode == "fast" else "ip_basic_multiscale"

    def _complete(self, sparse: np.ndarray, image: np.ndarray | None) -> Completion:
        fill = fill_in_fast if self.mode == "fast" else fill_in_multiscale
        out = fill(sparse, self.max_depth_m, extrapolate=self.extrapolate, blur_type=self.blur_type)
        valid = out > 0.1
        depth = np.where(valid, out, np.nan).astype(np.float32)
        support = sparse > 0
        if support.any():
            dist = cv2.distanceTransform((~support).astype(np.uint8), cv2.DIST_L2, 3)
        else:
            dist = np.full(sparse.shape, np.inf, np.float32)
        conf = np.where(valid, distance_confidence(dist, self.confidence_scale_px), 0.0).astype(np.float32)
        return Completion(depth, conf)


@register("ip_basic", "IP-Basic fast (Ku et al. 2018): morphological fill of inverted depth, no image")
def _ip_basic(**params) -> IPBasicCompleter:
    return IPBasicCompleter(mode="fast", **params)


@register("ip_basic_multiscale", "IP-Basic multi-scale (Ku et al. 2018): depth-banded dilation, no image")
def _ip_basic_multiscale(**params) -> IPBasicCompleter:
    return IPBasicCompleter(mode="multiscale", **params)
