"""The ROS-free frame pipeline of the depth node: sync, mode selection, estimators, outputs, timings.

One frame: camera model + RGB (or none) + a LiDAR scan paired by stamp + ``T_cam_lidar`` -> sparse depth
(:func:`core.projection.scan_to_depth`) -> the estimator chosen for the current mode -> depth (NaN = no
estimate), confidence, colourised depth and point-cloud arrays, with per-stage timings in ms.

Pieces, each usable on its own (the ROS node in ``depth_nodes.ros.depth_node`` only wires them to topics):

- :class:`ScanCache` keeps the last few scans with stamps and pairs an image with the nearest one within
  ``max_lidar_age_s``.
- :class:`Mailbox` is the one-slot hand-over to the worker: the newest frame wins, replaced ones are counted.
- :class:`ModeMachine` is the guided / lidar_only / monocular / none state machine with hysteresis.
- :class:`EstimatorSelector` is the one place that decides which estimator serves which mode, so learned
  and monocular estimators plug in later by name.
- :class:`FramePipeline` runs a frame through all of it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from depth_nodes import completion
from depth_nodes.completion.base import Completion
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import OcclusionFilter, SparseDepth, depth_to_points, scan_to_depth
from depth_nodes.errors import DepthNodesError, EmptyInputError

GUIDED = "guided"
LIDAR_ONLY = "lidar_only"
MONOCULAR = "monocular"
NONE = "none"
MODES = (GUIDED, LIDAR_ONLY, MONOCULAR, NONE)

#: Completer used when a configured one is not registered in this build.
FALLBACK_COMPLETER = "ip_basic"


# --------------------------------------------------------------------------------------------- sync
@dataclass(frozen=True)
class Scan:
    """A LiDAR scan: N x 3 float32 points in ``frame_id`` at ``stamp_ns`` (finite rows only)."""

    points: np.ndarray
    stamp_ns: int
    frame_id: str


class ScanCache:
    """The last ``size`` scans by arrival; :meth:`nearest` pairs an image stamp with the closest one.

    Several scans (not just the newest) are kept so that one late or mis-stamped scan does not hide a
    good one; pairing picks the smallest ``|scan stamp - image stamp|`` within ``max_age_s``.
    """

    def __init__(self, size: int = 4) -> None:
        self._scans: deque[Scan] = deque(maxlen=max(1, size))
        self._lock = threading.Lock()
        self.last_arrival: float | None = None

    def add(self, scan: Scan) -> None:
        with self._lock:
            self._scans.append(scan)
            self.last_arrival = time.monotonic()

    def newest(self) -> Scan | None:
        with self._lock:
            return self._scans[-1] if self._scans else None

    def nearest(self, stamp_ns: int, max_age_s: float) -> Scan | None:
        """The scan whose stamp is nearest to ``stamp_ns`` and no further than ``max_age_s`` from it."""
        with self._lock:
            scans = list(self._scans)
        if not scans:
            return None
        gaps = [abs(s.stamp_ns - stamp_ns) for s in scans]
        best = int(np.argmin(gaps))
        return scans[best] if gaps[best] <= max_age_s * 1e9 else None

    def clear(self) -> None:
        with self._lock:
            self._scans.clear()


class Mailbox:
    """A one-slot mailbox: :meth:`put` replaces an unread item (counted in ``dropped``); :meth:`get` waits."""

    def __init__(self) -> None:
        self._item = None
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.received = 0

    def put(self, item) -> bool:
        """Leave ``item`` for the worker; returns False when it replaced an unread item (a drop)."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._cond.notify()
            return not replaced

    def offer(self, item) -> bool:
        """Leave ``item`` only when the slot is empty (never replaces a newer frame); True when left."""
        with self._cond:
            if self._item is not None:
                return False
            self._item = item
            self._cond.notify()
            return True

    def get(self, timeout: float | None = None):
        """The newest item, or None after ``timeout`` seconds or once closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# --------------------------------------------------------------------------------------------- modes
@dataclass(frozen=True)
class Transition:
    """A mode change: ``old`` -> ``new`` because of ``reason``."""

    old: str
    new: str
    reason: str


class ModeMachine:
    """guided / lidar_only / monocular / none with hysteresis.

    Each frame (or staleness tick) proposes the mode its inputs allow; the machine switches only after
    ``hysteresis`` consecutive proposals of the same new mode. Leaving ``none`` (start-up, or nothing
    arriving at all) is immediate: any usable input beats none, and the first good frame is published.
    """

    def __init__(self, hysteresis: int = 3, on_transition: Callable[[Transition], None] | None = None):
        if hysteresis < 1:
            raise ValueError("mode hysteresis must be >= 1 frame")
        self.hysteresis = int(hysteresis)
        self.mode = NONE
        self.reason = "no input yet"
        self._candidate: str | None = None
        self._count = 0
        self._lock = threading.Lock()
        self._on_transition = on_transition
        self.history: list[tuple[float, str, str]] = []

    def propose(self, mode: str, reason: str) -> str:
        """Record one proposal; returns the (possibly new) current mode."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
        with self._lock:
            transition = None
            if mode == self.mode:
                self._candidate, self._count = None, 0
                self.reason = reason
            else:
                if mode != self._candidate:
                    self._candidate, self._count = mode, 0
                self._count += 1
                if self._count >= self.hysteresis or self.mode == NONE:
                    transition = Transition(self.mode, mode, reason)
                    self.mode, self.reason = mode, reason
                    self._candidate, self._count = None, 0
                    self.history.append((time.time(), mode, reason))
            current = self.mode
        if transition is not None and self._on_transition is not None:
            self._on_transition(transition)
        return current


