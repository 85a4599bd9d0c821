"""Input side of the depth node: the subscription callbacks convert and validate messages, then hand frames on.

Runs on the executor thread. Bad messages are counted and logged rate-limited per kind of problem; good
images go to the worker's one-slot mailbox, good scans to the scan cache. When the camera is stale each new
scan drives a ``lidar_only`` frame on the last camera geometry.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from depth_nodes import pipeline as pl
from depth_nodes.core.camera import CameraModel
from depth_nodes.errors import DepthNodesError
from depth_nodes.ros import conversions as conv
from depth_nodes.ros.node_main import TOPICS


@dataclass
class ImageFrame:
    """A validated camera frame waiting for the worker."""

    rgb: np.ndarray
    stamp: object  # builtin_interfaces/Time of the image (outputs carry it unchanged)
    stamp_ns: int
    frame_id: str
    camera: CameraModel
    camera_info: object
    received: float  # time.perf_counter() at the callback


@dataclass
class LidarFrame:
    """A scan that drives a frame because the camera is stale (lidar_only on the last camera geometry)."""

    scan: pl.Scan
    stamp: object
    frame_id: str
    camera: CameraModel
    camera_info: object
    received: float


def problem_key(topic: str, exc: Exception) -> str:
    """Rate-limit key of a bad message: topic + the error text with numbers blanked (one key per kind)."""
    return f"{topic}: " + re.sub(r"[-+]?\d[\d.e+-]*", "#", str(exc))[:120]


class NodeInputs:
    """Callbacks of the ``image`` / ``camera_info`` / ``points`` subscriptions of ``node`` (a DepthNode)."""

    def __init__(self, node) -> None:
        self.node = node
        self.cache = pl.ScanCache(size=4)
        self.mailbox = pl.Mailbox()
        self.image_rate, self.lidar_rate, self.info_rate = pl.RateMeter(), pl.RateMeter(), pl.RateMeter()
        self.camera: CameraModel | None = None
        self.camera_info_msg = None
        self._info_key = None
        self.last_camera_frame = ""  # optical frame of the last image (lidar_only outputs use it)

    @property
    def image_topic(self) -> str:
        return TOPICS["image_compressed"] if self.node.p.use_compressed_image else TOPICS["image"]

    def stamp_ok(self, topic: str, stamp_ns: int) -> bool:
        node = self.node
        ahead_s = (stamp_ns - node.now_ns()) * 1e-9
        if ahead_s > node.p.max_future_stamp_s:
            node.warn(
                f"{topic}: future stamp",
                f"{topic}: stamp is {ahead_s:.3f} s in the future (> max_future_stamp_s="
                f"{node.p.max_future_stamp_s}); dropped. Clocks out of sync, or use_sim_time without /clock?",
            )
            return False
        return True

    def on_camera_info(self, msg) -> None:
        node = self.node
        self.info_rate.tick()
        key = (msg.width, msg.height, msg.distortion_model, tuple(msg.k), tuple(msg.d), tuple(msg.p),
               msg.binning_x, msg.binning_y, msg.roi.x_offset, msg.roi.y_offset, msg.roi.width,
               msg.roi.height)  # fmt: skip
        if key == self._info_key:
            self.camera_info_msg = msg
            return
        try:
            camera = conv.camera_info_to_model(msg)
        except DepthNodesError as exc:
            node.warn(
                problem_key("camera_info", exc), f"camera_info: {exc}; keeping the previous camera model"
            )
            return
        old = self.camera
        if old is not None and old.shape != camera.shape:
            node.get_logger().info(
                f"camera resolution changed {old.width}x{old.height} -> {camera.width}x{camera.height}: "
                "re-initialising"
            )
        elif old is not None:
            node.get_logger().info("camera intrinsics changed: re-initialising the camera model")
        self.camera, self.camera_info_msg, self._info_key = camera, msg, key

    def on_image(self, msg) -> None:
        node = self.node
        received = time.perf_counter()
        self.image_rate.tick()
        topic = self.image_topic
        try:
            stamp_ns = conv.stamp_to_ns(msg.header.stamp)
            if not self.stamp_ok(topic, stamp_ns):
                return
            rgb = conv.compressed_to_rgb(msg) if node.p.use_compressed_image else conv.image_to_rgb(msg)
        except DepthNodesError as exc:
            node.warn(problem_key(topic, exc), f"{topic}: {exc}; frame dropped")
            return
        camera, info = self.camera, self.camera_info_msg
        if camera is None:
            node.warn(f"{topic}: no camera_info", f"{topic}: no CameraInfo received yet on "
                      f"'{node.resolve_topic_name(TOPICS['camera_info'])}'; frame dropped")  # fmt: skip
            return
        if rgb.shape[:2] != camera.shape:
            node.warn(
                f"{topic}: size mismatch",
                f"{topic}: image is {rgb.shape[1]}x{rgb.shape[0]} but CameraInfo says "
                f"{camera.width}x{camera.height}; waiting for a matching CameraInfo (frame dropped)",
            )
            return
        frame_id = msg.header.frame_id or info.header.frame_id
        if not frame_id:
            node.warn(f"{topic}: no frame", f"{topic}: empty frame_id on image and CameraInfo; frame dropped")
            return
        self.mailbox.put(ImageFrame(rgb, msg.header.stamp, stamp_ns, frame_id, camera, info, received))

    def on_points(self, msg) -> None:
        node = self.node
        received = time.perf_counter()
        topic = TOPICS["points"]
        try:
            stamp_ns = conv.stamp_to_ns(msg.header.stamp)
            if not self.stamp_ok(topic, stamp_ns):
                return
            xyz = conv.pointcloud2_to_arrays(msg).xyz
        except DepthNodesError as exc:
            node.warn(problem_key(topic, exc), f"{topic}: {exc}; scan dropped")
            return
        if not msg.header.frame_id:
            node.warn(f"{topic}: no frame", f"{topic}: empty frame_id; scan dropped (unknown frame)")
            return
        if node.p.lidar_frame and msg.header.frame_id != node.p.lidar_frame:
            node.warn(
                f"{topic}: unknown frame",
                f"{topic}: frame_id {msg.header.frame_id!r} is not lidar_frame {node.p.lidar_frame!r}; "
                "scan dropped",
            )
            return
        if xyz.size and not np.isfinite(xyz.sum()):
            xyz = xyz[np.isfinite(xyz).all(axis=1)]
        if xyz.shape[0] == 0:
            node.warn(f"{topic}: empty", f"{topic}: scan has no finite points; dropped")
            return
        self.lidar_rate.tick()
        scan = pl.Scan(np.ascontiguousarray(xyz, dtype=np.float32), stamp_ns, msg.header.frame_id)
        self.cache.add(scan)
        node.worker.scan_arrived(stamp_ns)
        camera, info = self.camera, self.camera_info_msg
        if camera is not None and self.image_rate.age_s() > node.p.max_image_age_s:
            frame_id = info.header.frame_id or self.last_camera_frame
            if frame_id:
                self.mailbox.put(LidarFrame(scan, msg.header.stamp, frame_id, camera, info, received))
