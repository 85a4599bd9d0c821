"""Parameters of the depth node: one table with defaults, units, ranges and whether a change is safe at runtime.

:func:`declare` declares them all with descriptors (so ``ros2 param describe`` shows units and ranges),
validates the values given at start-up and returns a :class:`NodeParams`; :func:`check_change` is the
runtime policy: safe parameters (thresholds, colour range, decimation, output switches) are validated and
accepted, unsafe ones (estimators, backend, QoS, extrinsics source) are rejected with the reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any

from depth_nodes.errors import DepthNodesError

RELIABILITIES = ("best_effort", "reliable")


class ParameterError(DepthNodesError):
    """A node parameter has a value outside its range or choices."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: default (its type is the parameter's type), description, limits, runtime policy."""

    name: str
    default: Any
    description: str
    runtime_safe: bool
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    length: int | None = None  # exact length of an array parameter


SPECS: tuple[ParamSpec, ...] = (
    # --- estimators (unsafe: building a model at runtime would stall the pipeline)
    ParamSpec("completer", "guided", "estimator of guided mode (camera + LiDAR): a registered completer name", False),
    ParamSpec("lidar_only_completer", "lidar_only", "estimator of lidar_only mode (camera stale): completer name", False),
    ParamSpec("monocular_estimator", "mono", "estimator of monocular mode and of lidar_memory's fill (LiDAR stale): "
              "mono (own shipped net; needs [ml], else memory-only and diagnostics say why; loaded in the background "
              "only when the node leaves guided mode: nothing of torch / onnxruntime is loaded while the LiDAR is "
              "fresh), depth_anything_v2, prompt_depth_anything, empty = none (monocular mode publishes nothing)",
              False),
    ParamSpec("mono_model_dir", "", "monocular model directory (config.json + weights; empty = the shipped net "
              "for 'mono'); never downloaded", False),
    ParamSpec("mono_scale_half_life_s", 5.0, "confidence of the carried mono scale halves every this long (s)",
              False, 0.01, 3600.0),
    ParamSpec("mono_handover_frames", 5, "frames blending mono -> guided when the LiDAR returns", False, 0, 100),
    ParamSpec("mono_fit_period_frames", 0, "in guided mode, refit the mono scale every n-th frame (loads the model "
              "at start: +~200 MB RSS, a net inference per refit); 0 = no guided refits, the model loads when the "
              "node leaves guided mode", False, 0, 1000),
    ParamSpec("mono_input_size_px", 0, "Depth Anything processor target size (px, both sides: the side whose scale "
              "is closer to 1 gets it, each rounded to 14); 0 = the model's preprocessor_config.json (518)", False,
              0, 2044),
    ParamSpec("mono_device", "auto", "device of Depth Anything: auto (cuda:0 when torch sees a GPU), cpu, cuda, "
              "cuda:N", False),
    ParamSpec("mono_backend", "auto", "runtime of Depth Anything: auto = tensorrt on a CUDA GPU with tensorrt, "
              "else torch; onnxruntime / tensorrt run an ONNX exported for model_resolutions' first size", False,
              choices=("auto", "torch", "onnxruntime", "tensorrt")),
    ParamSpec("mono_precision", "fp32", "precision of Depth Anything (fp16: TensorRT or torch CUDA)", False,
              choices=("fp32", "fp16", "int8")),
    ParamSpec("mono_frame_budget_s", 1.0, "longest the worker waits for a frame's monocular estimate (s); the "
              "net runs on its own thread, a later estimate is published once with its own image's stamp",
              False, 0.0, 60.0),
    ParamSpec("backend", "auto", "inference backend for learned estimators", False,
              choices=("auto", "tensorrt", "onnxruntime", "torch")),
    ParamSpec("model_dir", "", "model of completer 'learned': a model directory (config.json + model.safetensors) "
              "or an .onnx file", False),
    ParamSpec("precision", "fp32", "inference precision of learned estimators (fp16/int8: TensorRT or torch CUDA)",
              False, choices=("fp32", "fp16", "int8")),
    ParamSpec("device", "auto", "device of learned estimators: auto, cpu, cuda or cuda:N", False),
    ParamSpec("engine_cache_dir", "~/.cache/depth_nodes/engines", "TensorRT engine cache (and exported ONNX) directory",
              False),
    ParamSpec("force_engine_update", False, "rebuild the TensorRT engine at start-up even when the cache matches",
              False),
    ParamSpec("model_resolutions", "352x1216", "HxW[,HxW...] the learned model is prepared for (TensorRT profiles, "
              "warm-up); camera sizes are padded to the model stride", False),
    # --- inputs and QoS
    ParamSpec("use_compressed_image", False, "subscribe to image/compressed (jpeg/png) instead of image", False),
    ParamSpec("camera_model", "auto", "how camera_info describes the image: raw = K + D, rectified = P (no "
              "distortion), auto = rectified when D is all zero or the image topic names a rectified image",
              False, choices=("auto", "raw", "rectified")),
    ParamSpec("depth_geometry", "rectified", "geometry of the published depth: rectified = a raw (distorted) camera "
              "image is rectified onto P and depth is published on depth/image_rect with D = 0 (what depth_image_proc "
              "reads); raw = the input's geometry and calibration, on depth/image_raw (only for consumers that "
              "undistort themselves)", False, choices=("rectified", "raw")),
    ParamSpec("camera_info_sync", "stamp", "stamp = each image uses the CameraInfo with its stamp (within "
              "camera_info_stamp_tolerance_s, as depth_image_proc's exact sync); latest = the newest CameraInfo "
              "(drivers whose CameraInfo is not stamped like their images)", True, choices=("stamp", "latest")),
    ParamSpec("camera_info_stamp_tolerance_s", 0.0, "largest |CameraInfo stamp - image stamp| that pairs them "
              "(s); 0 = exact", True, 0.0, 1.0),
    ParamSpec("max_incidence_deg", 0.0, "LiDAR points farther off the optical axis are never projected (deg); "
              "0 = the image corner's angle + 5 deg for distorted cameras", False, 0.0, 89.9),
    ParamSpec("image_bit_depth", 0, "bits used by 16-bit images (mono16, rgb16, bayer_*16, 16-bit png); "
              "0 = the highest detected from the data so far", True, 0, 16),
    ParamSpec("image_qos_reliability", "best_effort", "image subscription reliability", False, choices=RELIABILITIES),
    ParamSpec("image_qos_depth", 2, "image subscription queue depth (messages)", False, 1, 100),
    ParamSpec("points_qos_reliability", "best_effort", "points subscription reliability", False, choices=RELIABILITIES),
    ParamSpec("points_qos_depth", 2, "points subscription queue depth (messages)", False, 1, 100),
    ParamSpec("camera_info_qos_reliability", "best_effort", "camera_info subscription reliability", False,
              choices=RELIABILITIES),
    ParamSpec("camera_info_qos_depth", 5, "camera_info subscription queue depth (messages)", False, 1, 100),
    ParamSpec("output_qos_depth", 2, "queue depth of the (reliable) output publishers", False, 1, 5),
    # --- sync and modes (safe)
    ParamSpec("max_lidar_age_s", 0.15, "largest |scan stamp - image stamp| for pairing (s)", True, 0.001, 10.0),
    ParamSpec("max_image_age_s", 0.5, "camera counts as stale after this long without an image (s)", True, 0.01, 60.0),
    ParamSpec("input_timeout_s", 1.0, "mode none after this long with neither an image nor a scan arriving (s)",
              True, 0.01, 3600.0),
    ParamSpec("max_future_stamp_s", 0.5, "reject messages stamped further than this ahead of the node clock (s)",
              True, 0.0, 3600.0),
    ParamSpec("min_lidar_points", 200, "fewest LiDAR returns in view for guided / lidar_only (points)", True, 0, 10**7),
    ParamSpec("mode_hysteresis_frames", 3, "consecutive frames (or 1 s diagnostics ticks) before a mode switch",
              True, 1, 1000),
    ParamSpec("min_depth_m", 0.1, "nearest LiDAR depth used (m)", True, 0.0, 1000.0),
    ParamSpec("max_depth_m", 120.0, "farthest LiDAR depth used (m); every completer follows it (IP-Basic inversion constant)", True, 0.01, 10000.0),
    ParamSpec("occlusion_filter", True, "remove LiDAR returns hidden from the camera (parallax)", True),
    ParamSpec("keep_lidar_returns", True, "publish measured LiDAR depth at the pixels of the returns the completer kept (confidence 1)", True),
    # --- outputs (safe)
    ParamSpec("colorize_min_depth_m", 0.0, "depth drawn red in depth/colorized (m)", True, 0.0, 10000.0),
    ParamSpec("colorize_max_depth_m", 80.0, "depth drawn dark blue in depth/colorized (m)", True, 0.01, 10000.0),
    ParamSpec("colormap", "turbo", "OpenCV colour map of depth/colorized", True,
              choices=("turbo", "jet", "viridis", "inferno", "magma", "plasma", "hot", "bone")),
    ParamSpec("publish_confidence", True, "publish depth/confidence", True),
    ParamSpec("publish_colorized", True, "publish depth/colorized", True),
    ParamSpec("publish_points", True, "publish depth/points", True),
    ParamSpec("cloud_organized", False, "depth/points organized H x W with NaN (else unorganized, valid only)", True),
    ParamSpec("cloud_decimation", 2, "keep every n-th row and column in depth/points", True, 1, 16),
    # --- extrinsics (unsafe)
    ParamSpec("extrinsics_source", "auto", "auto = tf2 when importable else parameters", False,
              choices=("auto", "tf", "parameters")),
    ParamSpec("lidar_frame", "", "expected frame_id of points; empty = accept any", False),
    ParamSpec("lidar_to_camera_xyz", [0.0, 0.0, 0.0], "LiDAR origin in the camera optical frame (m)", False, length=3),
    ParamSpec("lidar_to_camera_quat_xyzw", [0.0, 0.0, 0.0, 1.0], "LiDAR -> camera optical rotation (x, y, z, w)",
              False, length=4),
    ParamSpec("lidar_to_camera_matrix", [0.0] * 16,
              "T_camera_lidar row-major 4x4; all zeros = use xyz + quaternion", False, length=16),
    ParamSpec("tf_timeout_s", 0.05, "how long a TF lookup may wait for the transform (s)", True, 0.0, 5.0),
    # --- motion compensation (the scan brought to the image's time)
    ParamSpec("motion_compensation", "auto",
              "auto = tf when tf2 is in use (extrinsics from TF), else off; tf = odometry TF in fixed_frame; "
              "lidar_odometry = KISS-ICP twist from the last scans; off = scans at their own stamp", False,
              choices=("auto", "tf", "lidar_odometry", "off")),
    ParamSpec("fixed_frame", "odom", "frame constant in time for TF motion compensation (odom; world in KITTI bags)",
              True),
    ParamSpec("deskew", True, "undo the motion during a sweep when points carry per-point times", True),
    ParamSpec("twist_window_s", 0.1, "the odometry twist comes from poses this far apart, ending at the scan (s)",
              True, 0.01, 1.0),
    # --- LiDAR memory (mode lidar_memory: the last scans carried to the image when the LiDAR drops)
    ParamSpec("lidar_memory", True, "when the LiDAR drops, complete from the last scans carried to the image with "
              "odometry TF (mode lidar_memory; without odometry only while the robot is still)", False),
    ParamSpec("memory_max_age_s", 2.0, "the memory is used until its newest scan is this old (s)", False, 0.05, 60.0),
    ParamSpec("memory_max_scans", 5, "scans the memory keeps (1 000 000 points at most)", False, 1, 100),
    ParamSpec("memory_half_life_s", 1.0, "confidence of memory depth halves every this long since the scan (s)",
              False, 0.01, 3600.0),
    ParamSpec("memory_half_distance_m", 10.0, "... and every this far travelled since the scan (m)", False,
              0.01, 100000.0),
    # --- housekeeping
    ParamSpec("drift_check_period_frames", 5, "run the camera-LiDAR calibration-drift check on every n-th "
              "published frame (1 = every frame; a check costs ~5 ms CPU at 1216x352)", True, 1, 1000),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics (s)", False, 0.05, 60.0),
    ParamSpec("warning_period_s", 5.0, "the same warning is logged at most once per this period (s)", True, 0.0, 3600.0),
)  # fmt: skip

