"""LiDAR memory: the last scans with their odometry poses, carried to a later image when the LiDAR drops.

ROS-free. :class:`LidarMemory` keeps the last ``max_scans`` scans (bounded by ``max_points`` and
``max_age_s``), each with its pose ``T_fixed_lidar`` in a frame constant in time (``odom``; the LiDAR frame
itself while the robot is known to be still). :meth:`LidarMemory.carry` brings them to an image:

1. **Free space**: points of older scans that the *newest* scan contradicts are dropped. A newest-scan ray
   that went *through* where an older point was (its return lies farther, beyond ``free_rel_tol`` /
   ``free_abs_tol_m``) says the point is no longer there: a car that drove on, a pedestrian who walked away.
   The test runs in the newest scan's range image (azimuth x elevation cells of ``azimuth_res_deg`` x
   ``elevation_res_deg``, the nearest return per cell, rays from the LiDAR's origin), and only where the
   newest scan has a return in the point's own cell: no return (sky, a black car, a dropped sweep) is no
   evidence of free space, and the nearest return of a cell never contradicts a surface seen at a grazing
   angle (the ground) in the same cell. Computed once per newest scan, when the memory is first carried.
2. **Carry**: every scan's points to the camera at the image time, ``inv(T_fixed_cam) @ T_fixed_lidar``.
3. **Confidence** per point: ``0.5 ** (age_s / half_life_s) * 0.5 ** (travelled_m / half_distance_m)``,
   ``age_s`` from the scan's stamp to the image's, ``travelled_m`` the path the LiDAR drove since the scan
   (along the remembered poses, then to the pose at the image time). What moved in the world since the
   newest scan is the known risk (nothing can see it); the confidence falls with the time it had to move.

Hand-written (numpy) because no kept library does scan memory with a free-space test on a range image;
the range image is a plain ``np.minimum.at`` z-buffer over angle cells.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from depth_nodes.core.transforms import invert, transform_points
from depth_nodes.errors import DepthNodesError


@dataclass(frozen=True)
class MemoryParams:
    """Bounds, free-space test and confidence of the memory (node parameters ``memory_*``)."""

    max_scans: int = 5
    max_points: int = 1_000_000
    #: Scans older than this at the image time are not carried (s): the memory ages out.
    max_age_s: float = 2.0
    #: Confidence halves every this long since the scan (s) ...
    half_life_s: float = 1.0
    #: ... and every this far the LiDAR travelled since the scan (m).
    half_distance_m: float = 10.0
    azimuth_res_deg: float = 0.25
    elevation_res_deg: float = 0.5
    free_rel_tol: float = 0.05
    free_abs_tol_m: float = 0.5

    def __post_init__(self) -> None:
        if self.max_scans < 1 or self.max_points < 1:
            raise ValueError("memory: max_scans and max_points must be >= 1")
        if min(self.max_age_s, self.half_life_s, self.half_distance_m) <= 0:
            raise ValueError("memory: max_age_s, half_life_s and half_distance_m must be > 0")
        if self.azimuth_res_deg <= 0 or self.elevation_res_deg <= 0:
            raise ValueError("memory: range-image cells must be > 0 deg")
        if self.free_rel_tol < 0 or self.free_abs_tol_m < 0:
            raise ValueError("memory: free-space tolerances must be >= 0")


@dataclass
class MemoryScan:
    """One remembered scan: ``points`` N x 3 float32 in the LiDAR frame at ``stamp_ns``, pose ``T_fixed_lidar``."""

    points: np.ndarray
    stamp_ns: int
    T_fixed_lidar: np.ndarray
    #: Points kept after the free-space test against the newest scan (None = not tested yet: all).
    keep: np.ndarray | None = None
    #: Newest scan only: points in space the scan before it saw as free (something moved in there).
    moved_in: np.ndarray | None = None


@dataclass
class Carried:
    """Memory points at the image: ``points_cam`` N x 3 float32 in the camera frame at ``stamp_ns``,
    ``confidence`` N float32; summary numbers for the diagnostics."""

    points_cam: np.ndarray
    confidence: np.ndarray
    stamp_ns: int
    n_scans: int
    #: Since the newest carried scan: its age (s) and how far the LiDAR travelled (m).
    newest_age_s: float
    travelled_m: float
    #: Points dropped by the free-space test (all carried scans).
    n_dropped_free: int
    #: Where things moved while the memory was recorded, in the camera frame: older points the newest scan
    #: sees through (moved out) and newest points the scan before it saw through (moved in). Whatever moved
    #: then may have moved on since: the memory does not vouch for depth around them.
    moving_cam: np.ndarray | None = None

    @property
    def empty(self) -> bool:
        return self.points_cam.shape[0] == 0


def _angles(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Range (m), azimuth and elevation (rad) of points seen from the origin."""
    p = np.asarray(points, np.float32)
    xy = np.hypot(p[:, 0], p[:, 1])
    return np.hypot(xy, p[:, 2]), np.arctan2(p[:, 1], p[:, 0]), np.arctan2(p[:, 2], xy)


