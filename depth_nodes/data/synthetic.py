"""Deterministic synthetic KITTI-like drives: camera image, 64-ring LiDAR scan and exact dense depth.

The scene (``synthetic_scene``) is ray-cast (``synthetic_raycast``) from the KITTI 2011_09_26 camera and
velodyne poses, so camera/LiDAR parallax and occlusion artefacts are those of the real rig. Frames are
10 Hz; ``generate_drive(seed, n)`` yields the same arrays for the same seed on every machine, and frame
``i`` does not depend on ``n``.

Sensor model
- Camera: 1242 x 375, K from ``P_rect_02``; albedo textures, Lambert + ambient shading, sky gradient,
  distance haze, Gaussian pixel noise (sigma 2 levels). Surfaces farther than 150 m are sky.
- LiDAR (HDL-64E-like): 64 rings, upper block +2.0 .. -8.33 deg (1/3 deg), lower block -8.87 .. -24.8 deg
  (~1/2 deg), 2118 azimuth steps (0.17 deg) over 360 deg; max range 120 m; range noise sigma 1.5 cm;
  a return is detected when its range is below ``120 m * sqrt(reflectivity * (0.3 + 0.7 cos) / 0.5)``
  (x U(0.85, 1.15)); specular surfaces (glass, tyres, dark paint) lose half their returns; 0.5 % random
  dropouts. Ring 0 is the top ring. Points are in the velodyne frame (x forward, y left, z up).
- Ground truth: camera-frame z of the first surface hit by each pixel-centre ray, 0 for sky.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.transforms import invert
from depth_nodes.data import synthetic_scene as S
from depth_nodes.data.kitti_calib import compose_T_cam_velo
from depth_nodes.data.synthetic_raycast import SKY, CameraGrid, LidarGrid
from depth_nodes.data.synthetic_render import PrimTable, render_image, surface

GENERATOR_VERSION = "1"
FRAME_PERIOD_NS = 100_000_000
#: First frame's stamp: 2011-09-26 13:02:25.964389445 UTC, like KITTI drive 0001.
BASE_STAMP_NS = 1317042145_964389445
CAMERA_FAR_M = 150.0
LIDAR_MAX_RANGE_M = 120.0
LIDAR_RANGE_NOISE_M = 0.015
N_AZIMUTH = 2118

# KITTI 2011_09_26 calibration (cam 2 rectified; velodyne -> cam 0).
P_RECT_02 = np.array(
    [
        [7.215377e02, 0.0, 6.095593e02, 4.485728e01],
        [0.0, 7.215377e02, 1.728540e02, 2.163791e-01],
        [0, 0, 1, 2.745884e-03],
    ]
)
P_RECT_03 = np.array(
    [
        [7.215377e02, 0.0, 6.095593e02, -3.395242e02],
        [0.0, 7.215377e02, 1.728540e02, 2.199936e00],
        [0, 0, 1, 2.729905e-03],
    ]
)
R_RECT_00 = np.array(
    [
        [9.999239e-01, 9.837760e-03, -7.445048e-03],
        [-9.869795e-03, 9.999421e-01, -4.278459e-03],
        [7.402527e-03, 4.351614e-03, 9.999631e-01],
    ]
)
VELO_R = np.array(
    [
        [7.533745e-03, -9.999714e-01, -6.166020e-04],
        [1.480249e-02, 7.280733e-04, -9.998902e-01],
        [9.998621e-01, 7.523790e-03, 1.480755e-02],
    ]
)
VELO_T = np.array([-4.069766e-03, -7.631618e-02, -2.717806e-01])
IMAGE_SIZE = (1242, 375)


def cam_to_cam_dict() -> dict:
    """The ``calib_cam_to_cam.txt`` content written with synthetic drives (rectified values are KITTI's)."""
    f, cx, cy = 7.215377e02, 6.095593e02, 1.728540e02
    P0 = np.array([[f, 0, cx, 0], [0, f, cy, 0], [0, 0, 1, 0]])
    P1 = P0.copy()
    P1[0, 3] = -3.875744e02
    out: dict = {"calib_time": "09-Jan-2012 13:57:47", "corner_dist": 9.95e-02}
    for c, P in enumerate((P0, P1, P_RECT_02, P_RECT_03)):
        out[f"S_{c:02d}"] = np.array([1392.0, 512.0])
        out[f"K_{c:02d}"] = P[:, :3]
        out[f"D_{c:02d}"] = np.zeros(5)
        out[f"R_{c:02d}"] = np.eye(3)
        out[f"T_{c:02d}"] = np.linalg.solve(P[:, :3], P[:, 3])
        out[f"S_rect_{c:02d}"] = np.array(IMAGE_SIZE, np.float64)
        out[f"R_rect_{c:02d}"] = R_RECT_00 if c == 0 else np.eye(3)
        out[f"P_rect_{c:02d}"] = P
    return out


def synthetic_calib(
    width: int = IMAGE_SIZE[0], height: int = IMAGE_SIZE[1]
) -> tuple[CameraModel, np.ndarray]:
    """Camera (KITTI cam 2 rectified; K rescaled for another image size) and ``T_cam_velo`` (4x4)."""
    camera, _ = CameraModel.from_kitti_projection(P_RECT_02, *IMAGE_SIZE)
    if (width, height) != IMAGE_SIZE:
        camera = camera.scaled(width, height)
    return camera, compose_T_cam_velo(P_RECT_02, R_RECT_00, VELO_R, VELO_T)


@lru_cache(maxsize=1)
def lidar_elevations_deg() -> np.ndarray:
    """64 ring elevations in degrees, ring 0 (top) first."""
    return np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.87, -24.8, 32)])


