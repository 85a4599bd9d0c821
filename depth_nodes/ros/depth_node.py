"""The depth node (``depth_node``; ``depth-nodes node``; ``ros2 run depth_nodes depth_node``).

Subscribes ``image`` (or ``image/compressed``), ``camera_info`` and ``points``; publishes ``depth/image``
(32FC1 m, NaN = no estimate), ``depth/camera_info``, ``depth/confidence`` (32FC1 0..1), ``depth/colorized``
(rgb8), ``depth/points`` (float32 x, y, z + packed rgb, camera optical frame) and ``/diagnostics``.

Threads: the executor runs the callbacks, which only convert and validate messages (bad ones are counted
and logged rate-limited) and hand frames to a one-slot mailbox; one worker thread pairs, projects,
estimates and publishes, so a busy pipeline drops to the newest frame instead of queueing latency.
Image-driven; when the camera goes stale each new scan drives a ``lidar_only`` frame on the last camera
geometry. All numerics live in :mod:`depth_nodes.pipeline`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from depth_nodes import pipeline as pl
from depth_nodes.core.camera import CameraModel
from depth_nodes.errors import DepthNodesError
from depth_nodes.ros import params as P
from depth_nodes.ros.diagnostics import NodeReport, RateLimitedLog, build_diagnostics

NODE_NAME = "depth_node"
#: Topic names (relative: remap them in launch files or with --ros-args -r).
TOPICS = {
    "image": "image",
    "image_compressed": "image/compressed",
    "camera_info": "camera_info",
    "points": "points",
    "depth": "depth/image",
    "depth_camera_info": "depth/camera_info",
    "confidence": "depth/confidence",
    "colorized": "depth/colorized",
    "cloud": "depth/points",
    "diagnostics": "/diagnostics",
}
FASTDDS_SHM_PROFILE = "fastdds_shm.xml"


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


def _ros():
    """rclpy and message modules, imported lazily so ``depth-nodes --help`` never loads rclpy."""
    import rclpy
    from rclpy.node import Node

    return rclpy, Node


def make_node_class():
    rclpy, Node = _ros()
    from builtin_interfaces.msg import Time as TimeMsg
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import SetParametersResult
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
    from std_msgs.msg import Header

    from depth_nodes.ros import conversions as conv
    from depth_nodes.ros import qos as Q
    from depth_nodes.ros.extrinsics import ExtrinsicsError, make_extrinsics

    class DepthNode(Node):
        """See the module docstring; parameters in :mod:`depth_nodes.ros.params`."""

        def __init__(self, **kwargs) -> None:
            super().__init__(NODE_NAME, **kwargs)
            self.p = P.declare(self)
            log = self.get_logger()
            self.warn = RateLimitedLog(log.warning, self.p.warning_period_s)
            self.selector = pl.EstimatorSelector(
                self.p.completer, self.p.lidar_only_completer, self.p.monocular_estimator, log=log.warning
            )
            self.modes = pl.ModeMachine(self.p.mode_hysteresis_frames, on_transition=self._on_transition)
            self.pipeline = pl.FramePipeline(self.selector, self.modes, self._criteria(), self._options())
            self.extrinsics = make_extrinsics(self, self.p)
            log.info(f"extrinsics source: {self.extrinsics.source}")
            names = self.selector.active_names
            log.info(
                f"estimators: guided={names[pl.GUIDED]}, lidar_only={names[pl.LIDAR_ONLY]}, "
                f"monocular={self.p.monocular_estimator or 'none'}"
            )
            self.cache = pl.ScanCache(size=4)
            self.mailbox = pl.Mailbox()
            self.latency = pl.RollingStats(300)
            self.processing = pl.RollingStats(300)
            self.stage_ms: dict[str, pl.RollingStats] = {}
            self.image_rate, self.lidar_rate = pl.RateMeter(), pl.RateMeter()
            self.info_rate, self.output_rate = pl.RateMeter(), pl.RateMeter()
            self.frames_published = 0
            self.frames_not_published = 0
            self.last_not_published = ""
            self.last_transition = ""
            self.qos_problems = 0
            self.camera: CameraModel | None = None
            self.camera_info_msg = None
            self._info_key = None
            self._last_camera_frame = ""  # optical frame of the last image (lidar_only outputs use it)
            # An image whose scan has not arrived yet waits here (at most max_lidar_age_s after receipt).
            self._pending: ImageFrame | None = None
            self._pending_deadline = 0.0
            self._pending_lock = threading.Lock()
            self._create_endpoints()
            self.add_on_set_parameters_callback(self._on_set_parameters)
            self.diag_timer = self.create_timer(self.p.diagnostics_period_s, self._on_diagnostics_timer)
            self._running = True
            self.worker = threading.Thread(target=self._work, name="depth_worker", daemon=True)
            self.worker.start()

        # ------------------------------------------------------------------ set-up
        def _criteria(self) -> pl.LidarCriteria:
            p = self.p
            return pl.LidarCriteria(
                p.max_lidar_age_s, p.min_lidar_points, p.min_depth_m, p.max_depth_m,
                p.occlusion_filter, p.keep_lidar_returns,
            )  # fmt: skip

        def _options(self) -> pl.OutputOptions:
            p = self.p
            return pl.OutputOptions(
                p.publish_confidence, p.publish_colorized, p.colorize_min_depth_m, p.colorize_max_depth_m,
                p.colormap, p.publish_points, p.cloud_organized, p.cloud_decimation,
            )  # fmt: skip

        def _create_endpoints(self) -> None:
            p = self.p

            def sub(msg_type, topic, cb, reliability, depth, prefix):
                qos = Q.qos_from_params(reliability, depth)
                events = Q.subscription_event_callbacks(self, topic, qos, prefix, report=self._qos_report)
                return self.create_subscription(msg_type, topic, cb, qos, event_callbacks=events)

            # points first: when a scan and an image are ready together, the scan is cached before the
            # image is handed over (the executor serves ready subscriptions in creation order).
            self.points_sub = sub(
                PointCloud2,
                TOPICS["points"],
                self._on_points,
                p.points_qos_reliability,
                p.points_qos_depth,
                "points",
            )
            self.info_sub = sub(
                CameraInfo, TOPICS["camera_info"], self._on_camera_info,
                p.camera_info_qos_reliability, p.camera_info_qos_depth, "camera_info",
            )  # fmt: skip
            if p.use_compressed_image:
                self.image_sub = sub(
                    CompressedImage, TOPICS["image_compressed"], self._on_image,
                    p.image_qos_reliability, p.image_qos_depth, "image",
                )  # fmt: skip
            else:
                self.image_sub = sub(
                    Image,
                    TOPICS["image"],
                    self._on_image,
                    p.image_qos_reliability,
                    p.image_qos_depth,
                    "image",
                )
            out_qos = Q.publisher_qos(p.output_qos_depth)

            def pub(msg_type, topic):
                events = Q.publisher_event_callbacks(self, topic, out_qos, report=self._qos_report)
                return self.create_publisher(msg_type, topic, out_qos, event_callbacks=events)

            self.depth_pub = pub(Image, TOPICS["depth"])
            self.info_pub = pub(CameraInfo, TOPICS["depth_camera_info"])
            self.conf_pub = pub(Image, TOPICS["confidence"])
            self.color_pub = pub(Image, TOPICS["colorized"])
            self.cloud_pub = pub(PointCloud2, TOPICS["cloud"])
            self.diag_pub = self.create_publisher(DiagnosticArray, TOPICS["diagnostics"], Q.publisher_qos(1))

        def _qos_report(self, text: str) -> None:
            self.qos_problems += 1

        # ------------------------------------------------------------------ parameters at runtime
        def _on_set_parameters(self, parameters) -> SetParametersResult:
            changes = {prm.name: prm.value for prm in parameters}
            new, reason = P.check_change(self.p, changes)
            if new is None:
                self.get_logger().warning(f"parameter change rejected: {reason}")
                return SetParametersResult(successful=False, reason=reason)
            self.p = new
            self.pipeline.criteria = self._criteria()
            self.pipeline.options = self._options()
            self.modes.hysteresis = new.mode_hysteresis_frames
            self.warn.period_s = new.warning_period_s
            if hasattr(self.extrinsics, "timeout_s"):
                self.extrinsics.timeout_s = new.tf_timeout_s
            ours = sorted(k for k in changes if k in P.SPEC_BY_NAME)
            if ours:
                self.get_logger().info(f"parameters changed at runtime: {', '.join(ours)}")
            return SetParametersResult(successful=True)

        # ------------------------------------------------------------------ callbacks (convert + hand over)
        def _now_ns(self) -> int:
            return self.get_clock().now().nanoseconds

        def _stamp_ok(self, topic: str, stamp_ns: int) -> bool:
            ahead_s = (stamp_ns - self._now_ns()) * 1e-9
            if ahead_s > self.p.max_future_stamp_s:
                self.warn(
                    f"{topic}: future stamp",
                    f"{topic}: stamp is {ahead_s:.3f} s in the future (> max_future_stamp_s="
                    f"{self.p.max_future_stamp_s}); dropped. Clocks out of sync, or use_sim_time without /clock?",
                )
                return False
            return True

        def _on_camera_info(self, msg) -> None:
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
                self.warn(
                    problem_key("camera_info", exc), f"camera_info: {exc}; keeping the previous camera model"
                )
                return
            old = self.camera
            if old is not None and old.shape != camera.shape:
                self.get_logger().info(
                    f"camera resolution changed {old.width}x{old.height} -> {camera.width}x{camera.height}: "
                    "re-initialising"
                )
            elif old is not None:
                self.get_logger().info("camera intrinsics changed: re-initialising the camera model")
            self.camera, self.camera_info_msg, self._info_key = camera, msg, key

        def _on_image(self, msg) -> None:
            received = time.perf_counter()
            self.image_rate.tick()
            topic = TOPICS["image_compressed"] if self.p.use_compressed_image else TOPICS["image"]
            try:
                stamp_ns = conv.stamp_to_ns(msg.header.stamp)
                if not self._stamp_ok(topic, stamp_ns):
                    return
                rgb = conv.compressed_to_rgb(msg) if self.p.use_compressed_image else conv.image_to_rgb(msg)
            except DepthNodesError as exc:
                self.warn(problem_key(topic, exc), f"{topic}: {exc}; frame dropped")
                return
            camera, info = self.camera, self.camera_info_msg
            if camera is None:
                self.warn(f"{topic}: no camera_info", f"{topic}: no CameraInfo received yet on "
                          f"'{self.resolve_topic_name(TOPICS['camera_info'])}'; frame dropped")  # fmt: skip
                return
            if rgb.shape[:2] != camera.shape:
                self.warn(
                    f"{topic}: size mismatch",
                    f"{topic}: image is {rgb.shape[1]}x{rgb.shape[0]} but CameraInfo says "
                    f"{camera.width}x{camera.height}; waiting for a matching CameraInfo (frame dropped)",
                )
                return
            frame_id = msg.header.frame_id or info.header.frame_id
            if not frame_id:
                self.warn(
                    f"{topic}: no frame", f"{topic}: empty frame_id on image and CameraInfo; frame dropped"
                )
                return
            self.mailbox.put(ImageFrame(rgb, msg.header.stamp, stamp_ns, frame_id, camera, info, received))

        def _on_points(self, msg) -> None:
            received = time.perf_counter()
            topic = TOPICS["points"]
            try:
                stamp_ns = conv.stamp_to_ns(msg.header.stamp)
                if not self._stamp_ok(topic, stamp_ns):
                    return
                xyz = conv.pointcloud2_to_arrays(msg).xyz
            except DepthNodesError as exc:
                self.warn(problem_key(topic, exc), f"{topic}: {exc}; scan dropped")
                return
            if not msg.header.frame_id:
                self.warn(f"{topic}: no frame", f"{topic}: empty frame_id; scan dropped (unknown frame)")
                return
            if self.p.lidar_frame and msg.header.frame_id != self.p.lidar_frame:
                self.warn(
                    f"{topic}: unknown frame",
                    f"{topic}: frame_id {msg.header.frame_id!r} is not lidar_frame {self.p.lidar_frame!r}; "
                    "scan dropped",
                )
                return
            if xyz.size and not np.isfinite(xyz.sum()):
                xyz = xyz[np.isfinite(xyz).all(axis=1)]
            if xyz.shape[0] == 0:
                self.warn(f"{topic}: empty", f"{topic}: scan has no finite points; dropped")
                return
            self.lidar_rate.tick()
            scan = pl.Scan(np.ascontiguousarray(xyz, dtype=np.float32), stamp_ns, msg.header.frame_id)
            self.cache.add(scan)
            with self._pending_lock:
                waiting = self._pending
                if waiting is not None and abs(stamp_ns - waiting.stamp_ns) <= self.p.max_lidar_age_s * 1e9:
                    if self.mailbox.offer(waiting):  # never displaces a newer image
                        self._pending = None
            camera, info = self.camera, self.camera_info_msg
            if camera is not None and self.image_rate.age_s() > self.p.max_image_age_s:
                frame_id = info.header.frame_id or self._last_camera_frame
                if frame_id:
                    self.mailbox.put(LidarFrame(scan, msg.header.stamp, frame_id, camera, info, received))

        # ------------------------------------------------------------------ worker
        def _work(self) -> None:
            while self._running:
                with self._pending_lock:
                    timeout = (
                        0.5
                        if self._pending is None
                        else max(0.0, self._pending_deadline - time.perf_counter())
                    )
                frame = self.mailbox.get(timeout=timeout)
                with self._pending_lock:
                    expired = self._pending
                    # A newer image supersedes a waiting one; otherwise it waits until its deadline.
                    if expired is not None and (
                        frame is not None or time.perf_counter() >= self._pending_deadline
                    ):
                        self._pending = None
                    else:
                        expired = None
                if expired is not None:
                    self._safe_process(expired, may_wait=False)
                if frame is not None:
                    self._safe_process(frame, may_wait=True)

        def _safe_process(self, frame, may_wait: bool) -> None:
            try:
                self._process(frame, may_wait)
            except DepthNodesError as exc:
                self.warn(f"frame: {type(exc).__name__}", f"frame skipped: {exc}")
            except Exception as exc:  # noqa: BLE001 - the node must survive anything a frame does
                if self._running:
                    self.warn(f"frame: unexpected {type(exc).__name__}", f"frame skipped by an unexpected "
                              f"{type(exc).__name__}: {exc}")  # fmt: skip

        def _wait_for_scan(self, frame: ImageFrame) -> bool:
            """Park ``frame`` when its scan may still arrive (no newer scan yet, still young); True if parked."""
            newest = self.cache.newest()
            if newest is not None and newest.stamp_ns >= frame.stamp_ns:
                return False
            deadline = frame.received + self.p.max_lidar_age_s
            if time.perf_counter() >= deadline:
                return False
            with self._pending_lock:
                if self.cache.nearest(frame.stamp_ns, self.p.max_lidar_age_s) is not None:
                    return False  # arrived meanwhile: process now
                self._pending, self._pending_deadline = frame, deadline
            return True

        def _pair(self, frame: ImageFrame) -> tuple[pl.Scan | None, np.ndarray | None, str]:
            scan = self.cache.nearest(frame.stamp_ns, self.p.max_lidar_age_s)
            if scan is None:
                newest = self.cache.newest()
                if newest is None:
                    return None, None, "no LiDAR scan received yet"
                gap = abs(newest.stamp_ns - frame.stamp_ns) * 1e-9
                return (
                    None,
                    None,
                    f"no LiDAR scan within max_lidar_age_s={self.p.max_lidar_age_s} s (newest {gap:.3f} s away)",
                )
            try:
                T = self.extrinsics.lookup(frame.frame_id, scan.frame_id, scan.stamp_ns)
            except (ExtrinsicsError, DepthNodesError) as exc:
                self.warn("extrinsics", f"extrinsics: {exc}")
                return None, None, f"no extrinsics: {exc}"
            return scan, T, ""

        def _process(self, frame: ImageFrame | LidarFrame, may_wait: bool = False) -> None:
            if isinstance(frame, ImageFrame):
                self._last_camera_frame = frame.frame_id
                scan, T, why = self._pair(frame)
                if scan is None and may_wait and why.startswith("no LiDAR") and self._wait_for_scan(frame):
                    return
                rgb, stamp_ns = frame.rgb, frame.stamp_ns
            else:
                if self.image_rate.age_s() <= self.p.max_image_age_s:
                    return  # the camera came back while this scan waited
                scan, rgb, stamp_ns, why = frame.scan, None, frame.scan.stamp_ns, ""
                try:
                    T = self.extrinsics.lookup(frame.frame_id, scan.frame_id, scan.stamp_ns)
                except (ExtrinsicsError, DepthNodesError) as exc:
                    self.warn("extrinsics", f"extrinsics: {exc}")
                    scan, T, why = None, None, f"no extrinsics: {exc}"
            self._apply_subscriber_switches()
            result = self.pipeline.process(frame.camera, stamp_ns, frame.frame_id, rgb, scan, T, why)
            if not result.published:
                self.frames_not_published += 1
                self.last_not_published = result.reason
                return
            t0 = time.perf_counter()
            self._publish(result, frame)
            result.timings_ms["publish"] = (time.perf_counter() - t0) * 1e3
            self.frames_published += 1
            self.output_rate.tick()
            self.processing.add((time.perf_counter() - frame.received) * 1e3)
            self.latency.add((self._now_ns() - stamp_ns) * 1e-6)
            for k, v in result.timings_ms.items():
                self.stage_ms.setdefault(k, pl.RollingStats(300)).add(v)

        def _apply_subscriber_switches(self) -> None:
            """Skip outputs nobody listens to (the cloud costs the most); the depth image is always made."""
            opt = self.pipeline.options
            want_cloud = self.p.publish_points and self.cloud_pub.get_subscription_count() > 0
            want_conf = self.p.publish_confidence and self.conf_pub.get_subscription_count() > 0
            want_col = self.p.publish_colorized and self.color_pub.get_subscription_count() > 0
            if (opt.cloud, opt.confidence, opt.colorized) != (want_cloud, want_conf, want_col):
                self.pipeline.options = replace(
                    opt, cloud=want_cloud, confidence=want_conf, colorized=want_col
                )

        def _publish(self, result: pl.FrameResult, frame) -> None:
            header = Header(stamp=frame.stamp, frame_id=result.frame_id)
            self.depth_pub.publish(conv.numpy_to_image(result.depth, "32FC1", header))
            if frame.camera_info is not None:
                info = frame.camera_info
                info.header = header
                self.info_pub.publish(info)
            if result.confidence is not None:
                self.conf_pub.publish(conv.numpy_to_image(result.confidence, "32FC1", header))
            if result.colorized is not None:
                self.color_pub.publish(conv.numpy_to_image(result.colorized, "rgb8", header))
            if result.cloud_xyz is not None:
                self.cloud_pub.publish(
                    conv.xyzrgb_to_pointcloud2(
                        result.cloud_xyz, result.cloud_rgb, header, result.cloud_organized
                    )
                )

        # ------------------------------------------------------------------ modes and diagnostics
        def _on_transition(self, t: pl.Transition) -> None:
            text = f"mode {t.old} -> {t.new}: {t.reason}"
            self.last_transition = text
            if t.old == pl.NONE and not self.modes.history[:-1]:
                self.get_logger().info(text)
            else:
                self.get_logger().warning(text)
            if t.new == pl.MONOCULAR and self.selector.for_mode(pl.MONOCULAR) is None:
                self.get_logger().warning(self.selector.MONOCULAR_MISSING)
            if hasattr(self, "diag_pub"):
                self._publish_diagnostics()

        def _on_diagnostics_timer(self) -> None:
            # Nothing arrives at all: the frame-driven proposals stop, so the timer proposes `none`.
            if (
                self.image_rate.age_s() > self.p.input_timeout_s
                and self.lidar_rate.age_s() > self.p.input_timeout_s
                and self.modes.mode != pl.NONE
            ):
                self.modes.propose(pl.NONE, "no camera image and no LiDAR scan arriving")
            self._publish_diagnostics()

        def report(self) -> NodeReport:
            lat = self.latency.percentiles((50, 90, 99))
            proc = self.processing.percentiles((50, 99))
            values: dict[str, object] = {
                "estimator": self.selector.active_names.get(self.modes.mode, "") or "none",
                "estimator_guided": self.selector.active_names[pl.GUIDED],
                "estimator_lidar_only": self.selector.active_names[pl.LIDAR_ONLY],
                "extrinsics_source": self.extrinsics.source,
                "image_age_s": self.image_rate.age_s(),
                "lidar_age_s": self.lidar_rate.age_s(),
                "camera_info_age_s": self.info_rate.age_s(),
                "image_rate_hz": self.image_rate.rate_hz(),
                "lidar_rate_hz": self.lidar_rate.rate_hz(),
                "output_rate_hz": self.output_rate.rate_hz(),
                "latency_p50_ms": lat[50],
                "latency_p90_ms": lat[90],
                "latency_p99_ms": lat[99],
                "processing_p50_ms": proc[50],
                "processing_p99_ms": proc[99],
                "frames_in": self.mailbox.received,
                "frames_published": self.frames_published,
                "frames_not_published": self.frames_not_published,
                "last_not_published_reason": self.last_not_published,
                "drops": self.mailbox.dropped,
                "rejected_messages": self.warn.total,
                "qos_incompatibilities": self.qos_problems,
                "last_transition": self.last_transition,
                "camera": f"{self.camera.width}x{self.camera.height}" if self.camera else "none yet",
            }
            for stage, stats in self.stage_ms.items():
                values[f"stage_{stage}_p50_ms"] = stats.percentiles((50,))[50]
            return NodeReport(self.modes.mode, self.modes.reason, values)

        def _publish_diagnostics(self) -> None:
            stamp = TimeMsg()
            stamp.sec, stamp.nanosec = divmod(self._now_ns(), 10**9)
            self.diag_pub.publish(build_diagnostics(self.report(), self.get_name(), stamp))

        def shutdown(self) -> None:
            self._running = False
            self.mailbox.close()
            self.worker.join(timeout=2.0)

    return DepthNode


# ------------------------------------------------------------------------------------------ entry points
def shm_profile_path() -> Path | None:
    """The shipped Fast DDS shared-memory profile (source tree or installed share/), if found."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "config" / FASTDDS_SHM_PROFILE]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("depth_nodes")) / "config" / FASTDDS_SHM_PROFILE)
    except Exception:  # noqa: BLE001 - not installed through ament: source tree only
        pass
    return next((c for c in candidates if c.is_file()), None)


