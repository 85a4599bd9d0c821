"""Dense depth from the LiDAR memory carried to an image, the monocular estimate filling what it lacks.

ROS-free. :func:`project_carried` projects carried points like the node projects a scan (nearest return per
pixel, the parallax occlusion filter) keeping each return's confidence; :func:`estimate_from_memory`
completes that sparse image with the classical completer (the node's guided completer by default) and,
where the memory has nothing (newly visible regions), fills with a monocular prediction whose scale is
fitted to **the carried memory returns of this very frame** (:func:`depth_nodes.core.scale_fit.fit_scale`), not
to a fit from before the dropout.

Confidence per pixel: memory pixels = the completer's confidence x the memory confidence of the nearest
carried return (``cv2.distanceTransformWithLabels`` finds it); mono pixels = the fit's quality
``1 / (1 + residual / 0.15)`` x the median memory confidence (the scale is only as good as the points it was
fitted to) x ``1 / (1 + depth / 30 m)`` (as the mono estimator's).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from depth_nodes.completion.base import Completer, Completion
from depth_nodes.completion.conditioning import DEFAULT_OCCLUSION
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import OcclusionFilter, remove_occluded
from depth_nodes.errors import EmptyInputError
from depth_nodes.pipeline.lidar_memory import Carried

#: Fewest carried returns in view for a scale fit of the monocular fill.
MIN_FIT_POINTS = 200
#: Depth beyond which the mono fill's confidence halves (m), as the mono estimator's.
MONO_CONFIDENCE_FAR_M = 30.0
#: Around what moved while the memory was recorded the memory gives no depth: this margin (px) ...
MOVING_MARGIN_PX = 16
#: ... growing by this much per second since the newest scan (px/s). 0: measured on the KITTI drive
#: (``bench dropout``), a margin growing 30 px/s left 6-8 % of the pixels covered after 2 s and no more
#: accurate than a fixed 16 px (at 1 s: 2.6-9x guided's MAE on the pixels covered vs 2.9-8x, frames 20-45).
MOVING_MARGIN_PX_PER_S = 0.0


@dataclass
class MemoryEstimate:
    """Depth from memory (+ mono): ``completion`` (NaN = none), the projected ``sparse`` memory image
    (0 = none) and its per-return ``sparse_confidence``, shares of the image's pixels by source."""

    completion: Completion
    sparse: np.ndarray
    sparse_confidence: np.ndarray
    share_memory: float
    share_mono: float
    n_returns: int
    #: The mono fill's scale fit on this frame's memory returns (None: no mono, or no fit; see ``mono_note``).
    mono_fit: object | None = None
    mono_note: str = ""
    #: Pixels whose depth came from the mono fill (None: no fill).
    mono_mask: np.ndarray | None = None
    #: Pixels the memory leaves out because something moved there while it was recorded.
    moving_mask: np.ndarray | None = None


