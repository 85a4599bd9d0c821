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
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.core.transforms import invert, transform_points
from depth_nodes.data import synthetic_scene as S
from depth_nodes.data.kitti_calib import compose_T_cam_velo, write_cam_to_cam, write_velo_to_cam
from depth_nodes.data.kitti_depth import crop_bottom_centre, frame_filename, write_frame
from depth_nodes.data.kitti_raw import write_raw_frame, write_raw_timestamps
from depth_nodes.data.synthetic_raycast import SKY, CameraGrid, LidarGrid
from depth_nodes.data.synthetic_render import PrimTable, render_image, surface
from depth_nodes.errors import DataFormatError

GENERATOR_VERSION = "5"  # bump whenever the generated data change (manifest reuse)
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
    prims = S.scene_at(seed, t_s, x - LIDAR_MAX_RANGE_M - 10.0, x + CAMERA_FAR_M + 10.0)
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


# ---------------------------------------------------------------------------------------------- writing
RAW_DIR = "raw"
DC_DIR = "val_selection_cropped"
RINGS_DIR = "velodyne_raw_rings"
MANIFEST = "manifest.json"
#: KITTI-like support of the ground truth: what the LiDAR can see (vertical FOV with a margin, range).
#: The LiDAR's own vertical field of view, widened only by half a pixel at KITTI's focal length
#: (0.5 / 721.5 rad = 0.04 deg) for the quantisation of pixel centres: KITTI's accumulated GT does not reach
#: materially above a single scan's top ring either, and scoring pixels no LiDAR saw would reward invention.
GT_ELEVATION_DEG = (-24.8 - 0.04, 2.0 + 0.04)
#: KITTI's accumulated ground truth rarely reaches past ~80 m; scoring 80-120 m surfaces (1 % of pixels)
#: doubled every method's RMSE without telling methods apart, so GT stops at 80 m like KITTI's in practice.
GT_MAX_RANGE_M = 80.0
#: Reference for the synthetic OXTS records (Karlsruhe, like KITTI).
OXTS_LAT0_DEG, OXTS_LON0_DEG, OXTS_ALT0_M = 49.011212804408, 8.4228850417969, 112.83492279053
EARTH_RADIUS_M = 6378137.0


def lidar_visible_gt(depth_gt: np.ndarray, camera: CameraModel, T_cam_velo: np.ndarray) -> np.ndarray:
    """Restrict dense ground truth like KITTI's (accumulated LiDAR) to where the LiDAR could see.

    Rule: a pixel keeps its depth when it has a surface (not sky), the surface point lies within
    ``GT_MAX_RANGE_M`` of the LiDAR and its elevation seen from the LiDAR is inside the vertical field of
    view (+2.0 .. -24.8 deg, widened by half a pixel). Everything else becomes 0 (no data).
    """
    rays = camera.pixel_rays()
    pts = np.empty(depth_gt.shape + (3,), np.float32)
    pts[..., 0] = rays[..., 0] * depth_gt
    pts[..., 1] = rays[..., 1] * depth_gt
    pts[..., 2] = depth_gt
    velo = transform_points(invert(T_cam_velo), pts.reshape(-1, 3))
    horiz = np.hypot(velo[:, 0], velo[:, 1])
    elev = np.degrees(np.arctan2(velo[:, 2], horiz))
    rng_m = np.sqrt(horiz * horiz + velo[:, 2] ** 2)
    ok = (depth_gt.reshape(-1) > 0) & (rng_m <= GT_MAX_RANGE_M)
    ok &= (elev >= GT_ELEVATION_DEG[0]) & (elev <= GT_ELEVATION_DEG[1])
    return np.where(ok, depth_gt.reshape(-1), 0.0).reshape(depth_gt.shape).astype(np.float32)


