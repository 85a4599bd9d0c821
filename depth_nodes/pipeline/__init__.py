"""The ROS-free frame pipeline of the depth node: sync, mode selection, estimators, outputs, timings.

One frame: camera model + RGB (or none) + a LiDAR scan paired by stamp + ``T_cam_lidar`` -> sparse depth
(:func:`core.projection.scan_to_depth`) -> the estimator chosen for the current mode -> depth (NaN = no
estimate), confidence, colourised depth and point-cloud arrays, with per-stage timings in ms.

One job per module (the ROS node in ``depth_nodes.ros.depth_node`` only wires them to topics):

- :mod:`.sync`: :class:`Scan`, :class:`ScanCache` (pairs an image with the nearest scan within
  ``max_lidar_age_s``), :class:`CameraInfoSync` (pairs an image with the CameraInfo of its stamp),
  :class:`Mailbox` (one-slot hand-over to the worker: the newest frame wins).
- :mod:`.modes`: :class:`ModeMachine`, the guided / lidar_only / monocular / none state machine with hysteresis.
- :mod:`.estimators`: :class:`Estimator`, the estimator table (:data:`BUILTIN_ESTIMATORS`, run-time
  :func:`register_estimator`) and :class:`EstimatorSelector`, the one place that decides which estimator
  serves which mode, so learned and monocular estimators plug in by name.
- :mod:`.learned_estimator`: the ``learned`` estimator (the runtime's predictor guarded by the classical
  completer); :mod:`.learned_completer`: the same behind the completer interface (``eval --method learned``).
- :mod:`.colormap`: fixed-range colourised depth.
- :mod:`.frame_pipeline`: :class:`FramePipeline` runs a frame through all of it.
- :mod:`.stats`: :class:`RollingStats` (percentiles) and :class:`RateMeter` (events per second).
"""

from depth_nodes.completion.base import Completion
from depth_nodes.pipeline.colormap import colorize_depth, colormap_lut
from depth_nodes.pipeline.estimators import (
    BUILTIN_ESTIMATORS,
    ESTIMATORS,
    FALLBACK_COMPLETER,
    CompleterEstimator,
    Estimator,
    EstimatorSelector,
    FrameInputs,
    estimator_factory,
    estimator_names,
    register_estimator,
)
from depth_nodes.pipeline.frame_pipeline import (
    FramePipeline,
    FrameResult,
    LidarCriteria,
    OutputOptions,
    keep_returns,
)
from depth_nodes.pipeline.modes import (
    GUIDED,
    LIDAR_MEMORY,
    LIDAR_ONLY,
    MODES,
    MONOCULAR,
    NONE,
    ModeMachine,
    Transition,
)
from depth_nodes.pipeline.stats import RateMeter, RollingStats
from depth_nodes.pipeline.sync import CameraInfoSync, Mailbox, Scan, ScanCache

__all__ = [
    "BUILTIN_ESTIMATORS",
    "ESTIMATORS",
    "FALLBACK_COMPLETER",
    "GUIDED",
    "LIDAR_MEMORY",
    "LIDAR_ONLY",
    "MODES",
    "MONOCULAR",
    "NONE",
    "CameraInfoSync",
    "CompleterEstimator",
    "Completion",
    "Estimator",
    "EstimatorSelector",
    "FrameInputs",
    "FramePipeline",
    "FrameResult",
    "LidarCriteria",
    "Mailbox",
    "ModeMachine",
    "OutputOptions",
    "RateMeter",
    "RollingStats",
    "Scan",
    "ScanCache",
    "Transition",
    "colorize_depth",
    "colormap_lut",
    "estimator_factory",
    "estimator_names",
    "keep_returns",
    "register_estimator",
]
