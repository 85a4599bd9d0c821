"""Drives that ``make-gt`` reads: a KITTI raw drive, the PandaSet folder, or frames held in memory.

Every source gives, per frame, the RGB image, the main LiDAR's points (N x 3, LiDAR frame), ring ids
where known, the camera and ``T_cam_lidar``; plus ``T_world_lidar`` poses when the data set has them
(PandaSet) — otherwise ``make-gt`` registers the scans with LiDAR odometry (:func:`kiss_icp_poses`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.errors import DataFormatError


@dataclass
class DriveFrame:
    """One frame of a drive: ``points`` N x 3 float32 in the LiDAR frame, ``rings`` N int16 or None."""

    index: int
    image: np.ndarray
    points: np.ndarray
    camera: CameraModel
    T_cam_lidar: np.ndarray
    rings: np.ndarray | None = None
    #: Other LiDARs' points of this frame (same LiDAR frame) by name, e.g. PandaSet's ``pandargt``.
    extra_points: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Drive:
    """A drive for ``make-gt``: ``frames`` (index order), optional ``poses`` K x 4 x 4 ``T_world_lidar``."""

    name: str
    frames: Sequence[DriveFrame]
    poses: np.ndarray | None = None
    #: (width, height) crop written to the KITTI DC layout (bottom centre), None = full image.
    crop: tuple[int, int] | None = None
    pose_source: str = "LiDAR odometry (KISS-ICP)"
    #: One sweep seen by several cameras (frames = cameras): nothing to accumulate, no GT layout written.
    single_sweep: bool = False


def rings_from_scan_order(points: np.ndarray, n_rings: int = 64) -> np.ndarray | None:
    """Ring ids of a KITTI ``.bin`` scan (0 = top) recovered from its storage order, or None.

    KITTI writes the scan laser by laser, each run sweeping the azimuth from 0 through 2 pi; a new laser
    starts where the azimuth taken in [0, 2 pi) drops by more than pi. None when that does not give
    ``n_rings`` runs (another order or sensor).
    """
    az = np.mod(np.arctan2(points[:, 1], points[:, 0]), 2 * np.pi)
    starts = np.diff(az) < -np.pi
    if int(starts.sum()) != n_rings - 1:
        return None
    rings = np.zeros(points.shape[0], np.int16)
    rings[1:] = np.cumsum(starts)
    return rings


def kitti_raw_drive(path: str | Path, crop: tuple[int, int] | None = (1216, 352)) -> Drive:
    """A KITTI raw ``*_sync`` drive (images + scans in memory; poses from odometry later)."""
    from depth_nodes.data.kitti_raw import RawDrive

    raw = RawDrive(path)
    camera, T = raw.camera(), raw.T_cam_velo
    frames = []
    for i in range(raw.n_frames):
        scan = raw.scan(i)
        rings = raw.rings(i)
        if rings is None:
            rings = rings_from_scan_order(scan)
        frames.append(DriveFrame(i, raw.image(i), np.ascontiguousarray(scan[:, :3]), camera, T, rings))
    return Drive(Path(path).name, frames, None, crop)


def pandaset_drive(path: str | Path) -> Drive:
    """The PandaSet folder: Pandar64 as the main LiDAR, PandarGT as ``extra_points['pandargt']``."""
    from depth_nodes.data.pandaset import PandaSetDrive

    ps = PandaSetDrive(path)
    camera = ps.camera()
    frames = []
    for i in range(ps.n_frames):
        gt_pts = ps.scan_gt(i)
        extra = {"pandargt": np.ascontiguousarray(gt_pts[:, :3])} if gt_pts is not None else {}
        frames.append(
            DriveFrame(
                int(ps.name(i)),
                ps.image(i),
                np.ascontiguousarray(ps.scan(i)[:, :3]),
                camera,
                ps.T_cam_lidar[i],
                ps.rings(i),
                extra,
            )  # fmt: skip
        )
    return Drive(f"pandaset_{Path(path).name}", frames, ps.T_world_lidar.copy(), None, "dataset poses")


def nuscenes_frame(path: str | Path) -> Drive:
    """The shared nuScenes frame (``lidar_top.bin`` x, y, z, intensity, ring + ``calib.json``): one
    HDL-32E sweep, one frame per camera (index = camera order in ``calib.json``)."""
    import json

    from depth_nodes.data.kitti_depth import read_rgb

    p = Path(path)
    try:
        calib = json.loads((p / "calib.json").read_text())
        lidar = np.fromfile(p / calib["lidar"]["file"], dtype="<f4").reshape(-1, 5)
        frames = [
            DriveFrame(
                i,
                read_rgb(p / cam["image"]),
                np.ascontiguousarray(lidar[:, :3]),
                CameraModel(int(cam["width"]), int(cam["height"]), np.asarray(cam["K"])),
                np.asarray(cam["T_cam_lidar"], np.float64),
                lidar[:, 4].astype(np.int16),
            )  # fmt: skip
            for i, cam in enumerate(calib["cameras"].values())
        ]
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise DataFormatError(
            f"{p}: not the nuScenes frame layout (calib.json + lidar_top.bin): {exc}"
        ) from exc
    poses = np.repeat(np.eye(4)[None], len(frames), axis=0)
    return Drive("nuscenes", frames, poses, None, "one sweep", single_sweep=True)


def open_drive(path: str | Path, crop: tuple[int, int] | None = (1216, 352)) -> Drive:
    """PandaSet folder, nuScenes frame or KITTI raw drive by its layout (``crop``: KITTI only)."""
    from depth_nodes.data.pandaset import is_pandaset_dir

    p = Path(path)
    if not p.is_dir():
        raise DataFormatError(f"drive directory not found: {p}")
    if is_pandaset_dir(p):
        return pandaset_drive(p)
    if (p / "calib.json").is_file() and (p / "lidar_top.bin").is_file():
        return nuscenes_frame(p)
    if (p / "velodyne_points").is_dir():
        return kitti_raw_drive(p, crop)
    raise DataFormatError(
        f"{p}: neither a KITTI raw drive (velodyne_points/, image_02/) nor a PandaSet folder (calib.json, frames/)"
    )


def kiss_icp_poses(
    scans: Sequence[np.ndarray], max_range_m: float = 100.0, min_range_m: float = 3.0
) -> np.ndarray:
    """``T_world_lidar`` of each scan (world = first scan) by KISS-ICP LiDAR odometry (``kiss-icp``).

    No deskewing (the scans carry no per-point times); voxel size = max range / 100 as KISS-ICP's default.
    """
    from depth_nodes.core.lidar_odometry import kiss_icp_factory

    odometry = kiss_icp_factory(
        max_range_m, min_range_m, "LiDAR odometry for drives without poses", DataFormatError
    )()
    poses = np.empty((len(scans), 4, 4))
    for i, scan in enumerate(scans):
        odometry.register_frame(np.asarray(scan[:, :3], np.float64), np.zeros(0))
        poses[i] = odometry.last_pose
    return poses


def voxel_subsample(points: np.ndarray, voxel_m: float) -> np.ndarray:
    """The first point of each ``voxel_m`` cube (in input order)."""
    if points.shape[0] == 0:
        return points
    key = np.floor(points[:, :3] / voxel_m).astype(np.int64)
    key -= key.min(axis=0)
    span = key.max(axis=0) + 1
    flat = (key[:, 0] * span[1] + key[:, 1]) * span[2] + key[:, 2]
    _, first = np.unique(flat, return_index=True)
    return points[np.sort(first)]


class ScanAligner:
    """Refines the pose of neighbour scans against one scan with KISS-ICP's point-to-map ICP.

    Coarse-to-fine: a 0.5 m voxel map with 1.5 m correspondences, then a 0.2 m map with 0.3 m ones
    (the odometry alone drifts by ~5 cm per frame on repetitive scenes; this brings a neighbour to ~1 cm).
    """

    def __init__(self, target: np.ndarray, max_range_m: float = 100.0) -> None:
        from kiss_icp.mapping import VoxelHashMap
        from kiss_icp.registration import Registration
        from kiss_icp.voxelization import voxel_down_sample

        self._down = voxel_down_sample
        pts = np.asarray(target[:, :3], np.float64)
        self._maps = []
        for voxel_m, corr_m, kernel_m in ((0.5, 1.5, 0.5), (0.2, 0.3, 0.1)):
            m = VoxelHashMap(voxel_m, max_range_m, 20)
            m.add_points(voxel_down_sample(pts, voxel_m / 2))
            self._maps.append((m, corr_m, kernel_m))
        self._reg = Registration(100, 1e-4, 0)

    def align(self, source: np.ndarray, initial_T_target_source: np.ndarray) -> np.ndarray:
        src = self._down(np.asarray(source[:, :3], np.float64), 0.5)
        T = np.asarray(initial_T_target_source, np.float64)
        for m, corr_m, kernel_m in self._maps:
            T = self._reg.align_points_to_map(src, m, T, corr_m, kernel_m)
        return T


class PlaneAligner:
    """Point-to-plane ICP of a scan onto a target scan, damped towards the initial pose.

    Hand-written (scipy's cKDTree for the neighbours) because KISS-ICP is point-to-point: on ring scans
    it pulls the rings of one scan onto those of the other and tilts the result by ~0.05 deg, which on a
    road seen at grazing angles is tens of centimetres of depth. Normals come from ``support`` (the
    neighbour scans already aligned), whose interleaved rings make them well defined; points whose
    neighbourhood is not a plane (or is a single ring's line) carry no normal. The damping (Levenberg
    style, relative to the Hessian's trace) keeps directions the planes do not constrain (along a road
    between parallel walls) at the initial, point-to-point estimate.
    """

    def __init__(self, target: np.ndarray, support: np.ndarray, k: int = 12, radius_m: float = 1.0) -> None:
        from scipy.spatial import cKDTree

        target = voxel_subsample(np.asarray(target[:, :3], np.float64), 0.1)
        support = np.asarray(support[:, :3], np.float64)
        d, idx = cKDTree(support).query(target, k=k, distance_upper_bound=radius_m)
        full = np.isfinite(d).all(axis=1)
        nb = support[idx[full]]
        c = nb - nb.mean(axis=1, keepdims=True)
        w, v = np.linalg.eigh(np.einsum("nki,nkj->nij", c, c) / k)  # ascending eigenvalues
        plane = (w[:, 0] < 0.05 * w[:, 1]) & (w[:, 1] > 0.02 * w[:, 2])
        self.points = target[full][plane]
        self.normals = v[plane, :, 0]
        self._tree = cKDTree(self.points)

    def align(
        self,
        source: np.ndarray,
        initial: np.ndarray,
        *,
        iterations: int = 10,
        damping: float = 1e-3,
        max_points: int = 15000,
        max_range_m: float = 80.0,
    ) -> np.ndarray:
        """``T_target_source`` (4x4) refined from ``initial``."""
        from scipy.spatial.transform import Rotation

        src = np.asarray(source[:, :3], np.float64)
        src = voxel_subsample(src[np.linalg.norm(src, axis=1) < max_range_m], 0.1)
        if src.shape[0] > max_points:
            src = src[np.random.default_rng(0).choice(src.shape[0], max_points, replace=False)]
        T = np.array(initial, np.float64)
        total = np.zeros(6)
        for it in range(iterations):
            huber_m = max(0.05, 0.5 * 0.6**it)
            q = src @ T[:3, :3].T + T[:3, 3]
            d, i = self._tree.query(q, distance_upper_bound=3 * huber_m + 0.2)
            ok = np.isfinite(d)
            if np.count_nonzero(ok) < 100:
                break
            q, n = q[ok], self.normals[i[ok]]
            r = np.einsum("ni,ni->n", q - self.points[i[ok]], n)
            w = np.where(np.abs(r) < huber_m, 1.0, huber_m / np.maximum(np.abs(r), 1e-9))
            J = np.hstack([np.cross(q, n), n])
            H = (J * w[:, None]).T @ J
            lam = damping * np.trace(H) / 6
            x = -np.linalg.solve(H + lam * np.eye(6), (J * w[:, None]).T @ r + lam * total)
            total += x
            dT = np.eye(4)
            dT[:3, :3] = Rotation.from_rotvec(x[:3]).as_matrix()
            dT[:3, 3] = x[3:]
            T = dT @ T
            if np.linalg.norm(x) < 1e-7:
                break
        return T