# --------------------------------------------------------------------------------------------- estimators
@dataclass
class FrameInputs:
    """What one frame gives an estimator. ``rgb`` is None for LiDAR-driven frames (camera stale)."""

    camera: CameraModel
    stamp_ns: int
    frame_id: str
    rgb: np.ndarray | None = None
    sparse: SparseDepth | None = None


class Estimator(Protocol):
    """Anything that turns :class:`FrameInputs` into depth + confidence (classical, learned, monocular)."""

    name: str
    needs_image: bool
    needs_lidar: bool

    def estimate(self, inputs: FrameInputs) -> Completion: ...


class CompleterEstimator:
    """Adapts a :class:`~depth_nodes.completion.Completer` (sparse depth + optional RGB) to :class:`Estimator`."""

    needs_lidar = True

    def __init__(self, completer: completion.Completer, needs_image: bool | None = None) -> None:
        self.completer = completer
        self.name = completer.name
        self.needs_image = completer.uses_image if needs_image is None else needs_image

    def estimate(self, inputs: FrameInputs) -> Completion:
        if inputs.sparse is None:
            raise EmptyInputError("no LiDAR depth for a LiDAR-based estimator")
        return self.completer.complete(inputs.sparse.depth, inputs.rgb if self.completer.uses_image else None)


#: Estimators that are not plain completers (monocular, learned end-to-end) by name; their modules call
#: :func:`register_estimator` on import. A name here wins over a completer of the same name.
ESTIMATORS: dict[str, Callable[[], Estimator]] = {}


def register_estimator(name: str, factory: Callable[[], Estimator]) -> None:
    """Make ``name`` selectable as the estimator of any mode (``completer``, ``monocular_estimator`` ...)."""
    ESTIMATORS[name] = factory


def _create_completer(name: str, log: Callable[[str], None]) -> tuple[completion.Completer, str]:
    try:
        return completion.create(name), name
    except KeyError:
        log(f"completer {name!r} is not registered in this build: using {FALLBACK_COMPLETER!r} instead")
        return completion.create(FALLBACK_COMPLETER), FALLBACK_COMPLETER


class EstimatorSelector:
    """The one place that maps a mode to its estimator.

    ``guided`` -> the configured guided completer, ``lidar_only`` -> the configured LiDAR-only completer,
    ``monocular`` -> a monocular estimator when one is registered (none yet: the reason is reported),
    ``none`` -> nothing. A missing completer falls back to ``ip_basic`` and says so through ``log``.
    """

    MONOCULAR_MISSING = "no monocular estimator is available in this build yet: nothing is published"

    def __init__(
        self,
        guided: str = completion.DEFAULT_COMPLETER,
        lidar_only: str = "lidar_only",
        monocular: str = "",
        log: Callable[[str], None] = print,
    ) -> None:
        self.requested = {GUIDED: guided, LIDAR_ONLY: lidar_only, MONOCULAR: monocular}
        self._by_mode: dict[str, Estimator | None] = {MONOCULAR: None, NONE: None}
        self.active_names = {MONOCULAR: "", NONE: ""}
        # Guided mode is camera + LiDAR by definition, even when the completer ignores the image; a
        # LiDAR-only mode never receives an image, whatever the completer could use.
        for mode, name, needs_image in ((GUIDED, guided, True), (LIDAR_ONLY, lidar_only, False)):
            if name in ESTIMATORS:
                self._by_mode[mode], self.active_names[mode] = ESTIMATORS[name](), name
            else:
                comp, used = _create_completer(name, log)
                self._by_mode[mode] = CompleterEstimator(comp, needs_image=needs_image)
                self.active_names[mode] = used
        if monocular in ESTIMATORS:
            self._by_mode[MONOCULAR], self.active_names[MONOCULAR] = ESTIMATORS[monocular](), monocular
        elif monocular:
            log(
                f"monocular estimator {monocular!r} is not available in this build: monocular mode publishes nothing"
            )

    def for_mode(self, mode: str) -> Estimator | None:
        return self._by_mode.get(mode)

    def why_not(self, mode: str) -> str:
        """Why ``mode`` has no estimator (empty when it has one)."""
        if self._by_mode.get(mode) is not None:
            return ""
        if mode == MONOCULAR:
            return self.MONOCULAR_MISSING
        return "no usable input: nothing is published"


