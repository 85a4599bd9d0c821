"""Input side of the depth node: the subscription callbacks convert and validate messages, then hand frames on.

Runs on the executor thread. Bad messages are counted and logged rate-limited per kind of problem; good
images go to the worker's one-slot mailbox, good scans to the scan cache. Each image is paired with the
CameraInfo of its own stamp (``camera_info_sync: stamp``, within ``camera_info_stamp_tolerance_s``;
:class:`~depth_nodes.pipeline.sync.CameraInfoSync`), waiting briefly for one that has not arrived yet, or with
the newest one (``latest``). Only *accepted* images keep the
camera fresh: an image rejected for its stamp, size or encoding is counted by cause (diagnostics name it)
and leaves the camera stale. When the camera is stale each new scan drives a ``lidar_only`` frame on the
last camera geometry. No exception escapes a callback (:func:`guarded`): the node survives any message.
"""

from __future__ import annotations

import functools
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from depth_nodes import pipeline as pl
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.rectification import Rectifier
from depth_nodes.errors import DepthNodesError
from depth_nodes.msgs.cloud import pointcloud2_to_arrays
from depth_nodes.msgs.image import BitDepthTracker, compressed_to_rgb, image_to_rgb
from depth_nodes.msgs.stamp import stamp_to_ns
from depth_nodes.ros.builders.camera_info import CameraGeometry, camera_geometry
from depth_nodes.ros.node_main import TOPICS


@dataclass
class ImageFrame:
    """A validated camera frame waiting for the worker.

    ``image`` is the decoded input image; :attr:`rgb` is that image in the published geometry (``camera``):
    rectified by ``rectifier`` on first use (on the worker thread, timed in ``rectify_ms``), or ``image`` itself.
    """

    image: np.ndarray
    stamp: object  # builtin_interfaces/Time of the image (outputs carry it unchanged)
    stamp_ns: int
    frame_id: str
    camera: CameraModel
    camera_info: object  # CameraInfo describing the published depth (header replaced at publish)
    received: float  # time.perf_counter() at the callback
    rectifier: Rectifier | None = None
    output: str = "rectified"  # geometry of the published depth: "rectified" / "raw" (depth_geometry)
    rectify_ms: float | None = None
    _rgb: np.ndarray | None = None

    @property
    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            if self.rectifier is None:
                self._rgb = self.image
            else:
                t0 = time.perf_counter()
                self._rgb = self.rectifier.rectify(self.image)
                self.rectify_ms = (time.perf_counter() - t0) * 1e3
        return self._rgb


@dataclass
class _Decoded:
    """A decoded image waiting for the CameraInfo of its stamp."""

    rgb: np.ndarray
    stamp: object
    stamp_ns: int
    frame_id: str
    received: float


@dataclass(frozen=True)
class _Info:
    """One received CameraInfo: its geometry (shared by every message with the same calibration) and frame."""

    geometry: CameraGeometry
    frame_id: str


@dataclass
class LidarFrame:
    """A scan that drives a frame because the camera is stale (lidar_only on the last camera geometry)."""

    scan: pl.Scan
    stamp: object
    frame_id: str
    camera: CameraModel
    camera_info: object
    received: float
    output: str = "rectified"


def problem_key(topic: str, exc: Exception) -> str:
    """Rate-limit key of a bad message: topic + the error text with numbers blanked (one key per kind)."""
    return f"{topic}: " + re.sub(r"[-+]?\d[\d.e+-]*", "#", str(exc))[:120]


def guarded(node, name: str, callback: Callable) -> Callable:
    """``callback`` that logs (rate-limited) instead of raising: an executor callback that raises ends
    ``spin()`` and with it the node, so nothing may escape, whatever a message or a bug does."""

    @functools.wraps(callback)
    def run(*args):
        try:
            return callback(*args)
        except Exception as exc:  # noqa: BLE001 - the node must survive anything one message does
            node.warn(
                f"{name}: unexpected {type(exc).__name__}", f"{name}: unexpected {type(exc).__name__}: {exc}"
            )
            return None

    return run


