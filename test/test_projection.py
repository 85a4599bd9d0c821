"""LiDAR projection: z-buffer, parallax occlusion filter, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import OcclusionFilter, remove_occluded, scan_to_depth, zbuffer
from depth_nodes.errors import EmptyInputError, InputShapeError, NonFiniteInputError

IDENTITY = np.eye(4)


def _pixel_ray_points(cam: CameraModel, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Optical-frame points that project exactly to pixel centres ``uv`` at depth ``z``."""
    x = (uv[:, 0] - cam.cx) / cam.fx * z
    y = (uv[:, 1] - cam.cy) / cam.fy * z
    return np.column_stack([x, y, z])


def test_known_point_lands_on_known_pixel_with_its_depth(kitti_camera):
    pts = _pixel_ray_points(kitti_camera, np.array([[100.0, 200.0]]), np.array([12.5]))
    depth = scan_to_depth(pts, IDENTITY, kitti_camera, occlusion=None).depth
    assert depth[200, 100] == pytest.approx(12.5, abs=1e-5)
    assert np.count_nonzero(depth) == 1


def test_lidar_frame_transform_is_applied(kitti_camera):
    # LiDAR frame: x forward, y left, z up (REP 103); optical: z forward, x right, y down.
    T_cam_lidar = np.array(
        [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0, 0, 0, 1.0]]
    )
    sd = scan_to_depth(np.array([[20.0, 0.0, 0.0]]), T_cam_lidar, kitti_camera, occlusion=None)
    v, u = np.argwhere(sd.depth > 0)[0]
    assert (u, v) == (round(kitti_camera.cx), round(kitti_camera.cy))
    assert sd.depth[v, u] == pytest.approx(20.0)


def test_zbuffer_keeps_the_nearest_return(kitti_camera):
    uv = np.array([[50.0, 60.0]] * 3)
    pts = _pixel_ray_points(kitti_camera, uv, np.array([30.0, 7.0, 19.0]))
    depth = scan_to_depth(pts, IDENTITY, kitti_camera, occlusion=None).depth
    assert depth[60, 50] == pytest.approx(7.0)
    assert zbuffer(np.array([5, 5, 1]), np.array([3.0, 2.0, 9.0]), (2, 4))[1, 1] == pytest.approx(2.0)


def _wall_and_background(cam: CameraModel, ring_px: int = 5, col_px: int = 2):
    """A fronto-parallel wall at 8 m sampled like LiDAR rings, with background returns at 30 m leaking
    between its rings (parallax), and a visible background strip to the right of the wall."""
    wall = [(u, v) for v in range(100, 200, ring_px) for u in range(300, 400, col_px)]
    leak = [(u + 1, v + ring_px // 2) for (u, v) in wall[::7] if v + ring_px < 200 and u + 2 < 400]
    visible = [(u, v) for v in range(100, 200, ring_px) for u in range(420, 480, col_px)]
    uv = np.array(wall + leak + visible, dtype=float)
    z = np.array([8.0] * len(wall) + [30.0] * len(leak) + [30.0] * len(visible))
    return _pixel_ray_points(cam, uv, z), np.array(leak), np.array(visible)


def test_occlusion_filter_removes_hidden_and_keeps_visible(kitti_camera):
    pts, leak, visible = _wall_and_background(kitti_camera)
    raw = scan_to_depth(pts, IDENTITY, kitti_camera, occlusion=None).depth
    sd = scan_to_depth(pts, IDENTITY, kitti_camera, occlusion=OcclusionFilter())
    assert (raw[leak[:, 1], leak[:, 0]] == 30.0).all()  # present before filtering
    assert (sd.depth[leak[:, 1], leak[:, 0]] == 0).all()  # every leaked background return removed
    assert (sd.depth[visible[:, 1], visible[:, 0]] == 30.0).all()  # visible background kept
    wall_px = sd.depth[100:200, 300:400]
    assert np.count_nonzero(wall_px == 8.0) == 50 * 20  # foreground untouched
    assert sd.n_occluded == len(leak)


def test_occlusion_filter_keeps_a_slanted_road(kitti_camera):
    # Ground plane 1.65 m below the camera sampled by 40 rings: far returns sit above near ones in the image,
    # but nothing encloses them, so nothing may be removed.
    el = np.deg2rad(np.linspace(-24.0, -1.0, 40))
    az = np.deg2rad(np.linspace(-40, 40, 900))
    E, A = np.meshgrid(el, az, indexing="ij")
    rng_m = 1.65 / np.sin(-E)
    pts = np.column_stack(
        [
            (rng_m * np.cos(E) * np.sin(A)).ravel(),
            np.full(E.size, 1.65),
            (rng_m * np.cos(E) * np.cos(A)).ravel(),
        ]
    )
    sd = scan_to_depth(pts, IDENTITY, kitti_camera)
    assert sd.n_in_view > 10000
    assert sd.n_occluded / sd.n_in_view < 0.002


def test_remove_occluded_on_empty_image():
    out, hidden = remove_occluded(np.zeros((10, 12), np.float32))
    assert not out.any() and not hidden.any()


def test_bad_scans_give_clear_errors(kitti_camera):
    with pytest.raises(InputShapeError, match="N x 3"):
        scan_to_depth(np.zeros((10, 2)), IDENTITY, kitti_camera)
    with pytest.raises(InputShapeError):
        scan_to_depth(np.zeros(30), IDENTITY, kitti_camera)
    with pytest.raises(EmptyInputError, match="empty"):
        scan_to_depth(np.zeros((0, 4)), IDENTITY, kitti_camera)
    bad = np.array([[0.0, 0.0, 10.0], [np.nan, 0.0, 5.0], [np.inf, 1.0, 2.0]])
    with pytest.raises(NonFiniteInputError, match="2 of 3"):
        scan_to_depth(bad, IDENTITY, kitti_camera)
    sd = scan_to_depth(bad, IDENTITY, kitti_camera, on_nonfinite="drop")
    assert sd.n_nonfinite == 2 and np.count_nonzero(sd.depth) == 1
    with pytest.raises(EmptyInputError, match="no finite"):
        scan_to_depth(np.full((4, 3), np.nan), IDENTITY, kitti_camera, on_nonfinite="drop")


def test_zero_focal_length_is_rejected():
    from depth_nodes.errors import CalibrationError

    with pytest.raises(CalibrationError, match="focal"):
        CameraModel(100, 100, np.diag([0.0, 0.0, 1.0]))
