"""Worker thread of the depth node: pairs each frame with a scan, runs the pipeline, publishes.

One thread, fed by the one-slot mailbox of :class:`~depth_nodes.ros.node_inputs.NodeInputs`, so a busy
pipeline drops to the newest frame instead of queueing latency. An image whose scan has not arrived yet
waits (at most ``max_lidar_age_s`` after receipt) in a pending slot; a scan arriving in time releases it.

Each frame reads the node's settings once (:meth:`DepthNode.settings`: an immutable snapshot swapped whole
by the parameter callback), so a parameter change never lands half-way through a frame or gets lost.
"""

from __future__ import annotations

import cProfile
import os
import threading
import time
from dataclasses import replace

import numpy as np

from depth_nodes import pipeline as pl
from depth_nodes.errors import DepthNodesError
from depth_nodes.ros.extrinsics import ExtrinsicsError
from depth_nodes.ros.node_inputs import ImageFrame, LidarFrame
from depth_nodes.ros.node_stats import CLOCK_AGREEMENT_S

#: Environment variable: a file the worker writes its cProfile statistics to at shutdown (profiling runs).
PROFILE_ENV = "DEPTH_NODES_PROFILE"


class FrameWorker:
    """The processing thread of ``node`` (a DepthNode): call :meth:`start`, then :meth:`stop`."""

    def __init__(self, node) -> None:
        self.node = node
        self.inputs = node.inputs
        self._pending: ImageFrame | None = None
        self._pending_deadline = 0.0
        self._pending_lock = threading.Lock()
        self._running = False
        self.thread = threading.Thread(target=self._work, name="depth_worker", daemon=True)
        # cProfile of every frame on the worker's CPU clock (thread time, not disturbed by other processes),
        # written at stop: `depth-nodes bench node --profile DIR` sets it
        self._profiler = cProfile.Profile(time.thread_time) if os.environ.get(PROFILE_ENV) else None

    def start(self) -> None:
        self._running = True
        self.thread.start()

    def stop(self) -> None:
        self._running = False
        self.inputs.mailbox.close()
        self.thread.join(timeout=2.0)
        if self._profiler is not None:  # DEPTH_NODES_PROFILE: the worker's per-frame CPU profile
            self._profiler.dump_stats(os.environ[PROFILE_ENV])

    def scan_arrived(self, stamp_ns: int) -> None:
        """A scan was cached (executor thread): release a waiting image it pairs with."""
        with self._pending_lock:
            waiting = self._pending
            if waiting is not None and abs(stamp_ns - waiting.stamp_ns) <= self.node.p.max_lidar_age_s * 1e9:
                if self.inputs.mailbox.offer(waiting):  # never displaces a newer image
                    self._pending = None

    # ------------------------------------------------------------------ loop
    def _work(self) -> None:
        mailbox = self.inputs.mailbox
        while self._running:
            with self._pending_lock:
                timeout = (
                    0.5 if self._pending is None else max(0.0, self._pending_deadline - time.perf_counter())
                )
            frame = mailbox.get(timeout=timeout)
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
        warn = self.node.warn
        try:
            if self._profiler is not None:
                self._profiler.runcall(self._process, frame, may_wait)
            else:
                self._process(frame, may_wait)
        except DepthNodesError as exc:
            warn(f"frame: {type(exc).__name__}", f"frame skipped: {exc}")
        except Exception as exc:  # noqa: BLE001 - the node must survive anything a frame does
            if self._running:
                warn(f"frame: unexpected {type(exc).__name__}", f"frame skipped by an unexpected "
                     f"{type(exc).__name__}: {exc}")  # fmt: skip

    def _wait_for_scan(self, frame: ImageFrame, max_age_s: float) -> bool:
        """Park ``frame`` when its scan may still arrive (no newer scan yet, still young); True if parked."""
        cache = self.inputs.cache
        newest = cache.newest()
        if newest is not None and newest.stamp_ns >= frame.stamp_ns:
            return False
        deadline = frame.received + max_age_s
        if time.perf_counter() >= deadline:
            return False
        with self._pending_lock:
            if cache.nearest(frame.stamp_ns, max_age_s) is not None:
                return False  # arrived meanwhile: process now
            self._pending, self._pending_deadline = frame, deadline
        return True

    def _lookup(
        self, camera_frame: str, scan: pl.Scan, t_image_ns: int, p
    ) -> tuple[pl.Scan, np.ndarray | None, str]:
        """Extrinsics + motion compensation: the scan's points (deskewed) and ``camera(t_image) <- lidar``."""
        try:
            c = self.node.motion.apply(
                scan.points, scan.point_time_ns, scan.frame_id, scan.stamp_ns, camera_frame, t_image_ns,
                p.fixed_frame, p.deskew, p.twist_window_s,
            )  # fmt: skip
            if c.deskewed:
                scan = pl.Scan(c.points, scan.stamp_ns, scan.frame_id, scan.point_time_ns)
            return scan, c.T_cam_lidar, ""
        except (ExtrinsicsError, DepthNodesError) as exc:
            self.node.warn("extrinsics", f"extrinsics: {exc}")
            return scan, None, f"no extrinsics: {exc}"

    def _pair(self, frame: ImageFrame, p) -> tuple[pl.Scan | None, np.ndarray | None, str]:
        max_age_s = p.max_lidar_age_s
        scan = self.inputs.cache.nearest(frame.stamp_ns, max_age_s)
        if scan is None:
            newest = self.inputs.cache.newest()
            if newest is None:
                return None, None, "no LiDAR scan received yet"
            gap = abs(newest.stamp_ns - frame.stamp_ns) * 1e-9
            return None, None, f"no LiDAR scan within max_lidar_age_s={max_age_s} s (newest {gap:.3f} s away)"
        scan, T, why = self._lookup(frame.frame_id, scan, frame.stamp_ns, p)
        return (scan, T, "") if T is not None else (None, None, why)

    def _process(self, frame: ImageFrame | LidarFrame, may_wait: bool = False) -> None:
        """One frame, timed stage by stage back to back (``motion`` = pairing + extrinsics + motion
        compensation, the pipeline's stages, ``publish`` (depth, its CameraInfo, confidence, colourised),
        then off the depth image's latency path ``cloud`` + ``publish_cloud`` and ``drift``), so the stages
        add up to the worker's time on the frame (``NodeStats.busy``); the calibration check runs inside the
        budget on every ``drift_check_period_frames``-th frame."""
        t_start, cpu_start = time.perf_counter(), time.thread_time()
        node = self.node
        settings = node.settings  # one immutable snapshot for the whole frame
        p = settings.params
        why_no_image = "camera stale"
        memory = None
        if isinstance(frame, ImageFrame):
            self.inputs.last_camera_frame = frame.frame_id
            scan, T, why = self._pair(frame, p)
            if (
                scan is None
                and may_wait
                and why.startswith("no LiDAR")
                and self._wait_for_scan(frame, p.max_lidar_age_s)
            ):
                return
            rgb, stamp_ns = frame.rgb, frame.stamp_ns
            if scan is None and node.memory is not None:  # LiDAR memory (ros/node_memory.py)
                memory = node.memory.prepare(frame, p)
        else:
            if self.inputs.image_rate.age_s() <= p.max_image_age_s:
                return  # the camera came back while this scan waited
            scan, rgb, stamp_ns = frame.scan, None, frame.scan.stamp_ns
            why_no_image = self.inputs.camera_stale_reason(p.max_image_age_s)
            scan, T, why = self._lookup(frame.frame_id, scan, scan.stamp_ns, p)
            if T is None:
                scan = None
        t_paired = time.perf_counter()
        options = node.output_options(settings)
        # An image frame's cloud is built after its depth image is out (off the depth latency path); a
        # LiDAR-driven frame colours its cloud by the colourised depth, made in the same pass.
        late_cloud = options.cloud and rgb is not None
        result = node.pipeline.process(
            frame.camera, stamp_ns, frame.frame_id, rgb, scan, T, why, criteria=settings.criteria,
            options=replace(options, cloud=False) if late_cloud else options, why_no_image=why_no_image,
            memory=memory,
        )  # fmt: skip
        if node.memory is not None and scan is not None and rgb is not None:
            node.memory.remember(frame, scan, result, p)
        if not result.published:
            node.stats.not_published(result.mode, result.reason)
            return
        t_publish = time.perf_counter()
        node.publish(result, frame)
        published = time.perf_counter()
        gap_ms = (node.now_ns() - stamp_ns) * 1e-6
        timings = result.timings_ms
        timings["publish"] = (published - t_publish) * 1e3
        # pairing + extrinsics + motion compensation
        timings["motion"] = (t_paired - t_start) * 1e3
        if late_cloud:
            t0 = time.perf_counter()
            node.pipeline.make_cloud(result, rgb, options)
            t1 = time.perf_counter()
            node.publish_cloud(result, frame)
            timings["cloud"], timings["publish_cloud"] = (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3
        t_cloud = time.perf_counter()
        drift = node.drift
        drift.cfg.period_frames = p.drift_check_period_frames
        if rgb is not None and result.sparse is not None:  # calibration-drift alarm; never raises on content
            if drift.offer(rgb, result.sparse.depth, busy=self.inputs.mailbox.pending):
                timings["drift"] = (time.perf_counter() - t_cloud) * 1e3
        done = time.perf_counter()
        processing_ms = (published - frame.received) * 1e3  # image receipt -> publish
        timings["queue"] = (t_start - frame.received) * 1e3  # conversion in the callback + mailbox wait
        if getattr(frame, "rectify_ms", None) is not None:  # a raw image rectified in the callback (in queue)
            timings["rectify"] = frame.rectify_ms
        on_clock = node.use_sim_time or -p.max_future_stamp_s * 1e3 <= gap_ms <= CLOCK_AGREEMENT_S * 1e3
        if on_clock:
            timings["receive"] = gap_ms - processing_ms  # image stamp -> callback (sender + transport)
        node.stats.published(
            result.mode, timings, processing_ms, gap_ms if on_clock else None,
            busy_ms=(done - t_start) * 1e3, busy_cpu_ms=(time.thread_time() - cpu_start) * 1e3,
        )  # fmt: skip
