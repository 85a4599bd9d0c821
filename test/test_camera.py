"""Camera model: analytic projection, OpenCV parity for every distortion model, back-projection, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import depth_to_points
from depth_nodes.errors import CalibrationError, InputShapeError


def test_known_point_projects_to_known_pixel(kitti_camera):
    # X = 2 m right, Y = 1 m down, Z = 10 m ahead: u = fx*X/Z + cx, v = fy*Y/Z + cy
    u, v, z = kitti_camera.project(np.array([[2.0, 1.0, 10.0]]))
    assert u[0] == pytest.approx(721.5377 * 0.2 + 609.5593, abs=1e-3)
    assert v[0] == pytest.approx(721.5377 * 0.1 + 172.854, abs=1e-3)
    assert z[0] == pytest.approx(10.0)


def test_points_behind_camera_get_nan(kitti_camera):
    u, v, _ = kitti_camera.project(np.array([[0.0, 0.0, -5.0], [0.0, 0.0, 0.0]]))
    assert np.isnan(u).all() and np.isnan(v).all()


@pytest.mark.parametrize(
    "model,D",
    [
        ("plumb_bob", [-0.28, 0.07, 0.0012, -0.0008, 0.01]),
        ("rational_polynomial", [0.5, -0.1, 0.001, 0.002, 0.01, 0.8, -0.05, 0.02]),
    ],
)
def test_distortion_matches_opencv(model, D, rng):
    K = np.array([[500.0, 0.0, 320.0], [0.0, 510.0, 240.0], [0.0, 0.0, 1.0]])
    cam = CameraModel(640, 480, K, np.array(D), model)
    pts = np.column_stack([rng.uniform(-3, 3, 200), rng.uniform(-2, 2, 200), rng.uniform(2, 30, 200)])
    u, v, _ = cam.project(pts)
    ref, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, np.array(D))
    ref = ref.reshape(-1, 2)
    kept = np.isfinite(u)
    assert 100 < kept.sum() < 200  # the FOV guard drops the far off-axis points, nothing else
    np.testing.assert_allclose(np.column_stack([u, v])[kept], ref[kept], atol=2e-3)
    in_image = (ref[:, 0] >= 0) & (ref[:, 0] < 640) & (ref[:, 1] >= 0) & (ref[:, 1] < 480)
    assert kept[in_image].all()


def test_equidistant_matches_opencv_fisheye(rng):
    K = np.array([[300.0, 0.0, 320.0], [0.0, 300.0, 240.0], [0.0, 0.0, 1.0]])
    D = np.array([0.05, -0.01, 0.002, -0.0005])
    cam = CameraModel(640, 480, K, D, "equidistant")
    pts = np.column_stack([rng.uniform(-3, 3, 200), rng.uniform(-2, 2, 200), rng.uniform(1, 20, 200)])
    u, v, _ = cam.project(pts)
    ref, _ = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D)
    np.testing.assert_allclose(np.column_stack([u, v]), ref.reshape(-1, 2), atol=2e-3)


@pytest.mark.parametrize(
    "model,D",
    [
        ("none", []),
        ("plumb_bob", [-0.2, 0.05, 0.001, -0.001, 0.0]),
        ("equidistant", [0.05, -0.01, 0.002, 0.0]),
    ],
)
def test_backprojection_inverts_projection(model, D):
    K = np.array([[400.0, 0.0, 160.5], [0.0, 400.0, 120.5], [0.0, 0.0, 1.0]])
    cam = CameraModel(320, 240, K, np.array(D), model)
    depth = np.linspace(2.0, 40.0, 320 * 240, dtype=np.float32).reshape(240, 320)
    xyz, _ = depth_to_points(depth, cam)
    u, v, z = cam.project(xyz)
    uu, vv = np.meshgrid(np.arange(320), np.arange(240))
    np.testing.assert_allclose(u, uu.ravel(), atol=0.02)
    np.testing.assert_allclose(v, vv.ravel(), atol=0.02)
    np.testing.assert_allclose(z, depth.ravel(), rtol=1e-6)


def test_from_kitti_projection_recovers_baseline():
    P = np.array(
        [[721.5377, 0, 609.5593, 44.85728], [0, 721.5377, 172.854, 0.2163791], [0, 0, 1, 0.002745884]]
    )
    cam, T = CameraModel.from_kitti_projection(P, 1242, 375)
    np.testing.assert_allclose(cam.K @ T[:3, 3], P[:, 3], atol=1e-9)
    assert T[0, 3] == pytest.approx(0.0599, abs=1e-3)  # cam2 is ~6 cm left of cam0


def test_crop_and_scale_keep_rays(kitti_camera):
    crop = kitti_camera.crop(13, 23, 1216, 352)
    u, v, _ = kitti_camera.project(np.array([[1.0, 0.5, 8.0]]))
    uc, vc, _ = crop.project(np.array([[1.0, 0.5, 8.0]]))
    assert (uc[0], vc[0]) == pytest.approx((u[0] - 13, v[0] - 23), abs=1e-4)
    half = kitti_camera.scaled(621, 187)
    uh, _, _ = half.project(np.array([[1.0, 0.5, 8.0]]))
    assert uh[0] == pytest.approx((u[0] + 0.5) * 0.5 - 0.5, abs=1e-3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(K=np.diag([0.0, 500.0, 1.0])), "focal"),
        (dict(K=np.diag([-500.0, 500.0, 1.0])), "focal"),
        (dict(K=np.full((3, 3), np.nan)), "NaN"),
        (dict(K=np.eye(2)), "3x3"),
        (dict(K=np.diag([500.0, 500.0, 1.0]), D=[0.1, 0.2], distortion_model="plumb_bob"), "coefficients"),
        (
            dict(K=np.diag([500.0, 500.0, 1.0]), D=[0.1] * 5, distortion_model="fisheye62"),
            "unknown distortion",
        ),
    ],
)
def test_bad_camera_parameters_give_clear_errors(kwargs, match):
    with pytest.raises(CalibrationError, match=match):
        CameraModel(640, 480, **kwargs)


def test_bad_image_size_and_point_shapes(kitti_camera):
    with pytest.raises(CalibrationError, match="image size"):
        CameraModel(0, 480, np.diag([500.0, 500.0, 1.0]))
    with pytest.raises(InputShapeError, match="N x 3"):
        kitti_camera.project(np.zeros((5, 2)))
