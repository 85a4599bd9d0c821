"""Deterministic synthetic KITTI-like drives: camera image, LiDAR scan and exact dense depth.

The scene (``synthetic_scene``) is ray-cast (``synthetic_raycast``, ``synthetic_lidar``) from the KITTI
2011_09_26 camera and velodyne poses (``synthetic_rig``), so camera/LiDAR parallax and occlusion artefacts
are those of the real rig. Frames are 10 Hz; ``generate_drive(seed, n)`` yields the same arrays for the
same seed on every machine, and frame ``i`` does not depend on ``n``.

Sensor model
- Camera: 1242 x 375, K from ``P_rect_02``; albedo textures, Lambert + ambient shading, sky gradient,
  distance haze, Gaussian pixel noise (sigma 2 levels). Surfaces farther than 150 m are sky. The image is
  exposed at the frame stamp.
- LiDAR: a scan pattern of ``synthetic_lidar.PATTERNS`` (default ``spinning64``, HDL-64E-like: 64 rings,
  upper block +2.0 .. -8.33 deg (1/3 deg), lower block -8.87 .. -24.8 deg (~1/2 deg), 2118 azimuth steps
  (0.17 deg) over 360 deg, facing forward at the stamp; also ``spinning32``, a ring-free ``raster`` and a
  non-repetitive ``rosette``); max range 120 m; range noise sigma 1.5 cm; a return is detected when its
  range is below ``120 m * sqrt(reflectivity * (0.3 + 0.7 cos) / 0.5)`` (x U(0.85, 1.15)); specular
  surfaces (glass, tyres, dark paint) lose half their returns; 0.5 % random dropouts. Ring 0 is the top
  ring. Points are in the velodyne frame (x forward, y left, z up). Every point has a firing time in the
  100 ms sweep; with ``motion=True`` it is measured from the ego pose at that time.
- Ground truth: camera-frame z of the first surface hit by each pixel-centre ray, 0 for sky.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.core.transforms import invert, transform_points
from depth_nodes.data import synthetic_scene
from depth_nodes.data.kitti_calib import write_cam_to_cam, write_velo_to_cam
from depth_nodes.data.kitti_depth import crop_bottom_centre, frame_filename, write_frame
from depth_nodes.data.kitti_raw import write_raw_frame, write_raw_timestamps
from depth_nodes.data.synthetic_lidar import (
    DEFAULT_MOTION,
    DEFAULT_PATTERN,
    LIDAR_MAX_RANGE_M,
    cast_sweep,
    measure,
    scan_pattern,
    spinning_elevations_deg,
)
from depth_nodes.data.synthetic_raycast import SKY, CameraGrid
from depth_nodes.data.synthetic_render import PrimTable, render_image
from depth_nodes.data.synthetic_rig import (  # noqa: F401 (re-exported: the drive's public calibration)
    IMAGE_SIZE,
    P_RECT_02,
    P_RECT_03,
    R_RECT_00,
    VELO_R,
    VELO_T,
    cam_to_cam_dict,
    oxts_record,
    synthetic_calib,
)
from depth_nodes.errors import DataFormatError

GENERATOR_VERSION = "6"  # bump whenever the generated data change (manifest reuse)
FRAME_PERIOD_NS = 100_000_000
#: First frame's stamp: 2011-09-26 13:02:25.964389445 UTC, like KITTI drive 0001.
BASE_STAMP_NS = 1317042145_964389445
CAMERA_FAR_M = 150.0
N_AZIMUTH = 2118


def lidar_elevations_deg() -> np.ndarray:
    """64 ring elevations in degrees, ring 0 (top) first (the default ``spinning64`` pattern)."""
    return spinning_elevations_deg(64)


@lru_cache(maxsize=4)
def _camera_directions(width: int, height: int) -> np.ndarray:
    cam, _ = synthetic_calib(width, height)
    rays = cam.pixel_rays()
    return np.concatenate([rays, np.ones((height, width, 1), np.float32)], axis=-1)


@dataclass
class SynthFrame:
    """One synchronised frame. Points/rings are in the LiDAR frame; depth_gt in the camera frame.

    ``points`` are the returns in the LiDAR frame *at the frame stamp* (exactly motion-compensated);
    ``points_measured`` are the same returns as the moving sensor measured them, each in the sensor frame
    at its own firing time ``stamp_ns + point_time_ns`` (identical to ``points`` when ``motion`` is off).
    """

    index: int
    stamp_ns: int
    image: np.ndarray  # H x W x 3 uint8 RGB
    points: np.ndarray  # N x 4 float32 x, y, z, intensity (LiDAR frame at stamp_ns)
    rings: np.ndarray | None  # N int16 ring id (0 = top), None for ring-free patterns
    depth_gt: np.ndarray  # H x W float32 metres, 0 where no surface (sky)
    T_world_velo: np.ndarray | None = None  # 4x4 ego pose at stamp_ns (for OXTS-like output)
    points_measured: np.ndarray | None = None  # N x 4 float32 (sensor frame at each point's time)
    point_time_ns: np.ndarray | None = None  # N int64 firing time relative to stamp_ns (0 without motion)
    pattern: str = DEFAULT_PATTERN


def render_frame(
    seed: int,
    index: int,
    width: int = IMAGE_SIZE[0],
    height: int = IMAGE_SIZE[1],
    *,
    pattern: str = DEFAULT_PATTERN,
    motion: bool = DEFAULT_MOTION,
    ego_speed_mps: float | None = None,
    ego_stop_s: tuple[float, float] | None = None,
) -> SynthFrame:
    """Render frame ``index`` of the drive of ``seed`` (deterministic).

    ``pattern``: a :data:`synthetic_lidar.PATTERNS` name. ``motion``: cast each firing slice from the ego
    pose at its own time (a moving sensor's skewed sweep) instead of from the pose at the stamp.
    ``ego_speed_mps``: drive at this speed instead of the seed's (8-10 m/s); ``ego_stop_s``: stand still
    from ``ego_stop_s[0]`` to ``ego_stop_s[1]`` s.
    """
    camera, T_cam_velo = synthetic_calib(width, height)
    scan = scan_pattern(pattern, index)
    ego = ego_path(seed, ego_speed_mps, ego_stop_s)
    t_s = index * FRAME_PERIOD_NS * 1e-9
    T_world_velo = ego.pose(t_s)
    x = T_world_velo[0, 3]
    prims = synthetic_scene.scene_at(seed, t_s, x - LIDAR_MAX_RANGE_M - 10.0, x + CAMERA_FAR_M + 10.0)
    table = PrimTable.of(prims)
    rng = np.random.default_rng([seed, index, 505])
    cam = CameraGrid(
        T_world_velo @ invert(T_cam_velo), _camera_directions(width, height), camera.K, CAMERA_FAR_M
    )
    cam.cast(prims)
    image = render_image(cam, table, rng)
    depth = np.where(cam.ids != SKY, cam.t, 0.0).astype(np.float32)

    def pose_at(dt_ns: int) -> np.ndarray:
        return ego.pose(t_s + dt_ns * 1e-9) if motion else T_world_velo

    ret = measure(scan, cast_sweep(scan, pose_at, prims, LIDAR_MAX_RANGE_M), table, rng)
    points, times = ret.points, ret.time_ns
    if motion:
        points = ret.points.copy()
        points[:, :3] = transform_points(invert(T_world_velo), ret.world)
    else:  # measured from the stamp's pose: an instantaneous scan, every point at the stamp
        times = np.zeros_like(ret.time_ns)
    return SynthFrame(
        index,
        BASE_STAMP_NS + index * FRAME_PERIOD_NS,
        image,
        points,
        ret.rings,
        depth,
        T_world_velo,
        ret.points,
        times,
        pattern,
    )


def ego_path(
    seed: int, speed_mps: float | None = None, stop_s: tuple[float, float] | None = None
) -> synthetic_scene.EgoPath:
    """The ego trajectory of ``seed`` (optionally at another speed, optionally standing still a while)."""
    ego = synthetic_scene.EgoPath.from_seed(seed)
    ego = ego if speed_mps is None else replace(ego, speed_mps=float(speed_mps))
    return ego if stop_s is None else replace(ego, stop_s=(float(stop_s[0]), float(stop_s[1])))


def generate_drive(
    seed: int,
    n_frames: int,
    *,
    width: int = IMAGE_SIZE[0],
    height: int = IMAGE_SIZE[1],
    pattern: str = DEFAULT_PATTERN,
    motion: bool = DEFAULT_MOTION,
    ego_stop_s: tuple[float, float] | None = None,
) -> Iterator[SynthFrame]:
    """Yield ``n_frames`` frames at 10 Hz of the synthetic drive of ``seed`` (see :func:`render_frame`)."""
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    scan_pattern(pattern)  # unknown names fail before the first frame
    for i in range(n_frames):
        yield render_frame(seed, i, width, height, pattern=pattern, motion=motion, ego_stop_s=ego_stop_s)


# ---------------------------------------------------------------------------------------------- writing
RAW_DIR = "raw"
DC_DIR = "val_selection_cropped"
RINGS_DIR = "velodyne_raw_rings"
#: Raw-layout sidecar ``velodyne_points/time_ns/NNNNNNNNNN.npy``: int64 per-point time relative to the stamp.
TIME_DIR = "time_ns"
MANIFEST = "manifest.json"
#: KITTI-like support of the ground truth: what the LiDAR can see (vertical FOV with a margin, range).
#: The LiDAR's own vertical field of view, widened only by half a pixel at KITTI's focal length
#: (0.5 / 721.5 rad = 0.04 deg) for the quantisation of pixel centres: KITTI's accumulated GT does not reach
#: materially above a single scan's top ring either, and scoring pixels no LiDAR saw would reward invention.
GT_ELEVATION_DEG = (-24.8 - 0.04, 2.0 + 0.04)  # of spinning64; other patterns use their own field
#: KITTI's accumulated ground truth rarely reaches past ~80 m; scoring 80-120 m surfaces (1 % of pixels)
#: doubled every method's RMSE without telling methods apart, so GT stops at 80 m like KITTI's in practice.
GT_MAX_RANGE_M = 80.0


def lidar_visible_gt(
    depth_gt: np.ndarray, camera: CameraModel, T_cam_velo: np.ndarray, pattern: str = DEFAULT_PATTERN
) -> np.ndarray:
    """Restrict dense ground truth like KITTI's (accumulated LiDAR) to where the LiDAR could see.

    Rule: a pixel keeps its depth when it has a surface (not sky), the surface point lies within
    ``GT_MAX_RANGE_M`` of the LiDAR and its direction seen from the LiDAR is inside the pattern's field of
    view (spinning64: elevation +2.0 .. -24.8 deg; raster: its 120 x 25 deg window; rosette: its cone),
    widened by half a pixel. Everything else becomes 0 (no data).
    """
    rays = camera.pixel_rays()
    pts = np.empty(depth_gt.shape + (3,), np.float32)
    pts[..., 0] = rays[..., 0] * depth_gt
    pts[..., 1] = rays[..., 1] * depth_gt
    pts[..., 2] = depth_gt
    velo = transform_points(invert(T_cam_velo), pts.reshape(-1, 3))
    rng_m = np.linalg.norm(velo, axis=1)
    ok = (depth_gt.reshape(-1) > 0) & (rng_m <= GT_MAX_RANGE_M)
    ok &= scan_pattern(pattern).in_fov(velo, margin_deg=0.04)
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


def _manifest(
    seed: int, n_frames: int, drive: str, width: int, height: int, pattern: str, motion: bool,
    ego_stop_s: tuple[float, float] | None = None,
) -> dict:  # fmt: skip
    stop = {} if ego_stop_s is None else {"ego_stop_s": [float(t) for t in ego_stop_s]}
    return {
        **stop,
        "generator": "depth_nodes.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "frames": int(n_frames),
        "drive": drive,
        "width": int(width),
        "height": int(height),
        "lidar_pattern": pattern,
        "motion": bool(motion),
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
    pattern: str = DEFAULT_PATTERN,
    motion: bool = DEFAULT_MOTION,
    ego_stop_s: tuple[float, float] | None = None,
) -> bool:
    """True when ``out_dir`` holds a complete output of exactly these generator settings."""
    have = read_manifest(out_dir)
    wanted = _manifest(seed, n_frames, drive, width, height, pattern, motion, ego_stop_s)
    return have is not None and {k: have.get(k) for k in {*wanted, "ego_stop_s"}} == {
        "ego_stop_s": None,
        **wanted,
    }


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
    pattern: str = DEFAULT_PATTERN,
    motion: bool = DEFAULT_MOTION,
    ego_stop_s: tuple[float, float] | None = None,
) -> Path:
    """Generate a drive and write it in both KITTI layouts under ``out_dir``; returns ``out_dir``.

    - ``OUT/raw/<date>/<drive>/``: raw layout (+ calib files in ``OUT/raw/<date>/``, OXTS records, a
      ``velodyne_points/rings/*.npy`` sidecar with the ring id of every point for ring patterns, and
      with ``motion``, ``velodyne_points/time_ns/*.npy``: int64 firing time of every point relative to its
      scan stamp; ``calib_imu_to_velo.txt`` = identity, the OXTS records being taken at the LiDAR). The
      ``.bin`` scans are the points as measured (``SynthFrame.points_measured``).
    - ``OUT/val_selection_cropped/``: depth-completion layout, 1216 x 352 bottom-centre crop;
      ``velodyne_raw`` = the scan at the frame stamp (``SynthFrame.points``, exactly motion-compensated)
      projected with the core's occlusion filter; ``groundtruth_depth`` = the
      exact depth restricted by :func:`lidar_visible_gt`; plus ``velodyne_raw_rings/`` (uint8 PNG, ring
      id + 1 of each ``velodyne_raw`` pixel, 0 = none; named like ``velodyne_raw`` with that folder name;
      only for ring patterns; ``poses/``: exact camera poses ``T_world_cam``).
    - ``OUT/manifest.json``: written last with ``complete: true``; an output whose manifest matches
      (seed, frames, drive, size, pattern, motion, generator version) is reused unless ``force``.
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
    kw = {"width": width, "height": height, "pattern": pattern, "motion": motion, "ego_stop_s": ego_stop_s}
    wanted = _manifest(seed, n_frames, drive, width, height, pattern, motion, ego_stop_s)
    if not force and is_complete(out, seed, n_frames, drive, **kw):
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
    # The OXTS records are taken at the LiDAR: identity, so kitti2bag writes the odometry TF.
    write_velo_to_cam(raw_dir.parent / "calib_imu_to_velo.txt", np.eye(3), np.zeros(3))
    camera, T_cam_velo = synthetic_calib(width, height)
    x0, y0 = crop_bottom_centre(camera.shape)
    crop_cam = camera.crop(x0, y0, 1216, 352)
    ego = synthetic_scene.EgoPath.from_seed(seed)
    stamps = []
    frames = generate_drive(seed, n_frames, **kw)
    if motion:
        (raw_dir / "velodyne_points" / TIME_DIR).mkdir(parents=True)
    for f in tqdm(frames, total=n_frames, desc=f"synth seed {seed}", unit="frame", disable=not progress):
        oxts = oxts_record(f.T_world_velo, ego.speed_mps)
        write_raw_frame(raw_dir, f.index, f.image, f.points_measured, f.rings, oxts)
        if motion:
            np.save(raw_dir / "velodyne_points" / TIME_DIR / f"{f.index:010d}.npy", f.point_time_ns)
        stamps.append(f.stamp_ns)
        sparse = scan_to_depth(f.points, T_cam_velo, camera).depth
        gt = lidar_visible_gt(f.depth_gt, camera, T_cam_velo, pattern)
        win = (slice(y0, y0 + 352), slice(x0, x0 + 1216))
        T_world_cam = f.T_world_velo @ invert(T_cam_velo)  # the pose the image was rendered from
        write_frame(dc_dir, drive, f.index, f.image[win], sparse[win], gt[win], crop_cam.K, T_world_cam)
        if f.rings is not None:
            rings = ring_image(f.points, f.rings, T_cam_velo, camera, sparse)
            ring_path = ring_png_path(
                dc_dir / "velodyne_raw" / frame_filename(drive, f.index, "velodyne_raw")
            )
            ring_path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(ring_path), rings[win])
    write_raw_timestamps(raw_dir, stamps, stamps, FRAME_PERIOD_NS, oxts_stamps_ns=stamps)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({**wanted, "complete": True}, indent=2) + "\n")
    os.replace(tmp, out / MANIFEST)
    return out