SPEC_BY_NAME = {s.name: s for s in SPECS}


@dataclass
class NodeParams:
    """Typed values of every parameter in :data:`SPECS` (same names)."""

    completer: str
    lidar_only_completer: str
    monocular_estimator: str
    mono_model_dir: str
    mono_scale_half_life_s: float
    mono_handover_frames: int
    mono_fit_period_frames: int
    mono_input_size_px: int
    mono_device: str
    mono_backend: str
    mono_precision: str
    mono_frame_budget_s: float
    backend: str
    model_dir: str
    precision: str
    device: str
    engine_cache_dir: str
    force_engine_update: bool
    model_resolutions: str
    use_compressed_image: bool
    camera_model: str
    depth_geometry: str
    camera_info_sync: str
    camera_info_stamp_tolerance_s: float
    max_incidence_deg: float
    image_bit_depth: int
    image_qos_reliability: str
    image_qos_depth: int
    points_qos_reliability: str
    points_qos_depth: int
    camera_info_qos_reliability: str
    camera_info_qos_depth: int
    output_qos_depth: int
    max_lidar_age_s: float
    max_image_age_s: float
    input_timeout_s: float
    max_future_stamp_s: float
    min_lidar_points: int
    mode_hysteresis_frames: int
    min_depth_m: float
    max_depth_m: float
    occlusion_filter: bool
    keep_lidar_returns: bool
    colorize_min_depth_m: float
    colorize_max_depth_m: float
    colormap: str
    publish_confidence: bool
    publish_colorized: bool
    publish_points: bool
    cloud_organized: bool
    cloud_decimation: int
    extrinsics_source: str
    lidar_frame: str
    lidar_to_camera_xyz: list
    lidar_to_camera_quat_xyzw: list
    lidar_to_camera_matrix: list
    tf_timeout_s: float
    motion_compensation: str
    fixed_frame: str
    deskew: bool
    twist_window_s: float
    lidar_memory: bool
    memory_max_age_s: float
    memory_max_scans: int
    memory_half_life_s: float
    memory_half_distance_m: float
    drift_check_period_frames: int
    diagnostics_period_s: float
    warning_period_s: float

    def replace(self, **changes: Any) -> NodeParams:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return NodeParams(**values)