class NodeInputs:
    """Callbacks of the ``image`` / ``camera_info`` / ``points`` subscriptions of ``node`` (a DepthNode)."""

    def __init__(self, node) -> None:
        self.node = node
        self.cache = pl.ScanCache(size=4)
        self.mailbox = pl.Mailbox()
        #: image_rate counts accepted images only (the camera is fresh); images_received every arrival.
        self.image_rate, self.images_received = pl.RateMeter(), pl.RateMeter()
        self.lidar_rate, self.info_rate = pl.RateMeter(), pl.RateMeter()
        #: Of the newest CameraInfo (lidar_only frames and diagnostics use them): the model in the published
        #: geometry, the CameraInfo of the published depth (raw: the input's; rectified: K = P, D = 0, R = I)
        self.camera: CameraModel | None = None
        self.camera_info_msg = None
        self.camera_kind = ""  # "raw" / "rectified": how the last CameraInfo was read (camera_model)
        self.output_geometry = ""  # "raw" / "rectified": geometry of the published depth (depth_geometry)
        self.info_frame_id = ""
        self._geometries: OrderedDict[tuple, CameraGeometry] = OrderedDict()  # by calibration
        self._latest: _Info | None = None
        self.info_sync = pl.CameraInfoSync()
        self.bit_depth = BitDepthTracker()
        self.last_camera_frame = ""  # optical frame of the last image (lidar_only outputs use it)

    @property
    def image_topic(self) -> str:
        return TOPICS["image_compressed"] if self.node.p.use_compressed_image else TOPICS["image"]

    def camera_stale_reason(self, max_image_age_s: float) -> str:
        """Why the camera counts as stale (for mode reasons): the rejection cause when images are rejected."""
        rejected = self.node.stats.recent_image_rejection(max(1.0, 2 * max_image_age_s))
        if rejected:
            return f"camera stale (images rejected: {rejected})"
        return f"camera stale (no image for > max_image_age_s={max_image_age_s} s)"

    def _reject_image(self, cause: str, key: str, text: str) -> None:
        self.node.stats.image_rejected(cause, text)
        self.node.warn(key, f"{self.image_topic}: {text}; frame dropped")

    def stamp_problem(self, stamp_ns: int) -> str:
        """Why a message stamp is not acceptable ("" when it is)."""
        p = self.node.p
        ahead_s = (stamp_ns - self.node.now_ns()) * 1e-9
        if ahead_s > p.max_future_stamp_s:
            return (
                f"stamp is {ahead_s:.3f} s in the future (> max_future_stamp_s={p.max_future_stamp_s}). "
                "Clocks out of sync, or use_sim_time without /clock?"
            )
        return ""

    def on_camera_info(self, msg) -> None:
        node = self.node
        self.info_rate.tick()
        key = (msg.width, msg.height, msg.distortion_model, tuple(msg.k), tuple(msg.d), tuple(msg.r),
               tuple(msg.p), msg.binning_x, msg.binning_y, msg.roi.x_offset, msg.roi.y_offset, msg.roi.width,
               msg.roi.height)  # fmt: skip
        geometry = self._geometries.get(key)
        if geometry is None:
            geometry = self._read_geometry(msg)
            if geometry is None:
                return
            self._geometries[key] = geometry  # a few calibrations kept: a camera may alternate between them
            while len(self._geometries) > 4:
                self._geometries.popitem(last=False)
        self._geometries.move_to_end(key)
        self.camera, self.camera_info_msg = geometry.camera, geometry.depth_info
        self.camera_kind, self.output_geometry = geometry.kind, geometry.output
        self.info_frame_id = msg.header.frame_id
        self._latest = info = _Info(geometry, msg.header.frame_id)
        p = node.p
        try:
            stamp_ns = stamp_to_ns(msg.header.stamp)
        except DepthNodesError as exc:
            node.warn(problem_key("camera_info", exc), f"camera_info: {exc}; not paired by stamp")
            return
        # Kept by stamp in either policy, so a runtime switch to "stamp" finds the recent ones.
        released, dropped = self.info_sync.add_info(
            stamp_ns, info, p.camera_info_stamp_tolerance_s, time.perf_counter()
        )
        self._settle(released, dropped)

    def _read_geometry(self, msg) -> CameraGeometry | None:
        """The geometry of a CameraInfo with a new calibration (logged), None when it is unusable (warned)."""
        node, p = self.node, self.node.p
        try:
            geometry = camera_geometry(
                msg, p.camera_model, node.resolve_topic_name(self.image_topic), p.max_incidence_deg or None,
                p.depth_geometry,
            )  # fmt: skip
        except DepthNodesError as exc:
            node.warn(
                problem_key("camera_info", exc), f"camera_info: {exc}; keeping the previous camera model"
            )
            return None
        camera, old = geometry.camera, self.camera
        if geometry.kind != self.camera_kind or geometry.output != self.output_geometry:
            rectified = " (input images rectified onto P)" if geometry.rectifier is not None else ""
            node.get_logger().info(
                f"camera model: {geometry.kind} ({geometry.reason}); depth published in {geometry.output} "
                f"geometry{rectified}"
            )
        if old is not None and old.shape != camera.shape:
            node.get_logger().info(
                f"camera resolution changed {old.width}x{old.height} -> {camera.width}x{camera.height}: "
                "re-initialising"
            )
        elif old is not None:
            node.get_logger().info("camera intrinsics changed: re-initialising the camera model")
        return geometry

    def expire_waiting(self) -> None:
        """Drop (counted) images that waited too long for their CameraInfo (diagnostics timer)."""
        tolerance_s = self.node.p.camera_info_stamp_tolerance_s
        self._settle([], self.info_sync.expire(time.perf_counter(), tolerance_s))

    def _settle(self, released: list, dropped: list) -> None:
        for _decoded, reason in dropped:
            self._reject_image("unmatched camera_info", f"{self.image_topic}: unmatched camera_info", reason)
        for decoded, info in released:
            self._accept(decoded, info)

    def _accept(self, d: _Decoded, info: _Info) -> None:
        """An image with its CameraInfo: checked against it and handed to the worker."""
        g = info.geometry
        camera = g.camera
        if d.rgb.shape[:2] != camera.shape:
            return self._reject_image(
                "size mismatch",
                f"{self.image_topic}: size mismatch",
                f"image is {d.rgb.shape[1]}x{d.rgb.shape[0]} but CameraInfo says {camera.width}x{camera.height} "
                "(the CameraInfo paired with it)",
            )
        frame_id = d.frame_id or info.frame_id
        if not frame_id:
            return self._reject_image(
                "no frame_id", f"{self.image_topic}: no frame", "empty frame_id on image and CameraInfo"
            )
        self.image_rate.tick()
        self.mailbox.put(
            ImageFrame(
                d.rgb, d.stamp, d.stamp_ns, frame_id, camera, g.depth_info, d.received, g.rectifier, g.output
            )
        )

    def on_image(self, msg) -> None:
        node = self.node
        received = time.perf_counter()
        self.images_received.tick()
        topic = self.image_topic
        try:
            stamp_ns = stamp_to_ns(msg.header.stamp)
        except DepthNodesError as exc:
            return self._reject_image("undecodable", problem_key(topic, exc), str(exc))
        problem = self.stamp_problem(stamp_ns)
        if problem:
            return self._reject_image("future stamp", f"{topic}: future stamp", problem)
        try:
            bits = node.p.image_bit_depth
            if node.p.use_compressed_image:
                rgb = compressed_to_rgb(msg, bits or None)
            else:
                seen = self.bit_depth.detected
                rgb = image_to_rgb(msg, self.bit_depth.bit_depth(msg, bits))
                if self.bit_depth.detected > seen:
                    node.get_logger().info(
                        f"{topic}: 16-bit image data uses {self.bit_depth.detected} bits (detected; set "
                        "image_bit_depth to fix it)"
                    )
        except DepthNodesError as exc:
            return self._reject_image("undecodable", problem_key(topic, exc), str(exc))
        decoded = _Decoded(rgb, msg.header.stamp, stamp_ns, msg.header.frame_id, received)
        if self._latest is None:
            where = node.resolve_topic_name(TOPICS["camera_info"])
            return self._reject_image("no camera_info", f"{topic}: no camera_info",
                                      f"no CameraInfo received yet on '{where}'")  # fmt: skip
        p = node.p
        if p.camera_info_sync == "latest":
            for waiting in self.info_sync.drain():  # the policy changed while images waited
                self._accept(waiting, self._latest)
            return self._accept(decoded, self._latest)
        info, dropped = self.info_sync.add_image(
            stamp_ns, decoded, time.perf_counter(), p.camera_info_stamp_tolerance_s
        )
        self._settle([(decoded, info)] if info is not None else [], dropped)

    def on_points(self, msg) -> None:
        node = self.node
        received = time.perf_counter()
        topic = TOPICS["points"]
        try:
            stamp_ns = stamp_to_ns(msg.header.stamp)
            problem = self.stamp_problem(stamp_ns)
            if problem:
                node.warn(f"{topic}: future stamp", f"{topic}: {problem}; scan dropped")
                return
            cloud = pointcloud2_to_arrays(msg)
        except DepthNodesError as exc:
            node.warn(problem_key(topic, exc), f"{topic}: {exc}; scan dropped")
            return
        xyz, times = cloud.xyz, cloud.point_time_ns
        if cloud.time_error:
            node.warn(f"{topic}: point times", f"{topic}: {cloud.time_error}; scan used without deskewing")
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
            finite = np.isfinite(xyz).all(axis=1)
            xyz = xyz[finite]
            times = None if times is None else times[finite]
        if xyz.shape[0] == 0:
            node.warn(f"{topic}: empty", f"{topic}: scan has no finite points; dropped")
            return
        self.lidar_rate.tick()
        scan = pl.Scan(np.ascontiguousarray(xyz, dtype=np.float32), stamp_ns, msg.header.frame_id, times)
        self.cache.add(scan)
        node.worker.scan_arrived(stamp_ns)
        camera, info = self.camera, self.camera_info_msg
        if camera is not None and self.image_rate.age_s() > node.p.max_image_age_s:
            frame_id = self.info_frame_id or self.last_camera_frame
            if frame_id:
                self.mailbox.put(
                    LidarFrame(scan, msg.header.stamp, frame_id, camera, info, received, self.output_geometry)
                )