# --------------------------------------------------------------------------------------------- outputs
_COLORMAPS: dict[str, np.ndarray] = {}


def colormap_lut(name: str) -> np.ndarray:
    """256 x 3 uint8 RGB lookup table of an OpenCV colour map by lower-case name (``turbo``, ``jet`` ...)."""
    key = name.lower()
    if key not in _COLORMAPS:
        code = getattr(cv2, f"COLORMAP_{key.upper()}", None)
        if code is None:
            raise DepthNodesError(
                f"unknown colour map {name!r}; use an OpenCV name such as turbo, jet, viridis"
            )
        ramp = np.arange(256, dtype=np.uint8).reshape(-1, 1)
        _COLORMAPS[key] = cv2.cvtColor(cv2.applyColorMap(ramp, code), cv2.COLOR_BGR2RGB).reshape(256, 3)
    return _COLORMAPS[key]


def _nan_black_lut(name: str) -> np.ndarray:
    """1 x 256 x 3 LUT for cv2.LUT: index 0 = black (no estimate), 1..255 = the colour map resampled."""
    key = f"{name.lower()}#nan"
    if key not in _COLORMAPS:
        lut = colormap_lut(name)
        out = np.zeros((1, 256, 3), np.uint8)
        out[0, 1:] = lut[np.round(np.linspace(0, 255, 255)).astype(int)]
        _COLORMAPS[key] = out
    return _COLORMAPS[key]


def colorize_depth(depth: np.ndarray, min_m: float, max_m: float, colormap: str = "turbo") -> np.ndarray:
    """H x W x 3 uint8 RGB of ``depth`` on a fixed range: ``min_m`` red (near) .. ``max_m`` blue (far).

    Fixed (not per-frame) so that colours are comparable over time; NaN / no estimate is black. Depth maps
    to LUT index 1..255 and NaN to index 0 (black), so one ``cv2.LUT`` pass colours the whole image.
    """
    if not max_m > min_m:
        raise DepthNodesError(f"colour range must have max > min, got [{min_m}, {max_m}] m")
    scale = np.float32(254.0 / (max_m - min_m))
    t = (np.float32(max_m) - np.asarray(depth, dtype=np.float32)) * scale  # near -> 254
    np.clip(t, 0.0, 254.0, out=t)
    t += np.float32(1.5)  # 1..255, rounded to nearest on the cast below
    t = cv2.patchNaNs(t, 0.0)
    idx = t.astype(np.uint8)
    return cv2.LUT(cv2.merge((idx, idx, idx)), _nan_black_lut(colormap))


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


# --------------------------------------------------------------------------------------------- statistics
class RollingStats:
    """Percentiles of the last ``size`` samples (latencies in ms)."""

    def __init__(self, size: int = 300) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(float(value))

    def percentiles(self, qs: tuple[float, ...] = (50, 90, 99)) -> dict[float, float]:
        with self._lock:
            vals = np.array(self._values, dtype=np.float64)
        if vals.size == 0:
            return {q: float("nan") for q in qs}
        return dict(zip(qs, np.percentile(vals, qs).tolist(), strict=True))

    def __len__(self) -> int:
        return len(self._values)


class RateMeter:
    """Events per second over the last ``window_s`` seconds (monotonic clock)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.total = 0
        self.last: float | None = None

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self.total += 1
            self.last = now
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate_hz(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            n = len(self._times)
            if n < 2:
                return 0.0
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (n - 1) / span if span > 0 else 0.0

    def age_s(self, now: float | None = None) -> float:
        """Seconds since the last event (inf when none)."""
        now = time.monotonic() if now is None else now
        return float("inf") if self.last is None else now - self.last