class RangeImage:
    """The nearest return per azimuth x elevation cell of one scan (inf = no return in the cell)."""

    def __init__(self, points: np.ndarray, azimuth_res_deg: float, elevation_res_deg: float) -> None:
        self.da = np.deg2rad(azimuth_res_deg)
        self.de = np.deg2rad(elevation_res_deg)
        self.n_az = int(np.ceil(2 * np.pi / self.da))
        self.n_el = int(np.ceil(np.pi / self.de)) + 1
        r, az, el = _angles(points)
        ok = r > 0
        self.grid = np.full(self.n_az * self.n_el, np.inf, np.float32)
        np.minimum.at(self.grid, self.cells(az[ok], el[ok]), r[ok])

    def cells(self, az: np.ndarray, el: np.ndarray) -> np.ndarray:
        ia = np.floor((az + np.pi) / self.da).astype(np.int64) % self.n_az
        ie = np.clip(np.floor((el + np.pi / 2) / self.de).astype(np.int64), 0, self.n_el - 1)
        return ie * self.n_az + ia

    def seen_through(self, points: np.ndarray, rel_tol: float, abs_tol_m: float) -> np.ndarray:
        """True where this scan's return in the point's cell lies beyond the point: the ray crossed it."""
        r, az, el = _angles(points)
        r_new = self.grid[self.cells(az, el)]
        return np.isfinite(r_new) & (r_new > r * (1.0 + rel_tol) + abs_tol_m)