def ring_image(
    points: np.ndarray, rings: np.ndarray, T_cam_velo: np.ndarray, camera: CameraModel, sparse: np.ndarray
) -> np.ndarray:
    """uint8 image: 1 + ring id of the return kept at each pixel of ``sparse`` (0 = no return)."""
    pts = transform_points(T_cam_velo, points)
    keep = np.flatnonzero(pts[:, 2] >= 0.1)
    u, v, z = camera.project(pts[keep])
    ui, vi = np.floor(u + 0.5), np.floor(v + 0.5)
    inside = np.flatnonzero((ui >= 0) & (ui < camera.width) & (vi >= 0) & (vi < camera.height))
    idx = vi[inside].astype(np.int64) * camera.width + ui[inside].astype(np.int64)
    z, r = z[inside], rings[keep[inside]]
    order = np.lexsort((z, idx))  # nearest return first within each pixel, like the z-buffer
    idx, r = idx[order], r[order]
    first = np.ones(idx.size, bool)
    first[1:] = idx[1:] != idx[:-1]
    out = np.zeros(camera.width * camera.height, np.uint8)
    out[idx[first]] = r[first] + 1
    out[sparse.reshape(-1) <= 0] = 0
    return out.reshape(camera.shape)


def ring_png_path(velodyne_raw_png: str | Path) -> Path:
    """Path of the ring-id PNG that :func:`write_drive` stores beside a ``velodyne_raw`` PNG."""
    p = Path(velodyne_raw_png)
    return p.parent.parent / RINGS_DIR / p.name.replace("_velodyne_raw_", f"_{RINGS_DIR}_", 1)


def read_ring_png(velodyne_raw_png: str | Path) -> np.ndarray | None:
    """Ring id (int16 0..63, -1 = no return) per pixel of a ``velodyne_raw`` PNG; None without sidecar."""
    path = ring_png_path(velodyne_raw_png)
    if not path.is_file():
        return None
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 2:
        raise DataFormatError(f"unreadable ring-id PNG (expected single-channel uint8): {path}")
    return raw.astype(np.int16) - 1


def oxts_record(T_world_velo: np.ndarray, speed_mps: float) -> np.ndarray:
    """A 30-value OXTS record for an ego pose (world x = east, y = north; IMU taken at the LiDAR)."""
    scale = np.cos(np.radians(OXTS_LAT0_DEG))
    mx0 = scale * np.radians(OXTS_LON0_DEG) * EARTH_RADIUS_M
    my0 = scale * EARTH_RADIUS_M * np.log(np.tan(np.radians(90 + OXTS_LAT0_DEG) / 2))
    mx, my = mx0 + T_world_velo[0, 3], my0 + T_world_velo[1, 3]
    lon = np.degrees(mx / (scale * EARTH_RADIUS_M))
    lat = np.degrees(2 * np.arctan(np.exp(my / (scale * EARTH_RADIUS_M)))) - 90
    yaw = float(np.arctan2(T_world_velo[1, 0], T_world_velo[0, 0]))
    rec = np.zeros(30)
    rec[:6] = [lat, lon, OXTS_ALT0_M + T_world_velo[2, 3], 0.0, 0.0, yaw]
    rec[6:11] = [speed_mps * np.sin(yaw), speed_mps * np.cos(yaw), speed_mps, 0.0, 0.0]  # vn ve vf vl vu
    rec[11:23] = 0.0
    rec[22] = 9.81  # az (gravity), like a level IMU
    rec[23:30] = [0.02, 0.02, 0.01, 10, 4, 5, 5]  # pos_accuracy vel_accuracy navstat numsats posmode...
    return rec


def _manifest(seed: int, n_frames: int, drive: str, width: int, height: int) -> dict:
    return {
        "generator": "depth_nodes.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "frames": int(n_frames),
        "drive": drive,
        "width": int(width),
        "height": int(height),
    }


def read_manifest(out_dir: str | Path) -> dict | None:
    """The manifest of a complete synthetic output, or None (absent, unreadable or incomplete)."""
    path = Path(out_dir) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("complete") is True else None


def is_complete(
    out_dir: str | Path,
    seed: int,
    n_frames: int,
    drive: str = "2011_09_26_drive_0001_sync",
    *,
    width: int = IMAGE_SIZE[0],
    height: int = IMAGE_SIZE[1],
) -> bool:
    """True when ``out_dir`` holds a complete output of exactly these generator settings."""
    have = read_manifest(out_dir)
    wanted = _manifest(seed, n_frames, drive, width, height)
    return have is not None and {k: have.get(k) for k in wanted} == wanted


