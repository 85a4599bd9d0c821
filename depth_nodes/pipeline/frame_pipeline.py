"""One frame through the pipeline: projection, mode proposal, the current mode's estimator, outputs, timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from depth_nodes.completion.base import Completion
from depth_nodes.completion.conditioning import DEFAULT_OCCLUSION
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import SparseDepth, depth_to_points, scan_to_depth
from depth_nodes.errors import EmptyInputError
from depth_nodes.pipeline.colormap import colorize_depth
from depth_nodes.pipeline.estimators import EstimatorSelector, FrameInputs
from depth_nodes.pipeline.modes import GUIDED, LIDAR_MEMORY, LIDAR_ONLY, MONOCULAR, NONE, ModeMachine
from depth_nodes.pipeline.sync import Scan


@dataclass(frozen=True)
class OutputOptions:
    """Which outputs to make and how (runtime-safe: read every frame)."""

    confidence: bool = True
    colorized: bool = True
    colorize_min_m: float = 0.0
    colorize_max_m: float = 80.0
    colormap: str = "turbo"
    cloud: bool = True
    cloud_organized: bool = False
    cloud_decimation: int = 2


@dataclass
class FrameResult:
    """Everything one frame produced; ``depth`` is None when nothing is published (``reason`` says why)."""

    mode: str
    stamp_ns: int
    frame_id: str
    camera: CameraModel
    estimator: str = ""
    depth: np.ndarray | None = None
    confidence: np.ndarray | None = None
    colorized: np.ndarray | None = None
    cloud_xyz: np.ndarray | None = None
    cloud_rgb: np.ndarray | None = None
    cloud_organized: bool = False
    sparse: SparseDepth | None = None
    reason: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def published(self) -> bool:
        return self.depth is not None


def keep_returns(out: Completion, sparse: np.ndarray) -> Completion:
    """``out`` with the LiDAR depth (``sparse`` > 0) written back at its pixels, confidence 1 there:
    only the returns the completer kept (``out.kept_returns``; all of them when it says nothing)."""
    hit = sparse > 0
    if out.kept_returns is not None:
        hit &= out.kept_returns
    depth = np.array(out.depth, dtype=np.float32)
    conf = np.array(out.confidence, dtype=np.float32)
    np.copyto(depth, sparse, where=hit)
    conf[hit] = 1.0
    return Completion(depth, conf)


class _Timer:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = (now - self.t) * 1e3
        self.t = now


@dataclass(frozen=True)
class LidarCriteria:
    """When a paired scan counts as usable for guided / lidar-only depth (runtime-safe thresholds)."""

    max_lidar_age_s: float = 0.15
    min_lidar_points: int = 200
    min_depth_m: float = 0.1
    max_depth_m: float = 200.0
    occlusion_filter: bool = True
    #: Write the measured LiDAR depth back at its own pixels (a return is a measurement, the estimate
    #: around it is not); confidence there becomes 1.
    keep_lidar_returns: bool = True


class FramePipeline:
    """Runs frames: projection, mode proposal, estimator of the current mode, outputs, timings.

    Thread-safety: one worker calls :meth:`process`. ``criteria`` and ``options`` are the defaults; a caller
    whose settings change at runtime passes its own immutable snapshot per frame (the node builds them from
    its parameter snapshot), so no frame ever sees half of an update and no update is lost.
    """

    def __init__(
        self,
        selector: EstimatorSelector,
        modes: ModeMachine,
        criteria: LidarCriteria | None = None,
        options: OutputOptions | None = None,
    ) -> None:
        self.selector = selector
        self.modes = modes
        self.criteria = criteria or LidarCriteria()
        self.options = options or OutputOptions()
        self.occlusion = DEFAULT_OCCLUSION  # the one input conditioning (completion.conditioning)
        #: The ``lidar_memory`` mode's estimator (``pipeline.memory_mode.MemoryFallback``); None = mode off.
        self.memory = None

    # ---------------------------------------------------------------- stages
    def project(
        self, scan: Scan, T_cam_lidar: np.ndarray, camera: CameraModel, criteria: LidarCriteria | None = None
    ) -> SparseDepth:
        c = criteria or self.criteria
        return scan_to_depth(
            scan.points,
            T_cam_lidar,
            camera,
            occlusion=self.occlusion if c.occlusion_filter else None,
            min_depth_m=c.min_depth_m,
            max_depth_m=c.max_depth_m,
            on_nonfinite="drop",
        )

    def propose_mode(
        self,
        has_image: bool,
        sparse: SparseDepth | None,
        why_no_scan: str,
        criteria: LidarCriteria | None = None,
        why_no_image: str = "camera stale",
        memory: tuple[bool, str] | None = None,
    ) -> tuple[str, str]:
        """The mode this frame's inputs allow, with the reason. ``memory``: whether the LiDAR memory can
        serve this image without a fresh scan, and why (None: memory off)."""
        min_points = (criteria or self.criteria).min_lidar_points
        n_valid = int(np.count_nonzero(sparse.depth)) if sparse is not None else 0
        lidar_ok = sparse is not None and n_valid >= min_points
        if sparse is None:
            lidar_why = why_no_scan
        elif not lidar_ok:
            lidar_why = f"LiDAR degraded: {n_valid} returns in view < min_lidar_points={min_points}"
        else:
            lidar_why = ""
        if has_image:
            if lidar_ok:
                return GUIDED, "camera and fresh LiDAR"
            if memory is not None:  # LiDAR memory between guided and monocular
                return (LIDAR_MEMORY, f"{lidar_why}; {memory[1]}") if memory[0] else (
                    MONOCULAR, f"{lidar_why}; {memory[1]}")  # fmt: skip
            return MONOCULAR, lidar_why
        if lidar_ok:
            return LIDAR_ONLY, f"{why_no_image}: LiDAR only on the last camera geometry"
        return NONE, f"{why_no_image} and {lidar_why}"

    def process(
        self,
        camera: CameraModel,
        stamp_ns: int,
        frame_id: str,
        rgb: np.ndarray | None,
        scan: Scan | None,
        T_cam_lidar: np.ndarray | None,
        why_no_scan: str = "no LiDAR scan within max_lidar_age_s",
        criteria: LidarCriteria | None = None,
        options: OutputOptions | None = None,
        why_no_image: str = "camera stale",
        memory: tuple[bool, str] | None = None,
    ) -> FrameResult:
        """One frame. ``rgb`` None = LiDAR-driven frame (``why_no_image`` says why); ``scan`` None = no
        paired scan (``why_no_scan``). ``criteria`` / ``options`` override the defaults for this frame;
        ``memory``: :meth:`propose_mode`'s (the worker asks :attr:`memory` when no fresh scan came)."""
        criteria = criteria or self.criteria
        timings: dict[str, float] = {}
        clock = _Timer(timings)
        sparse = None
        if scan is not None and T_cam_lidar is not None:
            try:
                sparse = self.project(scan, T_cam_lidar, camera, criteria)
            except EmptyInputError as exc:
                why_no_scan = f"LiDAR scan unusable: {exc}"
        clock.lap("project")
        proposed, reason = self.propose_mode(
            rgb is not None, sparse, why_no_scan, criteria, why_no_image, memory
        )
        mode = self.modes.propose(proposed, reason)
        if {mode, proposed} == {GUIDED, LIDAR_MEMORY}:  # during the hysteresis: the better input serves
            mode = proposed  # (fresh LiDAR over memory; memory over no frame), reported as what served
        result = FrameResult(mode, stamp_ns, frame_id, camera, sparse=sparse, timings_ms=timings)
        mono = self.selector.for_mode(MONOCULAR)
        if mode in (LIDAR_MEMORY, MONOCULAR) and getattr(mono, "seen_guided", False):
            mono.ensure_loaded()  # the fallback's model loads once the node leaves guided mode (background)
        estimator = self.memory if mode == LIDAR_MEMORY else self.selector.for_mode(mode)
        if estimator is None and mode == LIDAR_MEMORY:
            result.reason = f"{self.modes.reason}; LiDAR memory is off"
            return result
        if estimator is None:
            result.reason = f"{self.modes.reason}; {self.selector.why_not(mode)}"
            return result
        if estimator.needs_lidar and sparse is None:
            result.reason = f"mode {mode} needs LiDAR but {why_no_scan}"
            return result
        if estimator.needs_image and rgb is None:
            result.reason = f"mode {mode} needs the camera image but {why_no_image}"
            return result
        frame_inputs = FrameInputs(camera, stamp_ns, frame_id, rgb, sparse, criteria.max_depth_m)
        try:
            out = estimator.estimate(frame_inputs)
        except EmptyInputError as exc:
            if mode not in (MONOCULAR, LIDAR_MEMORY):
                raise
            # monocular model loading / unavailable / no scale fit yet: not published, diagnostics say why
            result.reason = f"{self.modes.reason}; {exc}"
            return result
        if out.source_stamp_ns is not None and out.source_stamp_ns != stamp_ns:
            # a late monocular estimate: published under its own image's stamp; that image is not kept, so the
            # cloud is coloured by depth and the LiDAR (none in monocular mode) is not written back
            result.stamp_ns, rgb, sparse = int(out.source_stamp_ns), None, None
        if mode == GUIDED and hasattr(mono, "observe"):  # keeps the mono scale fresh; blends the handover
            out = mono.observe(frame_inputs, out)
        if sparse is not None and criteria.keep_lidar_returns:
            out = keep_returns(out, sparse.depth)
        clock.lap("estimate")
        result.estimator = estimator.name
        self.make_outputs(result, out, rgb, clock, options)
        return result

    def make_outputs(
        self,
        result: FrameResult,
        out: Completion,
        rgb: np.ndarray | None,
        clock: _Timer,
        options: OutputOptions | None = None,
    ) -> None:
        """Fill depth / confidence / colourised / cloud arrays of ``result`` from an estimate."""
        opt = options or self.options
        depth = np.asarray(out.depth, dtype=np.float32)
        result.depth = depth
        result.confidence = np.asarray(out.confidence, dtype=np.float32) if opt.confidence else None
        if opt.colorized or (opt.cloud and rgb is None):
            result.colorized = colorize_depth(depth, opt.colorize_min_m, opt.colorize_max_m, opt.colormap)
        clock.lap("colorize")
        if opt.cloud:
            self.make_cloud(result, rgb, opt)
            clock.lap("cloud")
        if not opt.colorized:
            result.colorized = None

    def make_cloud(
        self, result: FrameResult, rgb: np.ndarray | None, options: OutputOptions | None = None
    ) -> None:
        """The point cloud of ``result.depth``, coloured by ``rgb`` (else by ``result.colorized``). The node
        calls it itself after publishing the depth image of an image frame (the cloud is not on the depth
        image's latency path); :meth:`process` calls it when its options ask for the cloud."""
        opt = options or self.options
        colours = rgb if rgb is not None else result.colorized
        stride = max(1, int(opt.cloud_decimation))
        xyz, col = depth_to_points(
            result.depth, result.camera, colours, stride=stride, organized=opt.cloud_organized
        )
        result.cloud_xyz, result.cloud_rgb = xyz, col
        result.cloud_organized = opt.cloud_organized
