"""Metric scale recovery for monocular depth: robust per-frame fits to the LiDAR, tracked over time.

Two fit models, by what the network predicts:

- ``"inverse"`` (relative models, e.g. Depth Anything V2 relative): the prediction ``r`` is an affine-invariant
  inverse depth (disparity), so ``1 / z = s * r + t``; scale **and shift** are fitted in inverse depth.
- ``"metric"`` (metric models, our own net): ``z = s * d``; **scale only**, fitted in log depth.

Fits are robust: RANSAC over minimal samples (vectorised: a few hundred hypotheses in one numpy pass) picks
the inlier set, then IRLS with Huber weights refines on it (written here rather than with
``scipy.optimize.least_squares(loss="huber")``: a closed-form 2x2 weighted solve per iteration is ~10x cheaper
per frame, and RANSAC is needed first anyway: with 30 % gross outliers a Huber fit from least squares is
pulled several percent off).

:class:`ScaleTracker` keeps the fit over time: log-scale smoothed (EMA; the shift of inverse fits smoothed
linearly with the same weight), carried forward while the LiDAR is gone, with a confidence that halves every
``half_life_s`` since the last good fit and falls with its residual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from depth_nodes.errors import DepthNodesError

INVERSE = "inverse"
METRIC = "metric"
KINDS = (INVERSE, METRIC)


class ScaleFitError(DepthNodesError):
    """No usable scale fit on this frame (too few LiDAR returns, degenerate prediction)."""


@dataclass(frozen=True)
class ScaleFit:
    """One frame's fit. ``residual`` = median relative depth error of the inliers (unitless, 0.05 = 5 %)."""

    kind: str
    scale: float
    shift: float
    residual: float
    inlier_ratio: float
    n_points: int
    stamp_ns: int = 0

    def apply(self, pred: np.ndarray, max_depth_m: float, min_depth_m: float = 0.1) -> np.ndarray:
        return apply_scale(pred, self.kind, self.scale, self.shift, max_depth_m, min_depth_m)