def raw_drive_dir(out_dir: str | Path, drive: str = "2011_09_26_drive_0001_sync") -> Path:
    """Where :func:`write_drive` puts the raw drive: ``OUT/raw/<date>/<drive>``."""
    return Path(out_dir) / RAW_DIR / drive[:10] / drive


def write_drive(
    out_dir: str | Path,
    seed: int = 0,
    n_frames: int = 20,
    drive: str = "2011_09_26_drive_0001_sync",
    *,
    width: int = IMAGE_SIZE[0],
    height: int = IMAGE_SIZE[1],
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Generate a drive and write it in both KITTI layouts under ``out_dir``; returns ``out_dir``.

    - ``OUT/raw/<date>/<drive>/``: raw layout (+ calib files in ``OUT/raw/<date>/``, OXTS records and a
      ``velodyne_points/rings/*.npy`` sidecar with the ring id of every point).
    - ``OUT/val_selection_cropped/``: depth-completion layout, 1216 x 352 bottom-centre crop;
      ``velodyne_raw`` = the scan projected with the core's occlusion filter; ``groundtruth_depth`` = the
      exact depth restricted by :func:`lidar_visible_gt`; plus ``velodyne_raw_rings/`` (uint8 PNG, ring
      id + 1 of each ``velodyne_raw`` pixel, 0 = none; named like ``velodyne_raw`` with that folder name).
    - ``OUT/manifest.json``: written last with ``complete: true``; an output whose manifest matches
      (seed, frames, drive, size, generator version) is reused unless ``force``.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if len(drive) < 11 or drive[4] != "_" or drive[7] != "_":
        raise ValueError(f"drive name must start with a KITTI date (YYYY_MM_DD_...), got {drive!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataFormatError(f"output path exists and is not a directory: {out}")
    if width < 1216 or height < 352:
        raise DataFormatError(f"image must be at least 1216 x 352 (the KITTI crop), got {width} x {height}")
    wanted = _manifest(seed, n_frames, drive, width, height)
    if not force and is_complete(out, seed, n_frames, drive, width=width, height=height):
        return out
    (out / MANIFEST).unlink(missing_ok=True)  # from here on the output is incomplete
    raw_dir = raw_drive_dir(out, drive)
    dc_dir = out / DC_DIR
    for d in (raw_dir, dc_dir):
        if d.exists():
            shutil.rmtree(d)
    raw_dir.mkdir(parents=True)
    write_cam_to_cam(raw_dir.parent / "calib_cam_to_cam.txt", cam_to_cam_dict())
    write_velo_to_cam(raw_dir.parent / "calib_velo_to_cam.txt", VELO_R, VELO_T)
    camera, T_cam_velo = synthetic_calib(width, height)
    x0, y0 = crop_bottom_centre(camera.shape)
    crop_cam = camera.crop(x0, y0, 1216, 352)
    ego = S.EgoPath.from_seed(seed)
    stamps = []
    frames = generate_drive(seed, n_frames, width=width, height=height)
    for f in tqdm(frames, total=n_frames, desc=f"synth seed {seed}", unit="frame", disable=not progress):
        write_raw_frame(
            raw_dir, f.index, f.image, f.points, f.rings, oxts_record(f.T_world_velo, ego.speed_mps)
        )
        stamps.append(f.stamp_ns)
        sparse = scan_to_depth(f.points, T_cam_velo, camera).depth
        rings = ring_image(f.points, f.rings, T_cam_velo, camera, sparse)
        gt = lidar_visible_gt(f.depth_gt, camera, T_cam_velo)
        win = (slice(y0, y0 + 352), slice(x0, x0 + 1216))
        write_frame(dc_dir, drive, f.index, f.image[win], sparse[win], gt[win], crop_cam.K)
        ring_path = ring_png_path(dc_dir / "velodyne_raw" / frame_filename(drive, f.index, "velodyne_raw"))
        ring_path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(ring_path), rings[win])
    write_raw_timestamps(raw_dir, stamps, stamps, FRAME_PERIOD_NS, oxts_stamps_ns=stamps)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({**wanted, "complete": True}, indent=2) + "\n")
    os.replace(tmp, out / MANIFEST)
    return out
