"""KITTI depth-completion metrics, computed exactly as the official devkit (``evaluate_depth.cpp``) does.

The devkit first fills holes in the prediction (``DepthImage::interpolateBackground`` in ``io_depth.h``),
then scores every pixel with ground truth > 0:

- ``mae_mm``, ``rmse_mm``: |pred - gt| in millimetres (metres x 1000);
- ``imae_per_km``, ``irmse_per_km``: |1/pred - 1/gt| with depth in km, i.e. 1/m x 1000;
- ``absrel``: mean |pred - gt| / gt (unitless); ``delta1``: fraction with max(pred/gt, gt/pred) < 1.25.

Means over a data set are means of per-frame values (the devkit averages per-image metrics).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from depth_nodes.errors import InputShapeError

#: Metric name -> unit, in report order.
METRIC_UNITS: dict[str, str] = {
    "mae_mm": "mm",
    "rmse_mm": "mm",
    "imae_per_km": "1/km",
    "irmse_per_km": "1/km",
    "absrel": "",
    "delta1": "",
}

#: Value the devkit leaves in pixels its background fill cannot reach (its "invalid" marker, -1 m).
DEVKIT_INVALID_M = -1.0


def prediction_valid(pred: np.ndarray) -> np.ndarray:
    """Pixels the devkit counts as predicted: finite and > 0 (a KITTI PNG's 0 means "no data")."""
    pred = np.asarray(pred)
    return np.isfinite(pred) & (pred > 0)


def fill_background(pred: np.ndarray) -> np.ndarray:
    """The devkit's ``interpolateBackground``, vectorised; returns a filled float64 copy.

    Per row: each run of invalid pixels strictly inside the row takes min(left neighbour, right
    neighbour); runs touching the left/right border take the row's first/last valid value. Then per
    column: pixels above the first valid one take its value, pixels below the last valid one take that
    value. Pixels still unreached (rows with no valid pixel lying between valid rows, or an empty
    prediction) keep the devkit's invalid marker, -1 m.
    """
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim != 2:
        raise InputShapeError(f"prediction must be an H x W depth image, got shape {pred.shape}")
    h, w = pred.shape
    valid = prediction_valid(pred)
    out = np.where(valid, pred, DEVKIT_INVALID_M)
    if not valid.any():
        return out
    cols = np.arange(w)
    # Index of the nearest valid pixel at or left of / at or right of each pixel (-1 / w where none).
    left = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right = np.minimum.accumulate(np.where(valid, cols, w)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    has_left, has_right = left >= 0, right < w
    d_left = out[rows, np.clip(left, 0, w - 1)]
    d_right = out[rows, np.clip(right, 0, w - 1)]
    hole = ~valid
    both = hole & has_left & has_right
    out[both] = np.minimum(d_left[both], d_right[both])
    only_right = hole & ~has_left & has_right  # run touching the left border: first valid value
    out[only_right] = d_right[only_right]
    only_left = hole & has_left & ~has_right  # run touching the right border: last valid value
    out[only_left] = d_left[only_left]
    # After the row pass every row is either fully valid or fully invalid.
    row_ok = valid.any(axis=1)
    ok_rows = np.flatnonzero(row_ok)
    first, last = ok_rows[0], ok_rows[-1]
    out[:first] = out[first]
    out[last + 1 :] = out[last]
    return out


def depth_metrics(
    pred: np.ndarray, gt: np.ndarray, *, fill: bool = True, filled: np.ndarray | None = None
) -> dict[str, float]:
    """Devkit metrics of one frame. ``pred``: metres, NaN/<=0 = no estimate; ``gt``: metres, 0 = none.

    Also returns ``n_pixels`` (GT pixels scored) and ``coverage`` (fraction of them the prediction covered
    before the fill). A frame without GT pixels gives NaN metrics. ``filled`` may pass a precomputed
    :func:`fill_background` of ``pred``.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise InputShapeError(f"prediction shape {pred.shape} does not match ground truth shape {gt.shape}")
    gt_mask = np.isfinite(gt) & (gt > 0)
    n = int(np.count_nonzero(gt_mask))
    covered = prediction_valid(pred)[gt_mask]
    if filled is None:
        filled = fill_background(pred) if fill else np.where(prediction_valid(pred), pred, DEVKIT_INVALID_M)
    d = filled[gt_mask]
    g = gt[gt_mask].astype(np.float64)
    result = metrics_from_samples(d, g)
    result["n_pixels"] = n
    result["coverage"] = float(covered.mean()) if n else float("nan")
    return result


def metrics_from_samples(d: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """Metrics of paired samples ``d`` (prediction, m) and ``g`` (ground truth > 0, m)."""
    if d.size == 0:
        return {k: float("nan") for k in METRIC_UNITS}
    err = np.abs(d - g)
    with np.errstate(divide="ignore", invalid="ignore"):
        ierr = np.abs(1.0 / d - 1.0 / g)
        ratio = np.maximum(d / g, g / d)
    return {
        "mae_mm": float(err.mean() * 1000.0),
        "rmse_mm": float(np.sqrt(np.mean(err**2)) * 1000.0),
        "imae_per_km": float(ierr.mean() * 1000.0),
        "irmse_per_km": float(np.sqrt(np.mean(ierr**2)) * 1000.0),
        "absrel": float(np.mean(err / g)),
        # A non-positive prediction (the devkit's unfilled marker) never counts as within 1.25.
        "delta1": float(np.mean((d > 0) & (ratio < 1.25))),
    }


def mean_metrics(per_frame: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of per-frame metrics (frames with NaN, i.e. no GT, are skipped), plus ``n_frames``."""
    rows = list(per_frame)
    out: dict[str, float] = {}
    for key in METRIC_UNITS:
        vals = np.array([r[key] for r in rows if key in r], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[key] = float(vals.mean()) if vals.size else float("nan")
    out["n_frames"] = len(rows)
    return out