def validate_value(spec: ParamSpec, value: Any) -> Any:
    """``value`` converted to the parameter's type; :class:`ParameterError` naming the problem otherwise."""
    d = spec.default
    name = spec.name
    if isinstance(d, bool):
        if not isinstance(value, bool):
            raise ParameterError(f"parameter {name!r} must be true or false, got {value!r}")
        return value
    if isinstance(d, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"parameter {name!r} must be an integer, got {value!r}")
    elif isinstance(d, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"parameter {name!r} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ParameterError(f"parameter {name!r} must be finite, got {value}")
    elif isinstance(d, str):
        if not isinstance(value, str):
            raise ParameterError(f"parameter {name!r} must be a string, got {value!r}")
        if spec.choices and value not in spec.choices:
            raise ParameterError(
                f"parameter {name!r} must be one of {', '.join(spec.choices)}; got {value!r}"
            )
        return value
    elif isinstance(d, list):
        try:
            value = [float(v) for v in value]
        except (TypeError, ValueError):
            raise ParameterError(f"parameter {name!r} must be a list of numbers, got {value!r}") from None
        if spec.length is not None and len(value) != spec.length:
            raise ParameterError(f"parameter {name!r} needs {spec.length} numbers, got {len(value)}")
        if not all(math.isfinite(v) for v in value):
            raise ParameterError(f"parameter {name!r} must hold finite numbers, got {value}")
        return value
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise ParameterError(f"parameter {name!r} = {value} is outside [{spec.min}, {spec.max}]")
    return value


def check_consistency(p: NodeParams) -> None:
    """Cross-parameter rules (raise :class:`ParameterError`)."""
    if p.colorize_max_depth_m <= p.colorize_min_depth_m:
        raise ParameterError(
            f"colorize_max_depth_m ({p.colorize_max_depth_m}) must exceed colorize_min_depth_m "
            f"({p.colorize_min_depth_m})"
        )
    if p.image_bit_depth and not 8 <= p.image_bit_depth <= 16:
        raise ParameterError(f"image_bit_depth must be 0 (detect) or 8..16, got {p.image_bit_depth}")
    if not re.fullmatch(r"\d+x\d+(,\d+x\d+)*", p.model_resolutions.replace(" ", "")):
        raise ParameterError(
            f"parameter 'model_resolutions' must be HxW[,HxW...]; got {p.model_resolutions!r}"
        )
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", p.device):
        raise ParameterError(f"parameter 'device' must be auto, cpu, cuda or cuda:N; got {p.device!r}")
    if p.max_depth_m <= p.min_depth_m:
        raise ParameterError(f"max_depth_m ({p.max_depth_m}) must exceed min_depth_m ({p.min_depth_m})")


def from_values(values: dict[str, Any]) -> NodeParams:
    """Validate a complete ``{name: value}`` mapping into :class:`NodeParams` (defaults for missing names)."""
    unknown = sorted(set(values) - set(SPEC_BY_NAME))
    if unknown:
        raise ParameterError(f"unknown parameter(s): {', '.join(unknown)}")
    typed = {s.name: validate_value(s, values.get(s.name, s.default)) for s in SPECS}
    params = NodeParams(**typed)
    check_consistency(params)
    return params


def check_change(current: NodeParams, changes: dict[str, Any]) -> tuple[NodeParams | None, str]:
    """Runtime policy: ``(new_params, "")`` when every change is safe and valid, else ``(None, reason)``."""
    for name in changes:
        spec = SPEC_BY_NAME.get(name)
        if spec is None:
            continue  # not ours (e.g. use_sim_time): rclpy handles it
        if not spec.runtime_safe:
            return None, f"{name!r} cannot change while the node runs ({spec.description}): restart the node"
    ours = {k: v for k, v in changes.items() if k in SPEC_BY_NAME}
    try:
        typed = {k: validate_value(SPEC_BY_NAME[k], v) for k, v in ours.items()}
        new = current.replace(**typed)
        check_consistency(new)
    except ParameterError as exc:
        return None, str(exc)
    return new, ""


# ------------------------------------------------------------------------------------------ rclpy glue
def _descriptor(spec: ParamSpec):
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    extra = []
    if spec.choices:
        extra.append("one of: " + ", ".join(spec.choices))
    if not spec.runtime_safe:
        extra.append("fixed at start-up")
    desc = ParameterDescriptor(
        description=spec.description,
        additional_constraints="; ".join(extra),
        # Accept 1 for 1.0 and integer lists for double lists; validate_value converts and checks.
        dynamic_typing=isinstance(spec.default, (float, list)),
    )
    # Ranges are checked by validate_value (clear messages naming the parameter), not by rclpy, so
    # descriptors carry them for `ros2 param describe` only when the value type matches exactly.
    if isinstance(spec.default, float) and spec.min is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max))]
    elif isinstance(spec.default, int) and not isinstance(spec.default, bool) and spec.min is not None:
        desc.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
    return desc


def declare(node) -> NodeParams:
    """Declare every parameter on ``node`` and return the validated start-up values."""
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values = {}
    for spec in SPECS:
        try:
            param = node.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
            raise ParameterError(f"parameter {spec.name!r}: {exc} (expected {_expected(spec)})") from None
        values[spec.name] = param.value
    return from_values(values)


def _expected(spec: ParamSpec) -> str:
    if spec.choices:
        return "one of " + ", ".join(spec.choices)
    if spec.min is not None:
        return f"{type(spec.default).__name__} in [{spec.min}, {spec.max}]"
    return type(spec.default).__name__
