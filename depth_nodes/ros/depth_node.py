"""The depth node (``depth_node``; ``depth-nodes node``; ``ros2 run depth_nodes depth_node``).

Subscribes ``image`` (or ``image/compressed``), ``camera_info`` and ``points``; publishes ``depth/image_rect``
(32FC1 m, NaN = no estimate; a raw camera's image is rectified onto P first, so ``depth/camera_info`` has D = 0
and ``depth_image_proc`` back-projects it right; ``depth/image_raw`` instead, in the input's geometry, only with
``depth_geometry: raw``), ``depth/camera_info``, ``depth/confidence`` (32FC1 0..1), ``depth/colorized`` (rgb8),
``depth/points`` (float32 x, y, z + packed rgb, camera optical frame) and ``/diagnostics``; all in one geometry.

Threads: the executor runs the callbacks (:mod:`.node_inputs`), which only convert and validate messages
(bad ones are counted and logged rate-limited) and hand frames to a one-slot mailbox; one worker thread
(:mod:`.node_worker`) pairs, projects, estimates and publishes, so a busy pipeline drops to the newest frame
instead of queueing latency. Image-driven; when the camera goes stale each new scan drives a ``lidar_only``
frame on the last camera geometry. All numerics live in :mod:`depth_nodes.pipeline`; entry points in
:mod:`.node_main` (which imports no rclpy until the node starts).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from depth_nodes import pipeline as pl
from depth_nodes.pipeline.drift import DriftMonitor, merge_status
from depth_nodes.ros import params, qos
from depth_nodes.ros.builders.cloud import xyzrgb_to_pointcloud2
from depth_nodes.ros.builders.image import numpy_to_image
from depth_nodes.ros.diagnostics import WARN, NodeReport, RateLimitedLog, assess, build_diagnostics
from depth_nodes.ros.extrinsics import make_compensator, make_extrinsics
from depth_nodes.ros.node_inputs import NodeInputs, guarded, problem_key  # noqa: F401 - problem_key re-exported
from depth_nodes.ros.node_main import NODE_NAME, TOPICS, main  # noqa: F401 - main: console script target
from depth_nodes.ros.node_memory import make_memory
from depth_nodes.ros.node_stats import NodeStats, timing_values
from depth_nodes.ros.node_worker import FrameWorker


@dataclass(frozen=True)
class Settings:
    """Everything a frame reads from the parameters, swapped as a whole by the parameter callback."""

    params: params.NodeParams
    criteria: pl.LidarCriteria
    options: pl.OutputOptions  # as configured; outputs nobody subscribes to are switched off per frame

    @classmethod
    def from_params(cls, p: params.NodeParams) -> Settings:
        criteria = pl.LidarCriteria(
            p.max_lidar_age_s, p.min_lidar_points, p.min_depth_m, p.max_depth_m,
            p.occlusion_filter, p.keep_lidar_returns,
        )  # fmt: skip
        options = pl.OutputOptions(
            p.publish_confidence, p.publish_colorized, p.colorize_min_depth_m, p.colorize_max_depth_m,
            p.colormap, p.publish_points, p.cloud_organized, p.cloud_decimation,
        )  # fmt: skip
        return cls(p, criteria, options)


def copy_camera_info(info, header) -> CameraInfo:
    """A new CameraInfo with ``info``'s model and ``header``: the received message is shared with the
    executor thread (the callback may hand it to the next frame too), so it is never modified."""
    return CameraInfo(
        header=header, height=info.height, width=info.width, distortion_model=info.distortion_model,
        d=info.d, k=info.k, r=info.r, p=info.p, binning_x=info.binning_x, binning_y=info.binning_y,
        roi=info.roi,
    )  # fmt: skip


class DepthNode(Node):
    """See the module docstring; parameters in :mod:`depth_nodes.ros.params`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.settings = Settings.from_params(params.declare(self))
        self.use_sim_time = bool(self.get_parameter("use_sim_time").value)
        log = self.get_logger()
        self.warn = RateLimitedLog(log.warning, self.p.warning_period_s)
        self.selector = pl.EstimatorSelector(
            self.p.completer,
            self.p.lidar_only_completer,
            self.p.monocular_estimator,
            log=log.warning,
            options=self._estimator_options(),
        )
        self.modes = pl.ModeMachine(self.p.mode_hysteresis_frames, on_transition=self._on_transition)
        self.pipeline = pl.FramePipeline(
            self.selector, self.modes, self.settings.criteria, self.settings.options
        )
        self.extrinsics = make_extrinsics(self, self.p)
        log.info(f"extrinsics source: {self.extrinsics.source}")
        self.motion = make_compensator(self.p, self.extrinsics)
        log.info(f"motion compensation: {self.motion.mode} (requested {self.p.motion_compensation})")
        self.memory = make_memory(self)  # LiDAR memory: mode lidar_memory (ros/node_memory.py)
        self.pipeline.memory = self.memory.fallback if self.memory is not None else None
        names = self.selector.active_names
        log.info(
            f"estimators: guided={names[pl.GUIDED]}, lidar_only={names[pl.LIDAR_ONLY]}, "
            f"monocular={self.p.monocular_estimator or 'none'}"
        )
        self.stats = NodeStats()
        self.drift = DriftMonitor()  # calibration-drift alarm (pipeline.drift), fed by the worker
        self.last_transition = ""
        self.qos_problems = 0
        self.inputs = NodeInputs(self)
        self.worker = FrameWorker(self)
        self._create_endpoints()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.diag_timer = self.create_timer(
            self.p.diagnostics_period_s, guarded(self, "diagnostics", self._on_diagnostics_timer)
        )
        self.worker.start()

    @property
    def p(self) -> params.NodeParams:
        """The current parameters (read once per use; a frame reads :attr:`settings` once instead)."""
        return self.settings.params

    # ------------------------------------------------------------------ set-up
    def _estimator_options(self) -> dict:
        """Settings of learned estimators (depth_nodes.runtime): model, backend, precision, device, cache."""
        p = self.p
        return {
            "model_dir": p.model_dir, "backend": p.backend, "precision": p.precision, "device": p.device,
            "engine_cache_dir": p.engine_cache_dir, "force_engine_update": p.force_engine_update,
            "resolutions": p.model_resolutions,
            "mono_model_dir": p.mono_model_dir, "mono_half_life_s": p.mono_scale_half_life_s,
            "mono_handover_frames": p.mono_handover_frames, "mono_fit_period_frames": p.mono_fit_period_frames,
            "mono_input_height_px": p.mono_input_height_px,
        }  # fmt: skip

    def _create_endpoints(self) -> None:
        p, inputs = self.p, self.inputs

        def sub(msg_type, topic, cb, reliability, depth, prefix):
            profile = qos.qos_from_params(reliability, depth)
            events = qos.subscription_event_callbacks(self, topic, profile, prefix, report=self._qos_report)
            return self.create_subscription(
                msg_type, topic, guarded(self, prefix, cb), profile, event_callbacks=events
            )

        # points first: when a scan and an image are ready together, the scan is cached before the
        # image is handed over (the executor serves ready subscriptions in creation order).
        self.points_sub = sub(
            PointCloud2, TOPICS["points"], inputs.on_points,
            p.points_qos_reliability, p.points_qos_depth, "points",
        )  # fmt: skip
        self.info_sub = sub(
            CameraInfo, TOPICS["camera_info"], inputs.on_camera_info,
            p.camera_info_qos_reliability, p.camera_info_qos_depth, "camera_info",
        )  # fmt: skip
        image_type, image_topic = (
            (CompressedImage, TOPICS["image_compressed"])
            if p.use_compressed_image
            else (Image, TOPICS["image"])
        )
        self.image_sub = sub(
            image_type, image_topic, inputs.on_image, p.image_qos_reliability, p.image_qos_depth, "image"
        )
        out_qos = qos.publisher_qos(p.output_qos_depth)

        def pub(msg_type, topic):
            events = qos.publisher_event_callbacks(self, topic, out_qos, report=self._qos_report)
            return self.create_publisher(msg_type, topic, out_qos, event_callbacks=events)

        self.depth_pub = pub(Image, TOPICS["depth"])
        # raw-geometry depth exists only on request; a rectified camera still publishes on depth/image_rect
        self.depth_raw_pub = pub(Image, TOPICS["depth_raw"]) if p.depth_geometry == "raw" else None
        self.info_pub = pub(CameraInfo, TOPICS["depth_camera_info"])
        self.conf_pub = pub(Image, TOPICS["confidence"])
        self.color_pub = pub(Image, TOPICS["colorized"])
        self.cloud_pub = pub(PointCloud2, TOPICS["cloud"])
        self.diag_pub = self.create_publisher(DiagnosticArray, TOPICS["diagnostics"], qos.publisher_qos(1))

    def _qos_report(self, text: str) -> None:
        self.qos_problems += 1

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # ------------------------------------------------------------------ parameters at runtime
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {prm.name: prm.value for prm in parameters}
        new, reason = params.check_change(self.p, changes)
        if new is None:
            self.get_logger().warning(f"parameter change rejected: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        if "use_sim_time" in changes:
            self.use_sim_time = bool(changes["use_sim_time"])
        self.settings = Settings.from_params(new)  # one atomic swap: a frame sees all of it or none
        self.modes.hysteresis = new.mode_hysteresis_frames
        self.warn.period_s = new.warning_period_s
        if hasattr(self.extrinsics, "timeout_s"):
            self.extrinsics.timeout_s = new.tf_timeout_s
        ours = sorted(k for k in changes if k in params.SPEC_BY_NAME)
        if ours:
            self.get_logger().info(f"parameters changed at runtime: {', '.join(ours)}")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ outputs (worker thread)
    def output_options(self, settings: Settings) -> pl.OutputOptions:
        """The configured outputs minus those nobody listens to (the cloud costs the most); depth always."""
        opt = settings.options
        want_cloud = opt.cloud and self.cloud_pub.get_subscription_count() > 0
        want_conf = opt.confidence and self.conf_pub.get_subscription_count() > 0
        want_col = opt.colorized and self.color_pub.get_subscription_count() > 0
        if (opt.cloud, opt.confidence, opt.colorized) == (want_cloud, want_conf, want_col):
            return opt
        return replace(opt, cloud=want_cloud, confidence=want_conf, colorized=want_col)

    def publish(self, result: pl.FrameResult, frame) -> None:
        header = Header(stamp=frame.stamp, frame_id=result.frame_id)
        raw = frame.output == "raw" and self.depth_raw_pub is not None
        depth_pub = self.depth_raw_pub if raw else self.depth_pub
        depth_pub.publish(numpy_to_image(result.depth, "32FC1", header))
        if frame.camera_info is not None:
            self.info_pub.publish(copy_camera_info(frame.camera_info, header))
        if result.confidence is not None:
            self.conf_pub.publish(numpy_to_image(result.confidence, "32FC1", header))
        if result.colorized is not None:
            self.color_pub.publish(numpy_to_image(result.colorized, "rgb8", header))
        if result.cloud_xyz is not None:
            self.publish_cloud(result, frame)

    def publish_cloud(self, result: pl.FrameResult, frame) -> None:
        """``depth/points`` of ``result`` (the worker calls it on its own after the depth image is out)."""
        header = Header(stamp=frame.stamp, frame_id=result.frame_id)
        self.cloud_pub.publish(
            xyzrgb_to_pointcloud2(result.cloud_xyz, result.cloud_rgb, header, result.cloud_organized)
        )

    # ------------------------------------------------------------------ modes and diagnostics
    def _on_transition(self, t: pl.Transition) -> None:
        text = f"mode {t.old} -> {t.new}: {t.reason}"
        self.last_transition = text
        if t.old == pl.NONE and self.modes.n_transitions <= 1:
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text)
        if t.new == pl.MONOCULAR and self.selector.for_mode(pl.MONOCULAR) is None:
            self.get_logger().warning(self.selector.MONOCULAR_MISSING)
        if hasattr(self, "diag_pub"):
            self._publish_diagnostics()

    def _on_diagnostics_timer(self) -> None:
        inputs = self.inputs
        # Nothing arrives at all: the frame-driven proposals stop, so the timer proposes `none`.
        if (
            inputs.image_rate.age_s() > self.p.input_timeout_s
            and inputs.lidar_rate.age_s() > self.p.input_timeout_s
            and self.modes.mode != pl.NONE
        ):
            self.modes.propose(pl.NONE, "no camera image and no LiDAR scan arriving")
        inputs.expire_waiting()  # images whose CameraInfo never came: dropped and counted
        self._publish_diagnostics()

    def diagnostics_window_s(self) -> float:
        """The window "what was published" looks at: the no-input timeout, at least 3 input periods."""
        p, inputs = self.p, self.inputs
        rate = max(inputs.images_received.rate_hz(), inputs.lidar_rate.rate_hz())
        return max(p.input_timeout_s, p.diagnostics_period_s, 3.0 / rate if rate > 0 else 0.0)

    def report(self) -> NodeReport:
        inputs, stats, p = self.inputs, self.stats, self.p
        window_s = self.diagnostics_window_s()
        snap = stats.snapshot(window_s)
        mode, mode_reason = self.modes.mode, self.modes.reason
        camera_stale = inputs.image_rate.age_s() > p.max_image_age_s
        camera_problem = snap.recent_image_rejection if camera_stale else ""
        level, message = assess(
            mode, mode_reason, snap.published_by_mode, window_s,
            snap.not_published_in_window, snap.last_not_published, camera_problem,
        )  # fmt: skip
        lat = stats.latency.percentiles((50, 90, 99))
        proc = stats.processing.percentiles((50, 99))
        camera = inputs.camera
        if self.use_sim_time:
            latency_clock = "sim time (/clock)"
        elif snap.off_clock_frames and len(stats.latency) == 0:
            latency_clock = "image stamps are not on the node clock (replayed bag without use_sim_time?): see processing_*_ms"
        else:
            latency_clock = "node clock"
        values: dict[str, object] = {
            "published_mode": snap.newest_published_mode,
            "published_in_window": sum(snap.published_by_mode.values()),
            "window_s": window_s,
            "estimator": self.selector.active_names.get(mode, "") or "none",
            "estimator_guided": self.selector.active_names[pl.GUIDED],
            "estimator_lidar_only": self.selector.active_names[pl.LIDAR_ONLY],
            "extrinsics_source": self.extrinsics.source,
            "motion_compensation": self.motion.status,
            "image_age_s": inputs.image_rate.age_s(),
            "lidar_age_s": inputs.lidar_rate.age_s(),
            "camera_info_age_s": inputs.info_rate.age_s(),
            "image_rate_hz": inputs.image_rate.rate_hz(),
            "image_received_rate_hz": inputs.images_received.rate_hz(),
            "lidar_rate_hz": inputs.lidar_rate.rate_hz(),
            "output_rate_hz": stats.output_rate.rate_hz(),
            "latency_stamp_to_publish_p50_ms": lat[50],
            "latency_stamp_to_publish_p90_ms": lat[90],
            "latency_stamp_to_publish_p99_ms": lat[99],
            "latency_clock": latency_clock,
            "frames_off_clock": snap.off_clock_frames,
            "processing_p50_ms": proc[50],
            "processing_p99_ms": proc[99],
            "frames_in": inputs.mailbox.received,
            "frames_published": snap.frames_published,
            "frames_not_published": snap.frames_not_published,
            "last_not_published_reason": snap.last_not_published,
            "drops": inputs.mailbox.dropped,
            "rejected_messages": self.warn.total,
            "images_rejected": sum(snap.image_rejections.values()),
            "last_image_rejection": snap.recent_image_rejection,
            "qos_incompatibilities": self.qos_problems,
            "last_transition": self.last_transition,
            "camera": f"{camera.width}x{camera.height}" if camera else "none yet",
            "camera_model": inputs.camera_kind or "none yet",
            "depth_geometry": inputs.output_geometry or "none yet",
            "camera_info_sync": p.camera_info_sync,
            "images_waiting_for_camera_info": inputs.info_sync.n_waiting,
        }
        for cause, n in snap.image_rejections.items():
            values[f"images_rejected_{cause.replace(' ', '_')}"] = n
        values.update(timing_values(snap))  # stage_*_p50_ms, worker_busy_*, CPU per frame
        est_values, est_warnings = self.selector.diagnostics()  # learned estimator: backend, fallback reason
        values.update(est_values)
        if est_warnings:  # the configured model is not running: degraded whatever the mode
            level = max(level, WARN)
            message += "".join(f"; {w}" for w in est_warnings)
        if self.memory is not None:  # memory age, travelled distance, shares of pixels from memory / mono
            values.update(self.memory.diagnostics())
        level, message = merge_status(level, message, values, self.drift.status())
        return NodeReport(mode, mode_reason, values, level, message)

    def _publish_diagnostics(self) -> None:
        stamp = TimeMsg()
        stamp.sec, stamp.nanosec = divmod(self.now_ns(), 10**9)
        self.diag_pub.publish(build_diagnostics(self.report(), self.get_fully_qualified_name(), stamp))

    def shutdown(self) -> None:
        self.worker.stop()
        self.selector.close()  # learned models: release ONNX Runtime / TensorRT before interpreter teardown