@lru_cache(maxsize=1)
def lidar_directions() -> np.ndarray:
    """64 x N_AZIMUTH x 3 unit ray directions in the velodyne frame."""
    el = np.deg2rad(lidar_elevations_deg())[:, None]
    az = (np.arange(N_AZIMUTH) * (2 * np.pi / N_AZIMUTH))[None, :]
    d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el) * np.ones_like(az)], axis=-1)
    return d.astype(np.float32)


@lru_cache(maxsize=4)
def _camera_directions(width: int, height: int) -> np.ndarray:
    cam, _ = synthetic_calib(width, height)
    rays = cam.pixel_rays()
    return np.concatenate([rays, np.ones((height, width, 1), np.float32)], axis=-1)


@dataclass
class SynthFrame:
    """One synchronised frame. Points/rings are in the velodyne frame; depth_gt in the camera frame."""

    index: int
    stamp_ns: int
    image: np.ndarray  # H x W x 3 uint8 RGB
    points: np.ndarray  # N x 4 float32 x, y, z, intensity (LiDAR frame)
    rings: np.ndarray  # N int16 ring id 0..63 (0 = top)
    depth_gt: np.ndarray  # H x W float32 metres, 0 where no surface (sky)
    T_world_velo: np.ndarray | None = None  # 4x4 ego pose (for OXTS-like output)


def _scan(grid: LidarGrid, table: PrimTable, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Turn a cast LiDAR grid into (points N x 4, rings N), ordered by azimuth then ring."""
    ids = grid.ids.T.reshape(-1)  # azimuth-major like a spinning sensor's packets
    t = grid.t.T.reshape(-1)
    hit = np.flatnonzero((ids != SKY) & (t <= LIDAR_MAX_RANGE_M))
    D = grid.D.transpose(1, 0, 2).reshape(-1, 3)[hit]
    th = t[hit]
    surf = surface(grid.o + D * th[:, None], ids[hit], table)
    cos = np.abs(np.einsum("ij,ij->i", surf.normal, D))
    refl_eff = surf.reflectivity * (0.3 + 0.7 * cos)
    r_max = np.minimum(LIDAR_MAX_RANGE_M, LIDAR_MAX_RANGE_M * np.sqrt(refl_eff / 0.5))
    u = rng.random((3, hit.size), dtype=np.float32)
    keep = (th < r_max * (0.85 + 0.3 * u[0])) & ~(surf.specular & (u[1] < 0.5)) & (u[2] > 0.005)
    rng_m = th[keep] + rng.normal(0.0, LIDAR_RANGE_NOISE_M, int(keep.sum())).astype(np.float32)
    sel = hit[keep]
    d_velo = lidar_directions().transpose(1, 0, 2).reshape(-1, 3)[sel]
    inten = np.clip(
        surf.reflectivity[keep] * (0.4 + 0.6 * cos[keep]) + rng.normal(0, 0.02, sel.size), 0.0, 1.0
    )
    pts = np.empty((sel.size, 4), np.float32)
    pts[:, :3] = d_velo * rng_m[:, None]
    pts[:, 3] = inten
    rings = (sel % 64).astype(np.int16)
    return pts, rings


def render_frame(
    seed: int, index: int, width: int = IMAGE_SIZE[0], height: int = IMAGE_SIZE[1]
) -> SynthFrame:
    """Render frame ``index`` of the drive of ``seed`` (deterministic)."""
    camera, T_cam_velo = synthetic_calib(width, height)
    ego = S.EgoPath.from_seed(seed)
    t_s = index * FRAME_PERIOD_NS * 1e-9
    T_world_velo = ego.pose(t_s)
    x = T_world_velo[0, 3]
    prims = S.scene_at(seed, t_s, x - 40.0, x + CAMERA_FAR_M + 10.0)
    table = PrimTable.of(prims)
    rng = np.random.default_rng([seed, index, 505])
    cam = CameraGrid(
        T_world_velo @ invert(T_cam_velo), _camera_directions(width, height), camera.K, CAMERA_FAR_M
    )
    cam.cast(prims)
    image = render_image(cam, table, rng)
    depth = np.where(cam.ids != SKY, cam.t, 0.0).astype(np.float32)
    lidar = LidarGrid(T_world_velo, lidar_directions(), np.deg2rad(lidar_elevations_deg()), LIDAR_MAX_RANGE_M)
    lidar.cast(prims)
    points, rings = _scan(lidar, table, rng)
    return SynthFrame(
        index, BASE_STAMP_NS + index * FRAME_PERIOD_NS, image, points, rings, depth, T_world_velo
    )


def generate_drive(
    seed: int, n_frames: int, *, width: int = IMAGE_SIZE[0], height: int = IMAGE_SIZE[1]
) -> Iterator[SynthFrame]:
    """Yield ``n_frames`` frames at 10 Hz of the synthetic drive of ``seed``."""
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    for i in range(n_frames):
        yield render_frame(seed, i, width, height)


__all__ = [
    "SynthFrame",
    "synthetic_calib",
    "generate_drive",
    "render_frame",
    "GENERATOR_VERSION",
    "json",
    "shutil",
    "Path",
]
