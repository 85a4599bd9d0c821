"""CameraInfo read as image_geometry reads it: raw images with K + D (after R^T), rectified images with P
(Tx/Ty included), and a published depth/camera_info that describes exactly the published depth image."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from depth_nodes.core.projection import depth_to_points, scan_to_depth
from depth_nodes.errors import ConversionError
from depth_nodes.msgs.camera_info import camera_info_to_model, published_info_fields, resolve_camera_model

K = np.array([[720.0, 0.0, 640.0], [0.0, 722.0, 360.0], [0.0, 0.0, 1.0]])
D = [-0.3, 0.1, 0.001, -0.0005, -0.02]
R = cv2.Rodrigues(np.array([0.01, -0.02, 0.005]))[0]  # a stereo rectification rotation
P_LEFT = np.array([[700.0, 0.0, 630.0, 0.0], [0.0, 700.0, 355.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
BASELINE_M = 0.54
P_RIGHT = P_LEFT.copy()
P_RIGHT[0, 3] = -700.0 * BASELINE_M  # Tx = -fx' B


def info(P=P_LEFT, d=D, r=R, **kw):
    roi = SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0, do_rectify=False)
    base = dict(
        width=1280, height=720, distortion_model="plumb_bob", d=list(d), k=K.reshape(-1).tolist(),
        r=np.asarray(r).reshape(-1).tolist(), p=np.asarray(P).reshape(-1).tolist(), binning_x=0, binning_y=0,
        roi=roi,
    )  # fmt: skip
    base.update(kw)
    return SimpleNamespace(**base)


def p_pixel(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    uvw = P @ np.append(X, 1.0)
    return uvw[:2] / uvw[2]


def test_rectified_camera_info_projects_a_known_point_to_the_pixel_p_gives():
    X = np.array([1.5, -0.4, 12.0])
    expected = p_pixel(P_LEFT, X)  # u = fx' X / Z + cx' = 717.5, v = fy' Y / Z + cy' = 331.67
    assert expected == pytest.approx([717.5, 355.0 - 700.0 * 0.4 / 12.0])
    cam = camera_info_to_model(info(), "rectified")
    assert not cam.has_distortion and cam.fx == 700.0 and cam.T_proj_frame is None
    u, v, z = cam.project(X[None])
    np.testing.assert_allclose([u[0], v[0]], expected, atol=1e-3)
    # the node's path: scan -> sparse depth, with the camera frame = the LiDAR frame here
    sparse = scan_to_depth(X[None], np.eye(4), cam, occlusion=None)
    row, col = np.argwhere(sparse.depth > 0)[0]
    assert (col, row) == tuple(np.floor(expected + 0.5).astype(int))
    assert sparse.depth[row, col] == pytest.approx(12.0)
    # K + D would have put it elsewhere: the difference is what rectification removed
    raw = camera_info_to_model(info(r=np.eye(3)), "raw")
    ur, vr, _ = raw.project(X[None])
    assert np.hypot(ur[0] - expected[0], vr[0] - expected[1]) > 5


def test_stereo_right_camera_uses_tx_as_image_geometry_and_back_projects_to_the_same_point():
    cam = camera_info_to_model(info(P=P_RIGHT), "rectified")
    np.testing.assert_allclose(cam.T_proj_frame[:3, 3], [-BASELINE_M, 0, 0])
    X = np.array([2.0, 0.5, 8.0])
    # image_geometry project3dToPixel: u = (fx X + Tx) / Z + cx, v = (fy Y + Ty) / Z + cy
    expected = [(700.0 * 2.0 - 700.0 * BASELINE_M) / 8.0 + 630.0, (700.0 * 0.5) / 8.0 + 355.0]
    sparse = scan_to_depth(X[None], np.eye(4), cam, occlusion=None)
    row, col = np.argwhere(sparse.depth > 0)[0]
    assert (col, row) == tuple(np.floor(np.array(expected) + 0.5).astype(int))
    # back-projection undoes the offset: the pixel's point is in the camera frame again
    depth = np.full(cam.shape, np.nan, np.float32)
    depth[row, col] = 8.0
    xyz, _ = depth_to_points(depth, cam)
    pixel_x = ((col - 630.0) * 8.0 + 700.0 * BASELINE_M) / 700.0
    np.testing.assert_allclose(xyz[0], [pixel_x, (row - 355.0) * 8.0 / 700.0, 8.0], atol=1e-4)


def test_raw_camera_info_projects_like_unrectify_point():
    """raw = unrectifyPoint(project3dToPixel(X)): rotate by R^T (and P's offset), then K + D (OpenCV)."""
    cam = camera_info_to_model(info(P=P_RIGHT), "raw")
    assert cam.distortion_model == "plumb_bob" and cam.fx == 720.0
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.uniform(-4, 4, 50), rng.uniform(-2, 2, 50), rng.uniform(5, 30, 50)])
    sparse = scan_to_depth(X, np.eye(4), cam, occlusion=None)
    b = np.array([-BASELINE_M, 0.0, 0.0])
    ref, _ = cv2.projectPoints(X.reshape(-1, 1, 3), cv2.Rodrigues(R.T)[0], R.T @ b, K, np.array(D))
    ref = np.floor(ref.reshape(-1, 2) + 0.5).astype(int)
    z_cam = (X + b) @ R  # (R^T (X + b)) per row
    ok = (ref[:, 0] >= 0) & (ref[:, 0] < 1280) & (ref[:, 1] >= 0) & (ref[:, 1] < 720)
    assert ok.sum() > 30
    np.testing.assert_allclose(sparse.depth[ref[ok, 1], ref[ok, 0]], z_cam[ok, 2], rtol=1e-5)
    assert np.count_nonzero(sparse.depth) == len(set(map(tuple, ref[ok])))


