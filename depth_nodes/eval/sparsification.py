"""Sparsification curves and AUSE (area under the sparsification error) for a confidence map.

Remove pixels in order of increasing confidence and track the error (RMSE or MAE) of the remaining ones,
normalised by the error of the full set; the *oracle* removes pixels by decreasing true error, the best
any confidence could do. AUSE is the area between the two curves over the removed fraction (0 = perfect
ranking; a random confidence gives roughly the area under the oracle). Ties in confidence are broken in
a seeded random order so that a constant confidence behaves like a random one rather than like the
pixels' raster order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_nodes.errors import InputShapeError

#: Default removed fractions: 0 .. 0.99 in 50 steps.
DEFAULT_FRACTIONS = np.linspace(0.0, 0.99, 50)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 only has trapz


@dataclass
class Sparsification:
    """Curves (normalised error of the remaining pixels vs removed fraction) and their AUSE."""

    fractions: np.ndarray
    curve: np.ndarray
    oracle: np.ndarray
    ause: float
    metric: str

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "ause": self.ause,
            "fractions": self.fractions.tolist(),
            "curve": self.curve.tolist(),
            "oracle": self.oracle.tolist(),
        }


def _remaining_error(err_sorted: np.ndarray, fractions: np.ndarray, metric: str) -> np.ndarray:
    """Error of ``err_sorted[k:]`` for k = floor(fraction * n) (suffix sums, no per-step loop)."""
    n = err_sorted.size
    vals = err_sorted**2 if metric == "rmse" else err_sorted
    suffix = np.concatenate([np.cumsum(vals[::-1])[::-1], [0.0]])
    k = np.minimum((fractions * n).astype(np.int64), n - 1)
    mean = suffix[k] / (n - k)
    return np.sqrt(mean) if metric == "rmse" else mean


def oracle_curve(
    error: np.ndarray, *, metric: str = "rmse", fractions: np.ndarray = DEFAULT_FRACTIONS
) -> np.ndarray:
    """Oracle sparsification (largest true errors removed first), normalised; NaN if the error is all 0."""
    err = np.abs(np.asarray(error, dtype=np.float64)).ravel()
    fractions = np.asarray(fractions, dtype=np.float64)
    if err.size == 0:
        return np.full(fractions.shape, np.nan)
    worst_first = np.sort(err)[::-1]
    full = _remaining_error(worst_first, np.zeros(1), metric)[0]
    if not full > 0:
        return np.full(fractions.shape, np.nan)
    return _remaining_error(worst_first, fractions, metric) / full


def sparsification(
    error: np.ndarray,
    confidence: np.ndarray,
    *,
    metric: str = "rmse",
    fractions: np.ndarray = DEFAULT_FRACTIONS,
    seed: int = 0,
    oracle: np.ndarray | None = None,
) -> Sparsification:
    """Sparsification of absolute errors ``error`` (any units) ranked by ``confidence`` (higher = better).

    ``error`` and ``confidence`` are same-shape arrays of the scored pixels (non-finite confidence counts
    as 0). ``oracle`` may pass a precomputed :func:`oracle_curve` of the same errors (it is shared by all
    confidences of one frame). Returns NaN AUSE when there are no pixels or the full-set error is 0.
    """
    if metric not in ("rmse", "mae"):
        raise ValueError(f"metric must be 'rmse' or 'mae', got {metric!r}")
    err = np.abs(np.asarray(error, dtype=np.float64)).ravel()
    conf = np.nan_to_num(np.asarray(confidence, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0).ravel()
    if err.shape != conf.shape:
        raise InputShapeError(f"error ({err.size} values) and confidence ({conf.size}) differ in size")
    fractions = np.asarray(fractions, dtype=np.float64)
    nan_curve = np.full(fractions.shape, np.nan)
    if oracle is None:
        oracle = oracle_curve(err, metric=metric, fractions=fractions)
    if err.size == 0 or not np.isfinite(oracle[0]):
        return Sparsification(fractions, nan_curve, nan_curve, float("nan"), metric)
    # Ascending confidence, ties in random order: a stable sort of a seeded random permutation.
    perm = np.random.default_rng(seed).permutation(err.size)
    by_conf = perm[np.argsort(conf[perm], kind="stable")]
    ranked = err[by_conf]
    full = _remaining_error(ranked, np.zeros(1), metric)[0]
    curve = _remaining_error(ranked, fractions, metric) / full
    ause = float(_trapezoid(curve - oracle, fractions))
    return Sparsification(fractions, curve, np.asarray(oracle, np.float64), ause, metric)


def random_confidence(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Seeded uniform random confidence, the reference a useful confidence must beat."""
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def mean_curves(items: list[Sparsification]) -> Sparsification | None:
    """Mean curve and mean AUSE over frames (frames with NaN AUSE skipped); None if none is usable."""
    ok = [s for s in items if np.isfinite(s.ause)]
    if not ok:
        return None
    return Sparsification(
        ok[0].fractions,
        np.mean([s.curve for s in ok], axis=0),
        np.mean([s.oracle for s in ok], axis=0),
        float(np.mean([s.ause for s in ok])),
        ok[0].metric,
    )
