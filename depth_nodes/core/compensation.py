"""Which motion compensation a paired scan gets, and its diagnostics text (ROS-free policy).

Modes (the node's ``motion_compensation``):

- ``tf``: odometry TF. ``camera(t_image) <- lidar(t_scan)`` from tf2's ``lookup_transform_full`` through
  ``fixed_frame``; with per-point times and ``deskew``, the sweep is first deskewed to ``t_scan`` with the
  twist of two odometry poses ``twist_window_s`` apart ending at ``t_scan`` (:func:`motion.velocity_from_poses`).
  When the fixed frame is not available the scan is used at its own stamp and the status says why.
- ``lidar_odometry``: no odometry TF needed; the twist from the last two scans registered by KISS-ICP
  (:class:`lidar_odometry.LidarOdometry`) both deskews the sweep and moves it to the image's time.
- ``off``: the scan at its own stamp (``no motion compensation``).
- ``auto``: ``tf`` when the extrinsics come from tf2, else ``off``.

``extrinsics`` is duck-typed: ``lookup(camera, lidar, stamp_ns)`` (all sources) and, for TF,
``lookup_full(camera, t_image_ns, lidar, t_scan_ns, fixed_frame)`` and ``lookup_pose(fixed, lidar, t_ns)``;
failures raise :class:`~depth_nodes.errors.DepthNodesError` subclasses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from depth_nodes.core import motion
from depth_nodes.errors import DepthNodesError

MODES = ("auto", "tf", "lidar_odometry", "off")
#: After a failed odometry lookup, frames skip it this long (a missing fixed frame must not cost every frame
#: the TF timeout); the status keeps the reason.
TF_RETRY_S = 2.0


@dataclass(frozen=True)
class Compensated:
    """A scan brought to the image: points in the LiDAR frame at ``t_scan`` (deskewed when ``deskewed``)
    and ``T_cam_lidar`` = ``camera(t_image) <- lidar(t_scan)``; ``status`` for the diagnostics."""

    points: np.ndarray
    T_cam_lidar: np.ndarray
    status: str
    deskewed: bool


def resolve_mode(mode: str, extrinsics) -> str:
    """``auto`` -> ``tf`` when the extrinsics can do time-travel lookups (tf2), else ``off``."""
    if mode not in MODES:
        raise DepthNodesError(f"motion_compensation must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "auto":
        return "tf" if hasattr(extrinsics, "lookup_full") else "off"
    return mode


class ScanCompensator:
    """Applies the configured motion compensation to paired scans (one per frame, worker thread)."""

    def __init__(self, mode: str, extrinsics, odometry=None) -> None:
        self.requested = mode
        self.mode = resolve_mode(mode, extrinsics)
        if self.mode == "tf" and not hasattr(extrinsics, "lookup_full"):
            raise DepthNodesError(
                "motion_compensation is 'tf' but the extrinsics do not come from tf2 "
                "(extrinsics_source parameters, or tf2_ros not importable): use auto, lidar_odometry or off"
            )
        if self.mode == "lidar_odometry" and odometry is None:
            raise DepthNodesError("motion_compensation is 'lidar_odometry' but no LiDAR odometry was given")
        self.extrinsics = extrinsics
        self.odometry = odometry
        self.status = motion.status("off" if self.mode == "off" else self.mode, detail="no frame yet")
        self._tf_retry_at = 0.0
        self._tf_failure = ""

    def apply(
        self,
        points: np.ndarray,
        point_time_ns: np.ndarray | None,
        lidar_frame: str,
        t_scan_ns: int,
        camera_frame: str,
        t_image_ns: int,
        fixed_frame: str = "odom",
        deskew: bool = True,
        twist_window_s: float = 0.1,
    ) -> Compensated:
        """Compensate one scan; raises :class:`DepthNodesError` only when no extrinsics exist at all."""
        timed = deskew and point_time_ns is not None and point_time_ns.size and np.ptp(point_time_ns) > 0
        if self.mode == "off":
            out = Compensated(points, self.extrinsics.lookup(camera_frame, lidar_frame, t_scan_ns),
                              motion.STATUS_NONE, False)  # fmt: skip
        elif self.mode == "tf":
            out = self._tf(points, point_time_ns if timed else None, lidar_frame, t_scan_ns, camera_frame,
                           t_image_ns, fixed_frame, twist_window_s)  # fmt: skip
        else:
            out = self._odometry(points, point_time_ns if timed else None, lidar_frame, t_scan_ns,
                                 camera_frame, t_image_ns)  # fmt: skip
        self.status = out.status
        return out

    def _tf(self, points, times, lidar, t_scan, camera, t_image, fixed, window_s) -> Compensated:
        ext = self.extrinsics
        if time.monotonic() < self._tf_retry_at:
            T = ext.lookup(camera, lidar, t_scan)
            return Compensated(points, T, motion.status("off", detail=self._tf_failure), False)
        try:
            T = ext.lookup_full(camera, t_image, lidar, t_scan, fixed)
        except DepthNodesError as exc:
            T = ext.lookup(camera, lidar, t_scan)  # raises when there are no extrinsics at all
            self._tf_retry_at = time.monotonic() + TF_RETRY_S
            self._tf_failure = f"no odometry TF: {exc}"
            return Compensated(points, T, motion.status("off", detail=self._tf_failure), False)
        if times is None:
            return Compensated(points, T, motion.status("tf", fixed, False), False)
        window_ns = int(round(window_s * 1e9))
        try:
            T_a = ext.lookup_pose(fixed, lidar, t_scan - window_ns)
            T_b = ext.lookup_pose(fixed, lidar, t_scan)
            velocity = motion.velocity_from_poses(T_a, t_scan - window_ns, T_b, t_scan)
        except DepthNodesError as exc:
            return Compensated(points, T, motion.status("tf", fixed, False, f"no twist: {exc}"), False)
        out = motion.deskew(points, times * 1e-9, velocity)
        return Compensated(out, T, motion.status("tf", fixed, True), True)

    def _odometry(self, points, times, lidar, t_scan, camera, t_image) -> Compensated:
        T_static = self.extrinsics.lookup(camera, lidar, t_scan)
        velocity = self.odometry.update(points, t_scan)
        name = "lidar odometry (kiss-icp)"
        if velocity is None:
            return Compensated(points, T_static, motion.status(name, detail="waiting for a second scan"), False)
        T = motion.scan_to_image_transform(T_static, velocity, t_scan, t_image)
        if times is None:
            return Compensated(points, T, motion.status(name, deskewed=False), False)
        return Compensated(motion.deskew(points, times * 1e-9, velocity), T, motion.status(name, deskewed=True), True)
