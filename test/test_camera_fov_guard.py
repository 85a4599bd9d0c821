"""FOV / validity guard: a 360 deg scan seen by an 80 deg, strongly distorted camera puts no return from
outside the field of view into the image (plumb_bob, rational_polynomial, equidistant), while points inside
the valid region still project exactly as OpenCV does."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import scan_to_depth

W, H = 1280, 720
HALF_HFOV_DEG = 40.0  # 80 deg horizontal field of view

# Strong barrel models whose radial function folds back (d r_d / d theta < 0) past the image corner.
MODELS = {
    "plumb_bob": [-0.32, 0.09, 0.0, 0.0, -0.01],
    "rational_polynomial": [-0.24, 0.025, 0.0, 0.0, -0.002, 0.01, 0.0, 0.0],
    "equidistant": [-0.25, 0.0, 0.0, 0.0],
}


def _rd(model: str, D: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Distorted radius at incidence theta, written out here independently of the code under test."""
    if model == "equidistant":
        return theta * (1 + D[0] * theta**2 + D[1] * theta**4 + D[2] * theta**6 + D[3] * theta**8)
    r2 = np.tan(theta) ** 2
    num = 1 + D[0] * r2 + D[1] * r2**2 + D[4] * r2**3
    den = 1 + D[5] * r2 + D[6] * r2**2 + D[7] * r2**3 if model == "rational_polynomial" else 1.0
    return np.tan(theta) * num / den


def _camera(model: str) -> tuple[CameraModel, float]:
    """The camera and the incidence angle (deg) of its image corner."""
    D = np.array(MODELS[model])
    f = (W / 2) / _rd(model, D, np.radians(HALF_HFOV_DEG))
    K = np.array([[f, 0, W / 2 - 0.5], [0, f, H / 2 - 0.5], [0, 0, 1]])
    corner_rd = np.hypot(W / 2, H / 2) / f
    theta = np.radians(np.linspace(0, 89, 89001))
    rd = _rd(model, D, theta)
    rising = np.flatnonzero(np.diff(rd) <= 0)
    top = rising[0] if rising.size else theta.size - 1
    assert corner_rd < rd[top], "test camera: the image must lie inside the model's valid region"
    corner_deg = float(np.degrees(np.interp(corner_rd, rd[: top + 1], theta[: top + 1])))
    return CameraModel(W, H, K, D, model), corner_deg


def _scan_360(range_m: float = 10.0) -> np.ndarray:
    """A spinning-LiDAR-like sweep around the camera: 0.2 deg azimuth, -30..30 deg elevation (optical frame)."""
    az, el = np.meshgrid(np.radians(np.arange(-180, 180, 0.2)), np.radians(np.arange(-30, 30.1, 1.0)))
    x = range_m * np.cos(el) * np.sin(az)
    y = -range_m * np.sin(el)
    z = range_m * np.cos(el) * np.cos(az)
    return np.column_stack([x.ravel(), y.ravel(), z.ravel()])


def _incidence_deg(pts: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(np.hypot(pts[:, 0], pts[:, 1]), pts[:, 2]))


def _in_image(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u >= -0.5) & (u < W - 0.5) & (v >= -0.5) & (v < H - 0.5)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_360_scan_puts_no_return_from_outside_the_fov_into_the_image(model):
    cam, corner_deg = _camera(model)
    pts = _scan_360()
    theta = _incidence_deg(pts)
    # Without the guard (the bare distortion formula) side returns fold back into the picture:
    front = pts[:, 2] > 0.1
    x, y = (
        (pts[front, 0] / pts[front, 2]).astype(np.float32),
        (pts[front, 1] / pts[front, 2]).astype(np.float32),
    )
    xd, yd = cam.distort(x, y)
    folded = _in_image(cam.fx * xd + cam.cx, cam.fy * yd + cam.cy) & (theta[front] > corner_deg + 1)
    assert folded.sum() > 500, f"test scene: the {model} model should fold returns into the image"
    # With it, every return in the image comes from inside the field of view ...
    u, v, _ = cam.project(pts)
    inside = _in_image(u, v)
    assert theta[inside].max() <= corner_deg + 0.01
    # ... and none that belongs there is lost.
    truly_visible = _in_image(cam.fx * xd + cam.cx, cam.fy * yd + cam.cy) & (theta[front] <= corner_deg)
    assert truly_visible.sum() > 10_000
    assert abs(int(inside.sum()) - int(truly_visible.sum())) <= 2  # float32 rounding at the image border
    # The whole projection path (scan_to_depth) uses the guarded projection.
    sparse = scan_to_depth(pts, np.eye(4), cam, occlusion=None)
    assert sparse.n_in_view == inside.sum()


@pytest.mark.parametrize("model", sorted(MODELS))
def test_strong_models_match_opencv_inside_the_valid_region(model, rng):
    cam, corner_deg = _camera(model)
    n = 400
    theta = np.radians(rng.uniform(0, corner_deg, n))
    phi = rng.uniform(-np.pi, np.pi, n)
    z = rng.uniform(1, 40, n)
    pts = np.column_stack([np.tan(theta) * np.cos(phi) * z, np.tan(theta) * np.sin(phi) * z, z])
    u, v, _ = cam.project(pts)
    assert np.isfinite(u).all()
    if model == "equidistant":
        ref, _ = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), cam.K, cam.D)
    else:
        ref, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), cam.K, cam.D)
    np.testing.assert_allclose(np.column_stack([u, v]), ref.reshape(-1, 2), atol=5e-3)


def test_max_incidence_angle_is_a_hard_limit():
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    cam = CameraModel(640, 480, K, max_incidence_deg=30.0)
    pts = np.array([[np.tan(np.radians(29.9)), 0, 1.0], [np.tan(np.radians(30.1)), 0, 1.0]])
    u, _, _ = cam.project(pts)
    assert np.isfinite(u[0]) and np.isnan(u[1])
    with pytest.raises(ValueError, match="max_incidence_deg"):
        CameraModel(640, 480, K, max_incidence_deg=95.0)