def apply_scale(
    pred: np.ndarray, kind: str, scale: float, shift: float, max_depth_m: float, min_depth_m: float = 0.1
) -> np.ndarray:
    """Metric depth (m, float32) from a prediction; NaN beyond ``max_depth_m`` (sky, far: never invented),
    below ``min_depth_m`` and where the inverse depth is not positive."""
    pred = np.asarray(pred, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == INVERSE:
            inv = np.float32(scale) * pred + np.float32(shift)
            depth = np.where(inv > 0, 1.0 / inv, np.nan).astype(np.float32)
        elif kind == METRIC:
            depth = (np.float32(scale) * pred).astype(np.float32)
        else:
            raise ValueError(f"unknown scale kind {kind!r}; kinds: {', '.join(KINDS)}")
        depth[~((depth >= min_depth_m) & (depth <= max_depth_m))] = np.nan
    return depth


def fit_scale(
    pred: np.ndarray,
    lidar_m: np.ndarray,
    kind: str = INVERSE,
    *,
    min_points: int = 50,
    max_points: int = 20000,
    n_hypotheses: int = 256,
    inlier_rel: float = 0.1,
    max_depth_m: float = 120.0,
    seed: int = 0,
    stamp_ns: int = 0,
) -> ScaleFit:
    """Robust fit of ``pred`` (H x W) to the LiDAR depth ``lidar_m`` (H x W, m, 0/NaN = no return).

    RANSAC (inliers: relative depth error <= ``inlier_rel``) then Huber IRLS on the inliers. Fitting in
    inverse depth weights near returns more, as the network's own inverse-depth output does.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown scale kind {kind!r}; kinds: {', '.join(KINDS)}")
    pred = np.asarray(pred, dtype=np.float64)
    lidar = np.asarray(lidar_m, dtype=np.float64)
    if pred.shape != lidar.shape:
        raise ScaleFitError(f"prediction {pred.shape} and LiDAR depth {lidar.shape} differ in size")
    valid = np.isfinite(pred) & np.isfinite(lidar) & (lidar > 0) & (lidar <= max_depth_m)
    if kind == METRIC:
        valid &= pred > 0
    n = int(np.count_nonzero(valid))
    if n < min_points:
        raise ScaleFitError(f"{n} LiDAR returns with a prediction < min_points={min_points}: no scale fit")
    rng = np.random.default_rng(seed)
    x, z = pred[valid], lidar[valid]
    if n > max_points:
        pick = rng.choice(n, max_points, replace=False)
        x, z = x[pick], z[pick]
        n = max_points
    if kind == METRIC:
        # scale only, in log depth: minimal sample = 1 point
        lr = np.log(z) - np.log(x)
        hyp = lr[rng.integers(0, n, n_hypotheses)]
        inl = np.abs(lr[None, :] - hyp[:, None]) <= math.log1p(inlier_rel)
        best = inl[np.argmax(inl.sum(1))]
        w0 = best.astype(np.float64)
        log_s = float(np.median(lr[best]))
        for _ in range(8):  # Huber IRLS on the log ratio
            r = lr - log_s
            k = 1.345 * (1.4826 * np.median(np.abs(r[best])) + 1e-12)
            w = w0 * np.where(np.abs(r) <= k, 1.0, k / np.maximum(np.abs(r), 1e-30))
            log_s = float((w * lr).sum() / w.sum())
        s, t = math.exp(log_s), 0.0
        est = s * x
    else:
        inv = 1.0 / z
        i = rng.integers(0, n, (n_hypotheses, 2))
        x1, x2, y1, y2 = x[i[:, 0]], x[i[:, 1]], inv[i[:, 0]], inv[i[:, 1]]
        dx = x2 - x1
        ok = np.abs(dx) > 1e-12
        if not ok.any():
            raise ScaleFitError("degenerate prediction: no variation over the LiDAR pixels")
        hs = np.where(ok, (y2 - y1) / np.where(ok, dx, 1.0), 0.0)
        ht = y1 - hs * x1
        hs, ht = hs[ok & (hs > 0)], ht[ok & (hs > 0)]
        if hs.size == 0:
            raise ScaleFitError("no positive-scale hypothesis: prediction anti-correlated with the LiDAR")
        # relative depth error |z_est / z - 1| <= inlier_rel  <=>  |inv_est / inv - 1| <= ~inlier_rel
        inv_est = hs[:, None] * x[None, :] + ht[:, None]
        inl = np.abs(inv_est / inv[None, :] - 1.0) <= inlier_rel
        best = inl[np.argmax(inl.sum(1))]
        # IRLS in inverse depth, residuals relative (divide by inv): y = 1, x' = x / inv, shift' = 1 / inv
        s, t = _irls_weighted_relative(x, inv, best)
        with np.errstate(divide="ignore", invalid="ignore"):
            est = 1.0 / (s * x + t)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(est / z - 1.0)
    inliers = rel <= inlier_rel
    if not np.isfinite(s) or s <= 0 or inliers.sum() < min_points // 2:
        raise ScaleFitError(f"scale fit failed: scale {s:.4g}, {int(inliers.sum())} inliers of {n}")
    return ScaleFit(kind, float(s), float(t), float(np.median(rel[inliers])), float(inliers.mean()), n, stamp_ns)


def _irls_weighted_relative(x: np.ndarray, inv: np.ndarray, mask: np.ndarray, iters: int = 10) -> tuple[float, float]:
    """Huber IRLS of ``s x + t ~ inv`` with residuals relative to ``inv`` (weights 1/inv^2)."""
    w0 = mask.astype(np.float64)
    base = 1.0 / np.maximum(inv, 1e-12) ** 2
    w = w0 * base
    s = t = 0.0
    for _ in range(iters):
        A = np.stack([x, np.ones_like(x)], 1)
        AtW = A.T * w
        s, t = np.linalg.solve(AtW @ A + 1e-18 * np.eye(2), AtW @ inv)
        r = (s * x + t) / inv - 1.0
        k = 1.345 * (1.4826 * np.median(np.abs(r[mask])) + 1e-12)
        a = np.abs(r)
        w = w0 * base * np.where(a <= k, 1.0, k / np.maximum(a, 1e-30))
    return float(s), float(t)


@dataclass
class ScaleState:
    """What the tracker carries: the smoothed fit, when it was last refreshed and how good that was."""

    kind: str
    log_scale: float
    shift: float
    residual: float
    stamp_ns: int
    n_fits: int = 0


class ScaleTracker:
    """Smooths per-frame fits in log-scale and carries the last one forward while the LiDAR is gone.

    ``alpha``: weight of a new fit (EMA). A fit whose scale disagrees with the state by more than
    ``reset_ratio`` (e.g. a new camera, or the first fit after a long gap) replaces it instead.
    Fits with ``residual > max_residual`` are rejected (degraded LiDAR or a scene the model gets wrong).
    """

    def __init__(
        self,
        kind: str = INVERSE,
        alpha: float = 0.3,
        half_life_s: float = 5.0,
        residual_ref: float = 0.15,
        max_residual: float = 0.5,
        reset_ratio: float = 2.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown scale kind {kind!r}; kinds: {', '.join(KINDS)}")
        if not 0 < alpha <= 1 or half_life_s <= 0 or residual_ref <= 0:
            raise ValueError("need 0 < alpha <= 1, half_life_s > 0, residual_ref > 0")
        self.kind = kind
        self.alpha = float(alpha)
        self.half_life_s = float(half_life_s)
        self.residual_ref = float(residual_ref)
        self.max_residual = float(max_residual)
        self.reset_ratio = float(reset_ratio)
        self.state: ScaleState | None = None
        self.last_rejection = ""

    def update(self, fit: ScaleFit) -> bool:
        """Fold in a frame's fit; False (and :attr:`last_rejection`) when the fit is not trusted."""
        if fit.kind != self.kind:
            raise ValueError(f"fit of kind {fit.kind!r} given to a {self.kind!r} tracker")
        if fit.residual > self.max_residual:
            self.last_rejection = f"fit residual {fit.residual:.3f} > max_residual {self.max_residual}"
            return False
        ls = math.log(fit.scale)
        st = self.state
        if st is None or abs(ls - st.log_scale) > math.log(self.reset_ratio):
            self.state = ScaleState(self.kind, ls, fit.shift, fit.residual, fit.stamp_ns, 1)
        else:
            a = self.alpha
            st.log_scale = (1 - a) * st.log_scale + a * ls
            st.shift = (1 - a) * st.shift + a * fit.shift
            st.residual = (1 - a) * st.residual + a * fit.residual
            st.stamp_ns = max(st.stamp_ns, fit.stamp_ns)
            st.n_fits += 1
        self.last_rejection = ""
        return True

    @property
    def scale(self) -> float:
        return math.exp(self.state.log_scale) if self.state else float("nan")

    def age_s(self, stamp_ns: int) -> float:
        """Seconds from the last good fit to ``stamp_ns`` (inf before the first fit)."""
        return (stamp_ns - self.state.stamp_ns) * 1e-9 if self.state else math.inf

    def confidence(self, stamp_ns: int) -> float:
        """0..1: halves every ``half_life_s`` since the last fit, times ``1 / (1 + residual / residual_ref)``."""
        if self.state is None:
            return 0.0
        age = max(0.0, self.age_s(stamp_ns))
        return float(0.5 ** (age / self.half_life_s) / (1.0 + self.state.residual / self.residual_ref))

    def apply(self, pred: np.ndarray, max_depth_m: float, min_depth_m: float = 0.1) -> np.ndarray:
        if self.state is None:
            raise ScaleFitError("no scale fit yet: the LiDAR has not been seen with this camera")
        return apply_scale(pred, self.kind, self.scale, self.state.shift, max_depth_m, min_depth_m)


def blend(mono_m: np.ndarray, guided_m: np.ndarray, weight_guided: float) -> np.ndarray:
    """Handover: ``w * guided + (1 - w) * mono`` in inverse depth; either alone where the other is NaN."""
    w = float(np.clip(weight_guided, 0.0, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        im, ig = 1.0 / mono_m, 1.0 / guided_m
        inv = np.where(np.isfinite(im) & np.isfinite(ig), w * ig + (1 - w) * im, np.where(np.isfinite(ig), ig, im))
        return np.where(inv > 0, 1.0 / inv, np.nan).astype(np.float32)
