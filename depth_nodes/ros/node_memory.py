"""The node's side of the LiDAR memory (mode ``lidar_memory``): odometry poses from TF, hooks for the worker.

The numerics live in :mod:`depth_nodes.pipeline.memory_mode` (ROS-free). Here:

- :meth:`NodeMemory.remember` (worker, after each frame with a usable fresh scan): the scan (deskewed as the
  frame used it) with its odometry pose ``fixed_frame <- lidar`` at the scan stamp, from tf2
  (``Buffer.lookup_transform``), when motion compensation runs on TF; otherwise without a pose (the memory
  then serves only while the robot is still).
- :meth:`NodeMemory.prepare` (worker, for an image without a fresh scan): the camera's odometry pose at the
  image stamp, ``T_fixed_lidar(t_image) @ inv(T_cam_lidar)`` (the LiDAR's odometry frame keeps moving in TF
  while the LiDAR itself is silent), and whether the memory can serve the image.

Together with ``T_fixed_lidar`` of each scan this is what ``lookup_transform_full(camera, t_image, lidar,
t_scan, fixed_frame)`` composes. A failed odometry lookup is retried only after ``TF_RETRY_S`` (a missing
fixed frame must not cost every frame the TF timeout); the diagnostics keep the reason.
"""

from __future__ import annotations

import time

import numpy as np

from depth_nodes import pipeline as pl
from depth_nodes.core.compensation import TF_RETRY_S
from depth_nodes.core.transforms import invert
from depth_nodes.errors import DepthNodesError
from depth_nodes.pipeline.lidar_memory import MemoryParams
from depth_nodes.pipeline.memory_mode import MemoryFallback


def memory_params(p) -> MemoryParams:
    return MemoryParams(
        max_scans=p.memory_max_scans, max_age_s=p.memory_max_age_s, half_life_s=p.memory_half_life_s,
        half_distance_m=p.memory_half_distance_m,
    )  # fmt: skip


class NodeMemory:
    """LiDAR memory of a DepthNode (``node``): build with :func:`make_memory`."""

    def __init__(self, node) -> None:
        self.node = node
        self.fallback = MemoryFallback(memory_params(node.p), mono=node.selector.for_mode(pl.MONOCULAR))
        self.odometry = node.motion.mode == "tf"  # odometry TF through fixed_frame
        self.why_no_odometry = (
            "" if self.odometry else f"motion compensation is {node.motion.mode!r}, not TF odometry"
        )
        self._retry_at = 0.0

    def _pose(self, fixed: str, lidar: str, t_ns: int) -> np.ndarray | None:
        if not self.odometry or time.monotonic() < self._retry_at:
            return None
        try:
            T = self.node.extrinsics.lookup_pose(fixed, lidar, t_ns)
        except DepthNodesError as exc:
            self._retry_at = time.monotonic() + TF_RETRY_S
            self.why_no_odometry = f"no odometry TF: {exc}"
            return None
        self.why_no_odometry = ""
        return T

    def remember(self, frame, scan: pl.Scan, result, p) -> None:
        """After a frame: remember its scan when it was good enough for guided depth."""
        sparse = result.sparse
        if sparse is None or int(np.count_nonzero(sparse.depth)) < p.min_lidar_points:
            return
        newest = self.fallback.memory.newest_stamp_ns()
        if newest is not None and scan.stamp_ns <= newest:
            return  # the same scan paired with another image
        try:
            T_cam_lidar = self.node.extrinsics.lookup(frame.frame_id, scan.frame_id, scan.stamp_ns)
        except DepthNodesError:
            return
        T_fixed_lidar = self._pose(p.fixed_frame, scan.frame_id, scan.stamp_ns)
        self._lidar_frame = scan.frame_id
        self.fallback.remember(scan.points, scan.stamp_ns, T_fixed_lidar, T_cam_lidar, frame.rgb)

    def prepare(self, frame, p) -> tuple[bool, str]:
        """Before an image without a fresh scan: can the memory serve it (``FramePipeline.process(memory=)``)."""
        lidar = getattr(self, "_lidar_frame", None)
        if lidar is None:
            return self.fallback.prepare(frame.stamp_ns, None, frame.rgb, "no scan yet")
        T_fixed_cam = T_cam_lidar = None
        if self.fallback.kind == "odometry":
            T_fixed_lidar = self._pose(p.fixed_frame, lidar, frame.stamp_ns)
            if T_fixed_lidar is not None:
                try:
                    T_cam_lidar = self.node.extrinsics.lookup(frame.frame_id, lidar, frame.stamp_ns)
                    T_fixed_cam = T_fixed_lidar @ invert(T_cam_lidar)
                except DepthNodesError as exc:
                    self.why_no_odometry = f"no camera <- LiDAR transform: {exc}"
        return self.fallback.prepare(
            frame.stamp_ns, T_fixed_cam, frame.rgb, self.why_no_odometry, T_cam_lidar
        )

    def diagnostics(self) -> dict[str, str]:
        values, _ = self.fallback.diagnostics()
        if self.why_no_odometry:
            values["memory_odometry_problem"] = self.why_no_odometry
        return values


def make_memory(node) -> NodeMemory | None:
    """The node's LiDAR memory, or None when ``lidar_memory`` is off."""
    return NodeMemory(node) if node.p.lidar_memory else None
