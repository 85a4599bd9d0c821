"""Frames of the robustness suite: the synthetic drive or a real KITTI raw drive, at KITTI's 1216 x 352 crop.

A :class:`RobustFrame` keeps the *points* (so LiDAR corruptions act on the scan, before projection), the
cropped camera, ``T_cam_lidar``, the ego pose (for the time-offset corruption), and the ground truth:

- synthetic drive: the exact rendered depth restricted like KITTI's GT (``lidar_visible_gt``); every
  return is input;
- real drive, default: 20 % of the returns (seeded) are held out: GT = those returns where the
  occlusion-filtered projection of the whole scan keeps them; the other 80 % are the input;
- real drive with ``gt_dir``: the accumulated GT written by ``depth-nodes make-gt`` (KITTI DC layout,
  ``groundtruth_depth/*_<frame>_image_02.png``, same crop); every return is input.
Ego poses: the synthetic drive's own; on a real drive LiDAR odometry (KISS-ICP, ``data.gt_sources``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.data.kitti_depth import crop_bottom_centre, read_depth_png
from depth_nodes.errors import DataFormatError

CROP_W, CROP_H = 1216, 352
HELD_OUT_FRACTION = 0.2
FRAME_PERIOD_S = 0.1


@dataclass
class RobustFrame:
    index: int
    image: np.ndarray  # H x W x 3 uint8 RGB (cropped)
    points: np.ndarray  # N x 4 float32 input returns (LiDAR frame)
    rings: np.ndarray | None
    camera: CameraModel  # cropped camera
    T_cam_lidar: np.ndarray
    gt: np.ndarray  # H x W float32 metres, 0 = none
    T_world_lidar: np.ndarray | None = None
    T_world_lidar_next: np.ndarray | None = None
    all_points: np.ndarray | None = None  # every return (the drift alarm sees the whole scan)

    def sparse(self, points: np.ndarray | None = None, T: np.ndarray | None = None) -> np.ndarray:
        """Projected sparse depth (occlusion-filtered) of ``points`` (default: the input) with ``T``."""
        pts = self.points if points is None else points
        T = self.T_cam_lidar if T is None else T
        return scan_to_depth(pts[:, :3], T, self.camera, on_nonfinite="drop").depth


def _crop(camera: CameraModel) -> tuple[CameraModel, tuple[slice, slice]]:
    x0, y0 = crop_bottom_centre(camera.shape, CROP_W, CROP_H)
    return camera.crop(x0, y0, CROP_W, CROP_H), (slice(y0, y0 + CROP_H), slice(x0, x0 + CROP_W))


def synthetic_frames(seed: int, n_frames: int) -> Iterator[RobustFrame]:
    from depth_nodes.data.synthetic import generate_drive, lidar_visible_gt, synthetic_calib

    camera, T = synthetic_calib()
    crop_cam, win = _crop(camera)
    prev = None
    # One frame more than asked: the next pose gives the ego velocity of the last frame.
    for f in generate_drive(seed, n_frames + 1):
        if prev is not None:
            gt = lidar_visible_gt(np.asarray(prev.depth_gt, np.float32), camera, T)[win]
            yield RobustFrame(
                prev.index, np.ascontiguousarray(prev.image[win]), prev.points, prev.rings, crop_cam, T,
                np.ascontiguousarray(gt), prev.T_world_velo, f.T_world_velo, prev.points,
            )  # fmt: skip
        prev = f


def _held_out(points, rings, camera, T, rng):
    out = rng.random(points.shape[0]) < HELD_OUT_FRACTION
    full = scan_to_depth(points[:, :3], T, camera, on_nonfinite="drop").depth
    held_raw = scan_to_depth(points[out, :3], T, camera, occlusion=None, on_nonfinite="drop").depth
    same = (held_raw > 0) & (full > 0) & (np.abs(held_raw - full) <= 1e-5 * full)
    gt = np.where(same, full, 0.0).astype(np.float32)
    return points[~out], (None if rings is None else rings[~out]), gt


def _gt_file(gt_dir: Path, index: int) -> Path:
    hits = sorted((gt_dir / "groundtruth_depth").glob(f"*_{index:010d}_image_02.png"))
    if not hits:
        raise DataFormatError(f"{gt_dir}: no groundtruth_depth/*_{index:010d}_image_02.png (make-gt output?)")
    return hits[0]


def kitti_frames(
    drive_dir: str | Path, n_frames: int, seed: int, gt_dir: str | Path | None = None
) -> list[RobustFrame]:
    """The first ``n_frames`` frames of a KITTI raw drive (ring ids from the scan order)."""
    from depth_nodes.data.gt_sources import kiss_icp_poses, rings_from_scan_order
    from depth_nodes.data.kitti_raw import RawDrive

    raw = RawDrive(drive_dir)
    n = min(n_frames, raw.n_frames)
    if n < 1:
        raise DataFormatError(f"{drive_dir}: no frames")
    camera, T = raw.camera(), raw.T_cam_velo
    crop_cam, win = _crop(camera)
    scans = [raw.scan(i) for i in range(min(n + 1, raw.n_frames))]
    poses = kiss_icp_poses(scans) if len(scans) > 1 else None
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        pts = np.ascontiguousarray(scans[i])
        rings = rings_from_scan_order(pts)
        if gt_dir is not None:
            inp, inp_rings = pts, rings
            gt = read_depth_png(_gt_file(Path(gt_dir), i))
            if gt.shape != (CROP_H, CROP_W):
                raise DataFormatError(
                    f"accumulated GT of frame {i} is {gt.shape}, expected {(CROP_H, CROP_W)}"
                )
        else:
            inp, inp_rings, gt = _held_out(pts, rings, crop_cam, T, rng)
        Tw = Tn = None
        if poses is not None:
            j = i + 1 if i + 1 < len(scans) else i - 1
            Tw, Tn = poses[i], poses[j]
            if j < i:  # last frame of the drive: mirror the previous step
                Tn = Tw @ (np.linalg.inv(poses[j]) @ Tw)
        frames.append(
            RobustFrame(
                i, np.ascontiguousarray(raw.image(i)[win]), inp, inp_rings, crop_cam, T, gt, Tw, Tn, pts
            )
        )
    return frames
