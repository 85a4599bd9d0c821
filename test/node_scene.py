"""A small exact scene for the pipeline and node tests: a ground plane and a box seen by a 320 x 96 camera.

Dense depth is ray-cast analytically per pixel; the LiDAR scan is a subset of those pixels back-projected
(so every return is visible from the camera and projects back onto its own pixel) and expressed in a
LiDAR frame (x forward, y left, z up) offset from the camera by :data:`T_CAM_LIDAR`.
"""

from __future__ import annotations

import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.transforms import invert, matrix_to_quaternion, transform_points

WIDTH, HEIGHT = 320, 96
K = np.array([[200.0, 0.0, 160.0], [0.0, 200.0, 48.0], [0.0, 0.0, 1.0]])
GROUND_Y_M = 1.5  # the ground plane, metres below the camera (optical y points down)
BOX = {"x": (-1.0, 1.2), "y": (-0.5, GROUND_Y_M), "z": 8.0}  # front face of a box, metres

#: LiDAR axes (x fwd, y left, z up) -> optical axes (x right, y down, z fwd), plus a mounting offset.
R_CAM_LIDAR = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
T_CAM_LIDAR = np.eye(4)
T_CAM_LIDAR[:3, :3] = R_CAM_LIDAR
T_CAM_LIDAR[:3, 3] = [0.05, -0.08, -0.27]
LIDAR_XYZ = T_CAM_LIDAR[:3, 3].tolist()
LIDAR_QUAT_XYZW = matrix_to_quaternion(R_CAM_LIDAR).tolist()


def camera() -> CameraModel:
    return CameraModel(WIDTH, HEIGHT, K)


def dense_depth(cam: CameraModel | None = None) -> np.ndarray:
    """H x W float32 ground-truth depth in metres; NaN where the ray hits nothing (sky)."""
    cam = cam or camera()
    rays = cam.pixel_rays()
    x, y = rays[..., 0].astype(np.float64), rays[..., 1].astype(np.float64)
    depth = np.full(x.shape, np.nan)
    down = y > 1e-6
    depth[down] = GROUND_Y_M / y[down]
    z = BOX["z"]
    on_box = (x * z >= BOX["x"][0]) & (x * z <= BOX["x"][1]) & (y * z >= BOX["y"][0]) & (y * z <= BOX["y"][1])
    hit = on_box & ~(depth < z)
    depth[hit] = z
    depth[depth > 60.0] = np.nan
    return depth.astype(np.float32)


def rgb_image(cam: CameraModel | None = None) -> np.ndarray:
    """H x W x 3 uint8 RGB: grey textured ground, red box, blue sky."""
    depth = dense_depth(cam)
    h, w = depth.shape
    img = np.zeros((h, w, 3), np.uint8)
    img[...] = (90, 140, 220)
    ground = np.isfinite(depth) & (depth != BOX["z"])
    checker = ((np.arange(w)[None, :] // 8 + np.arange(h)[:, None] // 4) % 2).astype(np.uint8)
    img[ground] = (100 + 40 * checker[ground])[:, None]
    img[depth == BOX["z"]] = (200, 30, 30)
    return img


def lidar_scan(
    seed: int = 0, rows_every: int = 4, cols_every: int = 2, cam: CameraModel | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(points_lidar N x 3 float32, sparse_expected H x W float32)``: ring-like rows of returns.

    ``sparse_expected`` holds each return's camera depth at its pixel (0 elsewhere).
    """
    cam = cam or camera()
    depth = dense_depth(cam)
    rng = np.random.default_rng(seed)
    mask = np.zeros(depth.shape, bool)
    mask[rows_every // 2 :: rows_every, cols_every // 2 :: cols_every] = True
    mask &= np.isfinite(depth) & (rng.random(depth.shape) > 0.1)
    vs, us = np.nonzero(mask)
    z = depth[vs, us].astype(np.float64)
    rays = cam.pixel_rays()[vs, us].astype(np.float64)
    pts_cam = np.stack([rays[:, 0] * z, rays[:, 1] * z, z], axis=1)
    pts_lidar = transform_points(invert(T_CAM_LIDAR), pts_cam)
    sparse = np.zeros(depth.shape, np.float32)
    sparse[vs, us] = depth[vs, us]
    return pts_lidar.astype(np.float32), sparse


def projected_returns(
    points_lidar: np.ndarray, sparse_true: np.ndarray, cam: CameraModel | None = None
) -> np.ndarray:
    """The returns the core keeps (default occlusion filter) with their exact depth; 0 elsewhere.

    The filter may drop a few visible returns next to the box's silhouette (ambiguous by design); at least
    95 % must survive, and every kept one must carry its exact depth.
    """
    from depth_nodes.core.projection import scan_to_depth

    kept = scan_to_depth(points_lidar, T_CAM_LIDAR, cam or camera()).depth > 0
    n_true = int(np.count_nonzero(sparse_true))
    assert np.count_nonzero(kept & (sparse_true > 0)) >= 0.95 * n_true
    return np.where(kept, sparse_true, 0.0).astype(np.float32)
