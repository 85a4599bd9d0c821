"""Where a lens distortion model is valid: the field-of-view guard applied before distorting points.

A calibrated radial polynomial is only fitted inside the image. Beyond the radius where it stops growing
(``d r_d / d r <= 0``) it folds back: with a strong barrel ``plumb_bob`` model, points 60-65 deg off-axis
map back *into* the picture, so a 360 deg LiDAR paints side returns onto the image. The guard keeps only
points whose undistorted radius is below

- the **monotonic limit** of the radial function (first zero of its derivative, or a pole of the rational
  model's denominator), found numerically on a fine grid of incidence angles, and
- a **maximum incidence angle**: by default the angle of the image corner farthest from the principal point
  (inverted through the monotonic part of the model) plus :data:`FOV_MARGIN_DEG`; nothing inside the image
  lies beyond it, and it keeps extrapolated parts of the polynomial out even where they still grow.

Tangential terms (``p1``, ``p2``) are small and left out of the limit (as OpenCV's own checks do).
Hand-written because OpenCV has no such guard: ``cv2.projectPoints`` happily folds points back.
"""

from __future__ import annotations

import numpy as np

#: Degrees added to the image corner's incidence angle for the automatic maximum incidence angle.
FOV_MARGIN_DEG = 5.0
#: Largest incidence angle the pinhole models can represent (x/z grows without bound towards 90 deg).
MAX_PINHOLE_DEG = 89.5
_GRID = np.linspace(0.0, np.radians(MAX_PINHOLE_DEG), 20001)


def radial_distorted(model: str, D: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distorted normalised radius ``r_d`` at incidence angles ``theta`` (rad), and its validity mask.

    Pinhole models (plumb_bob, rational_polynomial) map ``r = tan(theta)`` to ``r * radial(r^2)``;
    equidistant maps ``theta`` to ``theta_d`` (OpenCV fisheye). ``ok`` is False where the rational model's
    denominator is not positive (a pole) or the value is not finite.
    """
    if model == "equidistant":
        t2 = theta * theta
        rd = theta * (1 + t2 * (D[0] + t2 * (D[1] + t2 * (D[2] + t2 * D[3]))))
        return rd, np.isfinite(rd)
    r = np.tan(theta)
    r2 = r * r
    k1, k2, _, _, k3 = D[:5]
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    ok = np.ones(theta.shape, dtype=bool)
    if model == "rational_polynomial":
        den = 1 + r2 * (D[5] + r2 * (D[6] + r2 * D[7]))
        ok = den > 0
        radial = radial / np.where(ok, den, 1.0)
    rd = r * radial
    return rd, ok & np.isfinite(rd)


def monotonic_limit_rad(model: str, D: np.ndarray) -> float:
    """Largest incidence angle (rad) up to which ``r_d`` strictly increases (and stays positive)."""
    rd, ok = radial_distorted(model, D, _GRID)
    good = ok[1:] & (np.diff(rd) > 0) & (rd[1:] > 0)
    bad = np.flatnonzero(~good)
    return float(_GRID[bad[0]]) if bad.size else float(_GRID[-1])


def incidence_of_distorted_radius(model: str, D: np.ndarray, rd_target: float, limit_rad: float) -> float:
    """Incidence angle (rad) whose distorted radius is ``rd_target``, on the monotonic part ``[0, limit]``.

    Returns ``limit_rad`` when ``rd_target`` lies beyond what the valid part of the model reaches.
    """
    theta = _GRID[_GRID <= limit_rad]
    rd, _ = radial_distorted(model, D, theta)
    if rd_target >= rd[-1]:
        return float(theta[-1])
    return float(np.interp(rd_target, rd, theta))


def valid_incidence_rad(
    model: str, D: np.ndarray, corner_rd: float, max_incidence_deg: float | None = None
) -> float:
    """The guard's incidence limit (rad): min(monotonic limit, max incidence angle).

    ``corner_rd``: distorted normalised radius of the image corner farthest from the principal point.
    ``max_incidence_deg`` None -> the corner's incidence angle + :data:`FOV_MARGIN_DEG`.
    """
    limit = monotonic_limit_rad(model, D)
    if max_incidence_deg is None:
        corner = incidence_of_distorted_radius(model, D, corner_rd, limit)
        fov = corner + np.radians(FOV_MARGIN_DEG)
    else:
        fov = np.radians(float(max_incidence_deg))
    return float(min(limit, fov))