class LidarMemory:
    """The last scans with poses; thread-safe (the node adds on the worker, diagnostics read)."""

    def __init__(self, params: MemoryParams | None = None) -> None:
        self.params = params or MemoryParams()
        self._scans: deque[MemoryScan] = deque()
        self._lock = threading.Lock()
        self._tested_against: int | None = None  # stamp of the newest scan the free-space test used

    def __len__(self) -> int:
        return len(self._scans)

    @property
    def n_points(self) -> int:
        with self._lock:
            return sum(s.points.shape[0] for s in self._scans)

    def newest_stamp_ns(self) -> int | None:
        with self._lock:
            return self._scans[-1].stamp_ns if self._scans else None

    def clear(self) -> None:
        with self._lock:
            self._scans.clear()
            self._tested_against = None

    def add(self, points: np.ndarray, stamp_ns: int, T_fixed_lidar: np.ndarray) -> None:
        """Remember a scan (N x >=3, LiDAR frame; non-finite rows dropped). A scan not newer than the newest
        is ignored (a reordered message must not become 'the newest'); the oldest scans go first when a
        bound is exceeded."""
        pts = np.asarray(points)
        if pts.ndim != 2 or pts.shape[1] < 3:
            raise DepthNodesError(f"memory: points must be N x 3, got shape {pts.shape}")
        pts = np.ascontiguousarray(pts[:, :3], dtype=np.float32)
        pts = pts[np.isfinite(pts).all(axis=1)]
        T = np.asarray(T_fixed_lidar, np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise DepthNodesError("memory: T_fixed_lidar must be a finite 4x4 transform")
        p = self.params
        with self._lock:
            if self._scans and int(stamp_ns) <= self._scans[-1].stamp_ns:
                return
            self._scans.append(MemoryScan(pts, int(stamp_ns), T))
            while len(self._scans) > 1 and (
                len(self._scans) > p.max_scans
                or sum(s.points.shape[0] for s in self._scans) > p.max_points
                or (int(stamp_ns) - self._scans[0].stamp_ns) * 1e-9 > p.max_age_s
            ):
                self._scans.popleft()

    def _free_space_test(self) -> None:
        """Mark the points of older scans that the newest scan sees through (once per newest scan)."""
        newest = self._scans[-1]
        if self._tested_against == newest.stamp_ns:
            return
        p = self.params
        image = RangeImage(newest.points, p.azimuth_res_deg, p.elevation_res_deg)
        T_new_fixed = invert(newest.T_fixed_lidar)
        for s in list(self._scans)[:-1]:
            in_newest = transform_points((T_new_fixed @ s.T_fixed_lidar).astype(np.float32), s.points)
            s.keep = ~image.seen_through(in_newest, p.free_rel_tol, p.free_abs_tol_m)
        newest.keep = None
        newest.moved_in = None
        if len(self._scans) > 1:  # what moved in between the last two scans (flagged, kept: the newest view)
            prev = self._scans[-2]
            prev_image = RangeImage(prev.points, p.azimuth_res_deg, p.elevation_res_deg)
            in_prev = transform_points((invert(prev.T_fixed_lidar) @ newest.T_fixed_lidar).astype(np.float32),
                                       newest.points)  # fmt: skip
            newest.moved_in = prev_image.seen_through(in_prev, p.free_rel_tol, p.free_abs_tol_m)
        self._tested_against = newest.stamp_ns

    def carry(self, T_fixed_cam: np.ndarray, stamp_ns: int, T_cam_lidar: np.ndarray | None = None) -> Carried:
        """The memory in the camera frame at ``stamp_ns`` (``T_fixed_cam`` = the camera's pose then).

        ``T_cam_lidar`` (static extrinsics) places the LiDAR at the image time for the travelled distance;
        without it the camera's position stands in (off by at most the lever arm when the robot turns).
        Scans older than ``max_age_s`` at ``stamp_ns`` (or newer than the image) are not carried.
        """
        p = self.params
        T_cam_fixed = invert(np.asarray(T_fixed_cam, np.float64))
        T_now = np.asarray(T_fixed_cam, np.float64)
        if T_cam_lidar is not None:
            T_now = T_now @ np.asarray(T_cam_lidar, np.float64)
        with self._lock:
            scans = [s for s in self._scans if 0 <= (stamp_ns - s.stamp_ns) * 1e-9 <= p.max_age_s]
            if not scans:
                return Carried(np.zeros((0, 3), np.float32), np.zeros(0, np.float32), stamp_ns, 0,
                               float("inf"), 0.0, 0)  # fmt: skip
            if scans[-1] is self._scans[-1]:
                self._free_space_test()
            pos = [s.T_fixed_lidar[:3, 3] for s in scans] + [T_now[:3, 3]]
            steps = np.linalg.norm(np.diff(np.asarray(pos), axis=0), axis=1)
            travelled = np.cumsum(steps[::-1])[::-1]  # path from each scan to the image
            out_pts, out_conf, moving, n_dropped = [], [], [], 0
            for s, dist_m in zip(scans, travelled, strict=True):
                pts = s.points if s.keep is None else s.points[s.keep]
                n_dropped += s.points.shape[0] - pts.shape[0]
                age_s = (stamp_ns - s.stamp_ns) * 1e-9
                conf = 0.5 ** (age_s / p.half_life_s) * 0.5 ** (dist_m / p.half_distance_m)
                T = (T_cam_fixed @ s.T_fixed_lidar).astype(np.float32)
                out_pts.append(transform_points(T, pts))
                out_conf.append(np.full(pts.shape[0], conf, np.float32))
                if s.keep is not None and not s.keep.all():
                    moving.append(transform_points(T, s.points[~s.keep]))
                if s.moved_in is not None and s.moved_in.any():
                    moving.append(transform_points(T, s.points[s.moved_in]))
            newest_age = (stamp_ns - scans[-1].stamp_ns) * 1e-9
            return Carried(np.concatenate(out_pts), np.concatenate(out_conf), stamp_ns, len(scans),
                           newest_age, float(travelled[-1]), n_dropped,
                           np.concatenate(moving) if moving else None)  # fmt: skip