def use_shm_transport() -> Path:
    """Point Fast DDS at the shipped large-segment SHM profile (before rclpy.init); returns the profile."""
    path = shm_profile_path()
    if path is None:
        raise DepthNodesError(f"config/{FASTDDS_SHM_PROFILE} not found (source tree or installed share)")
    os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(path)
    os.environ.setdefault("RMW_FASTRTPS_USE_QOS_FROM_XML", "0")
    return path


def spin_node(args: list[str] | None) -> int:
    """Create the node and spin until Ctrl-C / SIGTERM; parameter errors -> message and exit code 1."""
    from depth_nodes.core.memory import tune_malloc

    tune_malloc()
    rclpy, _ = _ros()
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=args)
    node = None
    try:
        node = make_node_class()()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except DepthNodesError as exc:
        print(f"{NODE_NAME}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(args: list[str] | None = None) -> int:
    """Console script ``depth_node`` (and ``ros2 run depth_nodes depth_node``)."""
    argv = sys.argv if args is None else args
    if "--shm" in argv:
        argv = [a for a in argv if a != "--shm"]
        use_shm_transport()
    return spin_node(argv)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the depth node. Inputs: image (or image/compressed), camera_info, points; outputs depth/image "
        "(32FC1 metres, NaN = no estimate), depth/camera_info, depth/confidence (0..1), depth/colorized "
        "(rgb8), depth/points, /diagnostics. ROS arguments go after --ros-args, e.g. "
        "`depth-nodes node --ros-args --params-file config/depth_nodes.yaml -r image:=/cam/image_raw`."
    )
    parser.add_argument(
        "--shm",
        action="store_true",
        help="use the shipped Fast DDS profile with a 64 MB shared-memory segment (config/fastdds_shm.xml)",
    )
    parser.add_argument(
        "--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=[], help="passed to rclpy unchanged"
    )


def run(args: argparse.Namespace) -> int:
    if args.shm:
        use_shm_transport()
    return spin_node([NODE_NAME, "--ros-args", *args.ros_args] if args.ros_args else [NODE_NAME])


if __name__ == "__main__":
    sys.exit(main())