@pytest.mark.parametrize(
    ("setting", "d", "topic", "kind"),
    [
        ("auto", D, "/cam/image_rect_color", "rectified"),
        ("auto", D, "/cam/image_rect", "rectified"),
        ("auto", D, "/cam/rectified/image", "rectified"),
        ("auto", D, "/cam/image_raw", "raw"),
        ("auto", D, "/cam/direct/image", "raw"),  # "direct" is not "rect"
        ("auto", D, "", "raw"),
        ("auto", [0.0] * 5, "/cam/image_raw", "rectified"),  # no distortion: image_geometry uses P
        ("raw", D, "/cam/image_rect", "raw"),
        ("rectified", D, "/cam/image_raw", "rectified"),
    ],
)
def test_camera_model_resolution(setting, d, topic, kind):
    got, reason = resolve_camera_model(setting, info(d=d), topic)
    assert got == kind and reason


def test_camera_model_errors():
    with pytest.raises(ConversionError, match="camera_model must be one of auto, raw, rectified"):
        camera_info_to_model(info(), "distorted")
    with pytest.raises(ConversionError, match="R is not a rotation"):
        camera_info_to_model(info(r=2 * np.eye(3)), "raw")
    with pytest.raises(ConversionError, match="p must have 12 values"):
        camera_info_to_model(info(P=np.ones(9)), "rectified")


def test_missing_p_and_r_fall_back_to_k_and_identity():
    cam = camera_info_to_model(info(P=np.zeros(12), r=np.zeros(9), d=[0.0] * 5))
    np.testing.assert_array_equal(cam.K, K)
    assert cam.T_proj_frame is None


def test_published_depth_info_describes_the_published_image():
    fields = published_info_fields(info(P=P_RIGHT), "rectified")
    np.testing.assert_array_equal(np.reshape(fields["k"], (3, 3)), P_RIGHT[:, :3])
    assert fields["d"] == [0.0] * 5 and fields["distortion_model"] == "plumb_bob"
    np.testing.assert_array_equal(np.reshape(fields["r"], (3, 3)), np.eye(3))
    np.testing.assert_array_equal(np.reshape(fields["p"], (3, 4)), P_RIGHT)
    # what depth_image_proc (or this node) reads back from it is the camera the depth was made with
    published = info(P=fields["p"], r=fields["r"], d=fields["d"], k=fields["k"])
    assert camera_info_to_model(published).same_as(camera_info_to_model(info(P=P_RIGHT), "rectified"))
    raw = published_info_fields(info(), "raw")
    assert raw["d"] == D and raw["k"] == K.reshape(-1).tolist() and raw["p"] == P_LEFT.reshape(-1).tolist()