def project_carried(
    carried: Carried,
    camera: CameraModel,
    occlusion: OcclusionFilter | None = DEFAULT_OCCLUSION,
    min_depth_m: float = 0.1,
    max_depth_m: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """(sparse depth H x W, 0 = none; confidence H x W of the return kept at each pixel)."""
    pts = carried.points_cam
    conf = carried.confidence
    if camera.T_proj_frame is not None:  # as scan_to_depth: into the frame K projects from
        T = np.asarray(camera.T_proj_frame, np.float32)
        pts = pts @ T[:3, :3].T + T[:3, 3]
    z = pts[:, 2]
    front = np.flatnonzero((z >= min_depth_m) & (z <= max_depth_m))
    u, v, z = camera.project(pts[front])
    ui, vi = np.floor(u + 0.5), np.floor(v + 0.5)
    ok = np.flatnonzero((ui >= 0) & (ui < camera.width) & (vi >= 0) & (vi < camera.height))
    idx = vi[ok].astype(np.int64) * camera.width + ui[ok].astype(np.int64)
    z, c = z[ok], conf[front[ok]]
    n = camera.width * camera.height
    depth = np.full(n, np.inf, np.float32)
    np.minimum.at(depth, idx, z)
    winner = z <= depth[idx]  # the nearest return per pixel (ties: any of them)
    confidence = np.zeros(n, np.float32)
    confidence[idx[winner]] = c[winner]
    depth[~np.isfinite(depth)] = 0.0
    depth = depth.reshape(camera.shape)
    if occlusion is not None:
        depth, _ = remove_occluded(depth, occlusion)
    confidence = confidence.reshape(camera.shape)
    confidence[depth <= 0] = 0.0
    return depth, confidence


def moving_mask(carried: Carried, camera: CameraModel, margin_px: float) -> np.ndarray | None:
    """Pixels within ``margin_px`` of where something moved while the memory was recorded (None: nothing)."""
    if carried.moving_cam is None or carried.moving_cam.shape[0] == 0:
        return None
    pts = carried.moving_cam
    if camera.T_proj_frame is not None:
        T = np.asarray(camera.T_proj_frame, np.float32)
        pts = pts @ T[:3, :3].T + T[:3, 3]
    u, v, _ = camera.project(pts[pts[:, 2] > 0.1])
    ui, vi = np.floor(u + 0.5), np.floor(v + 0.5)
    ok = (ui >= 0) & (ui < camera.width) & (vi >= 0) & (vi < camera.height)
    mask = np.zeros(camera.shape, np.uint8)
    mask[vi[ok].astype(np.int64), ui[ok].astype(np.int64)] = 1
    if not mask.any():
        return None
    r = max(1, int(round(margin_px)))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0


def nearest_value(sparse: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` of the nearest pixel with ``sparse > 0``, for every pixel (OpenCV's labelled distance
    transform; 0 everywhere when ``sparse`` is empty)."""
    has = sparse > 0
    if not has.any():
        return np.zeros(sparse.shape, np.float32)
    _, labels = cv2.distanceTransformWithLabels(
        (~has).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # labels number the zero pixels (the returns) 1..n in row-major order
    lut = np.zeros(int(labels.max()) + 1, np.float32)
    lut[1 : int(has.sum()) + 1] = values[has]
    return lut[labels]


def estimate_from_memory(
    carried: Carried,
    camera: CameraModel,
    completer: Completer,
    rgb: np.ndarray | None,
    *,
    occlusion: OcclusionFilter | None = DEFAULT_OCCLUSION,
    min_depth_m: float = 0.1,
    max_depth_m: float = 120.0,
    mono_pred: np.ndarray | None = None,
    mono_kind: str = "metric",
    min_fit_points: int = MIN_FIT_POINTS,
    exclude_moving: bool = True,
) -> MemoryEstimate:
    """Dense depth + confidence from ``carried`` (see the module docstring). ``mono_pred``: the monocular
    model's raw prediction of this image (``mono_kind`` = ``metric`` or ``inverse``), None = memory only;
    ``exclude_moving``: no memory depth around what moved while it was recorded (:func:`moving_mask`).
    Raises :class:`EmptyInputError` when neither the memory nor the mono fill gives any depth."""
    sparse, sconf = project_carried(carried, camera, occlusion, min_depth_m, max_depth_m)
    margin = MOVING_MARGIN_PX + MOVING_MARGIN_PX_PER_S * max(0.0, carried.newest_age_s)
    moving = moving_mask(carried, camera, margin) if exclude_moving else None
    n_ret = int(np.count_nonzero(sparse))
    h, w = camera.shape
    depth = np.full((h, w), np.nan, np.float32)
    conf = np.zeros((h, w), np.float32)
    if n_ret:
        if completer.max_depth_m != max_depth_m:
            completer.max_depth_m = float(max_depth_m)
        out = completer.complete(
            sparse, rgb if completer.uses_image else None, conditioned=occlusion is not None
        )
        depth = np.asarray(out.depth, np.float32).copy()
        near_conf = nearest_value(sparse, sconf)
        conf = np.where(np.isfinite(depth), np.asarray(out.confidence, np.float32) * near_conf, 0.0)
        kept = sparse > 0 if out.kept_returns is None else (sparse > 0) & out.kept_returns
        depth[kept], conf[kept] = sparse[kept], sconf[kept]  # the carried return itself, its own confidence
        conf = conf.astype(np.float32)
        if moving is not None:  # no depth where something moved: it may have moved on (mono fills)
            depth[moving], conf[moving] = np.nan, 0.0
            sparse = np.where(moving, 0.0, sparse).astype(np.float32)  # nor a scale fit to it
    from_memory = np.isfinite(depth)
    est = MemoryEstimate(Completion(depth, conf), sparse, sconf, float(from_memory.mean()), 0.0,
                         int(np.count_nonzero(sparse)), moving_mask=moving)  # fmt: skip
    if mono_pred is not None:
        _fill_mono(est, mono_pred, mono_kind, from_memory, max_depth_m, min_depth_m, min_fit_points)
    if not np.isfinite(est.completion.depth).any():
        why = f"; {est.mono_note}" if est.mono_note else ""
        raise EmptyInputError(f"LiDAR memory: no carried return lands in the image{why}")
    return est


def _fill_mono(
    est: MemoryEstimate, pred: np.ndarray, kind: str, from_memory: np.ndarray, max_depth_m: float,
    min_depth_m: float, min_fit_points: int,
) -> None:  # fmt: skip
    from depth_nodes.core.scale_fit import ScaleFitError, apply_scale, fit_scale

    if est.n_returns < min_fit_points:
        est.mono_note = (
            f"mono fill: {est.n_returns} memory returns in view < {min_fit_points} for a scale fit"
        )
        return
    try:
        fit = fit_scale(pred, est.sparse, kind, min_points=min_fit_points, max_depth_m=max_depth_m)
    except ScaleFitError as exc:
        est.mono_note = f"mono fill: no scale fit on the memory returns: {exc}"
        return
    mono = apply_scale(pred, fit.kind, fit.scale, fit.shift, max_depth_m, min_depth_m)
    fill = ~from_memory & np.isfinite(mono)
    depth, conf = est.completion.depth, est.completion.confidence
    depth[fill] = mono[fill]
    base = float(np.median(est.sparse_confidence[est.sparse > 0])) / (1.0 + fit.residual / 0.15)
    conf[fill] = base / (1.0 + mono[fill] / MONO_CONFIDENCE_FAR_M)
    est.mono_fit = fit
    est.mono_mask = fill
    est.share_mono = float(fill.mean())
