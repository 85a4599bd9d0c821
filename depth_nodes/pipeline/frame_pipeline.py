"""One frame through the pipeline: projection, mode proposal, the current mode's estimator, outputs, timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from depth_nodes.completion.base import Completion
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import OcclusionFilter, SparseDepth, depth_to_points, scan_to_depth
from depth_nodes.errors import EmptyInputError
from depth_nodes.pipeline.colormap import colorize_depth
from depth_nodes.pipeline.estimators import EstimatorSelector, FrameInputs
from depth_nodes.pipeline.modes import GUIDED, LIDAR_ONLY, MONOCULAR, NONE, ModeMachine
from depth_nodes.pipeline.sync import Scan


@dataclass
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
    """``out`` with the LiDAR depth (``sparse`` > 0) written back at its pixels, confidence 1 there."""
    hit = sparse > 0
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


@dataclass
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

    Thread-safety: one worker calls :meth:`process`; options and criteria may be replaced from other
    threads (attribute assignment is atomic; each frame reads them once).
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
        self.occlusion = OcclusionFilter()

    # ---------------------------------------------------------------- stages
    def project(self, scan: Scan, T_cam_lidar: np.ndarray, camera: CameraModel) -> SparseDepth:
        c = self.criteria
        return scan_to_depth(
            scan.points,
            T_cam_lidar,
            camera,
            occlusion=self.occlusion if c.occlusion_filter else None,
            min_depth_m=c.min_depth_m,
            max_depth_m=c.max_depth_m,
            on_nonfinite="drop",
        )

    def propose_mode(self, has_image: bool, sparse: SparseDepth | None, why_no_scan: str) -> tuple[str, str]:
        """The mode this frame's inputs allow, with the reason."""
        n_valid = int(np.count_nonzero(sparse.depth)) if sparse is not None else 0
        lidar_ok = sparse is not None and n_valid >= self.criteria.min_lidar_points
        if sparse is None:
            lidar_why = why_no_scan
        elif not lidar_ok:
            lidar_why = f"LiDAR degraded: {n_valid} returns in view < min_lidar_points={self.criteria.min_lidar_points}"
        else:
            lidar_why = ""
        if has_image:
            if lidar_ok:
                return GUIDED, "camera and fresh LiDAR"
            return MONOCULAR, lidar_why
        if lidar_ok:
            return LIDAR_ONLY, "camera stale: LiDAR only on the last camera geometry"
        return NONE, f"camera stale and {lidar_why}"

    def process(
        self,
        camera: CameraModel,
        stamp_ns: int,
        frame_id: str,
        rgb: np.ndarray | None,
        scan: Scan | None,
        T_cam_lidar: np.ndarray | None,
        why_no_scan: str = "no LiDAR scan within max_lidar_age_s",
    ) -> FrameResult:
        """One frame. ``rgb`` None = LiDAR-driven frame; ``scan`` None = no paired scan (``why_no_scan``)."""
        timings: dict[str, float] = {}
        clock = _Timer(timings)
        sparse = None
        if scan is not None and T_cam_lidar is not None:
            try:
                sparse = self.project(scan, T_cam_lidar, camera)
            except EmptyInputError as exc:
                why_no_scan = f"LiDAR scan unusable: {exc}"
        clock.lap("project")
        proposed, reason = self.propose_mode(rgb is not None, sparse, why_no_scan)
        mode = self.modes.propose(proposed, reason)
        result = FrameResult(mode, stamp_ns, frame_id, camera, sparse=sparse, timings_ms=timings)
        estimator = self.selector.for_mode(mode)
        if estimator is None:
            result.reason = f"{self.modes.reason}; {self.selector.why_not(mode)}"
            return result
        if estimator.needs_lidar and sparse is None:
            result.reason = f"mode {mode} needs LiDAR but {why_no_scan}"
            return result
        if estimator.needs_image and rgb is None:
            result.reason = f"mode {mode} needs the camera image but the camera is stale"
            return result
        out = estimator.estimate(FrameInputs(camera, stamp_ns, frame_id, rgb, sparse))
        if sparse is not None and self.criteria.keep_lidar_returns:
            out = keep_returns(out, sparse.depth)
        clock.lap("estimate")
        result.estimator = estimator.name
        self.make_outputs(result, out, rgb, clock)
        return result

    def make_outputs(
        self, result: FrameResult, out: Completion, rgb: np.ndarray | None, clock: _Timer
    ) -> None:
        """Fill depth / confidence / colourised / cloud arrays of ``result`` from an estimate."""
        opt = self.options
        depth = np.asarray(out.depth, dtype=np.float32)
        result.depth = depth
        result.confidence = np.asarray(out.confidence, dtype=np.float32) if opt.confidence else None
        if opt.colorized or (opt.cloud and rgb is None):
            result.colorized = colorize_depth(depth, opt.colorize_min_m, opt.colorize_max_m, opt.colormap)
        clock.lap("colorize")
        if opt.cloud:
            colours = rgb if rgb is not None else result.colorized
            stride = max(1, int(opt.cloud_decimation))
            xyz, col = depth_to_points(
                depth, result.camera, colours, stride=stride, organized=opt.cloud_organized
            )
            result.cloud_xyz, result.cloud_rgb = xyz, col
            result.cloud_organized = opt.cloud_organized
            clock.lap("cloud")
        if not opt.colorized:
            result.colorized = None
