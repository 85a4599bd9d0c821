"""``sensor_msgs/CameraInfo`` -> :class:`depth_nodes.core.camera.CameraModel`, as ``image_geometry`` reads it.

A CameraInfo describes two images: the **raw** one (K, D) and the **rectified** one (P, after the
rotation R). Which one arrived is not in the message, so the node has a ``camera_model`` parameter:

- ``raw``: project with K and D. 3D points are in image_geometry's camera frame (the rectified one), so a
  point reaches the raw image as ``unrectifyPoint(project3dToPixel(X))`` does: P's ``Tx``/``Ty`` offset, the
  rotation R^T, then K + D.
- ``rectified``: project with P, no distortion: ``u = (fx' X + Tx) / Z + cx'``, ``v = (fy' Y + Ty) / Z + cy'``
  (``project3dToPixel``); the stereo offset ``K'^-1 [Tx, Ty, Tz]`` becomes ``CameraModel.T_proj_frame``.
- ``auto`` (default): D all zero -> ``rectified`` (raw and rectified coincide; image_geometry then uses P
  for both); otherwise ``rectified`` when the image topic names a rectified image (a path or ``_``-separated
  part starting with ``rect``: ``image_rect``, ``image_rect_color``, ``rectified/image``), else ``raw``.

An all-zero P (some drivers) falls back to ``[K | 0]``, an all-zero R to identity. ``binning`` and ``roi``
then crop and scale the chosen intrinsics, as image_geometry does.

What the node *publishes* is a separate choice, ``depth_geometry`` (:func:`info_geometry`): ``rectified``
(default) resamples a raw image onto P (:class:`~depth_nodes.core.rectification.Rectifier`) and works in the
rectified camera, so the depth is described by a CameraInfo with D = 0 and that P, which is all
``depth_image_proc`` reads (it back-projects with P and ignores D); ``raw`` keeps the input's geometry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from depth_nodes.core.camera import DISTORTION_SIZES, CameraModel
from depth_nodes.core.rectification import Rectifier, needs_rectification
from depth_nodes.errors import CalibrationError, ConversionError

#: Values of the node's ``camera_model`` parameter.
CAMERA_MODELS = ("auto", "raw", "rectified")

#: Values of the node's ``depth_geometry`` parameter: the geometry of the published depth image.
DEPTH_GEOMETRIES = ("rectified", "raw")

#: Names drivers use for the same models (camera_calibration_parsers / image_geometry spell them as keys).
_MODEL_ALIASES = {
    "plumb_bob": "plumb_bob",
    "rational_polynomial": "rational_polynomial",
    "equidistant": "equidistant",
    "fisheye": "equidistant",
    "kannala_brandt": "equidistant",
    "none": "none",
    "": "plumb_bob",
}

_RECTIFIED_TOPIC = re.compile(r"(?:^|[/_])rect(?:ified)?(?:$|[/_])")


def topic_is_rectified(topic: str) -> bool:
    """True when a topic name says it carries a rectified image (``.../image_rect_color``, ``rect/...``)."""
    return bool(_RECTIFIED_TOPIC.search(topic or ""))


def _distortion(msg) -> np.ndarray:
    return np.asarray(msg.d, dtype=np.float64).reshape(-1)


def resolve_camera_model(camera_model: str, msg, image_topic: str = "") -> tuple[str, str]:
    """``("raw" | "rectified", reason)`` for a ``camera_model`` setting, a CameraInfo and the image topic."""
    if camera_model not in CAMERA_MODELS:
        raise ConversionError(f"camera_model must be one of {', '.join(CAMERA_MODELS)}, got {camera_model!r}")
    if camera_model != "auto":
        return camera_model, f"camera_model parameter = {camera_model}"
    d = _distortion(msg)
    if not np.any(d):
        return (
            "rectified",
            "auto: D is all zero, raw and rectified images coincide (P is used, as image_geometry)",
        )
    if topic_is_rectified(image_topic):
        return "rectified", f"auto: image topic {image_topic!r} names a rectified image"
    return "raw", f"auto: D is non-zero and image topic {image_topic!r} does not name a rectified image"


def _matrices(msg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K (3x3), R (3x3, identity if all zero) and P (3x4, ``[K | 0]`` if all zero), validated."""
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if k.size != 9:
        raise ConversionError(f"camera_info: k must have 9 values, got {k.size}")
    if not np.any(k):
        raise ConversionError("camera_info: K is all zero (camera not calibrated)")
    K = k.reshape(3, 3)
    r = np.asarray(getattr(msg, "r", ()), dtype=np.float64).reshape(-1)
    R = np.eye(3) if r.size == 0 or not np.any(r) else r.reshape(3, 3) if r.size == 9 else None
    if R is None:
        raise ConversionError(f"camera_info: r must have 9 values, got {r.size}")
    if not np.all(np.isfinite(R)) or not np.allclose(R @ R.T, np.eye(3), atol=1e-5):
        raise ConversionError("camera_info: R is not a rotation matrix")
    p = np.asarray(getattr(msg, "p", ()), dtype=np.float64).reshape(-1)
    if p.size == 0 or not np.any(p):
        P = np.hstack([K, np.zeros((3, 1))])
    elif p.size == 12:
        P = p.reshape(3, 4)
    else:
        raise ConversionError(f"camera_info: p must have 12 values, got {p.size}")
    if not np.all(np.isfinite(P)):
        raise ConversionError("camera_info: P contains NaN or inf")
    return K, R, P


def _stereo_offset(P: np.ndarray) -> np.ndarray:
    """``b`` with ``P [X; 1] = P[:, :3] (X + b)``: the stereo baseline P's 4th column encodes (0 for mono)."""
    if not np.any(P[:, 3]):
        return np.zeros(3)
    try:
        return np.linalg.solve(P[:, :3], P[:, 3])
    except np.linalg.LinAlgError as exc:
        raise ConversionError("camera_info: P[:, :3] is singular") from exc


def camera_info_to_model(
    msg, camera_model: str = "auto", image_topic: str = "", max_incidence_deg: float | None = None
) -> CameraModel:
    """The camera model of the image a CameraInfo describes (see the module doc for ``camera_model``).

    ``binning_x/y`` > 1 and a non-empty ``roi`` describe the image actually published: the model is
    cropped to the ROI and then scaled by the binning, as image_geometry does.
    """
    if msg.width <= 0 or msg.height <= 0:
        raise ConversionError(f"camera_info: zero image size {msg.width}x{msg.height}")
    kind, _ = resolve_camera_model(camera_model, msg, image_topic)
    K, R, P = _matrices(msg)
    b = _stereo_offset(P)
    T = np.eye(4)
    if kind == "rectified":
        if np.allclose(P[:, :3], 0):
            raise ConversionError("camera_info: P[:, :3] is zero; a rectified image needs P")
        intrinsics, d, model = P[:, :3].copy(), np.zeros(0), "none"
        T[:3, 3] = b
    else:
        intrinsics = K
        model, d = _raw_distortion(msg)
        T[:3, :3] = R.T
        T[:3, 3] = R.T @ b
    try:
        camera = CameraModel(
            int(msg.width), int(msg.height), intrinsics, d, model, T, max_incidence_deg=max_incidence_deg
        )
    except CalibrationError as exc:
        raise ConversionError(f"camera_info: {exc}") from exc
    return _apply_roi_binning(camera, msg)


def _raw_distortion(msg) -> tuple[str, np.ndarray]:
    name = (msg.distortion_model or "").strip().lower()
    if name not in _MODEL_ALIASES:
        raise ConversionError(
            f"camera_info: unknown distortion_model {msg.distortion_model!r}; "
            f"supported: plumb_bob, rational_polynomial, equidistant"
        )
    model = _MODEL_ALIASES[name]
    d = _distortion(msg)
    if d.size == 0 or not np.any(d):
        return "none", np.zeros(0)
    if model != "none":
        size = max(DISTORTION_SIZES[model])
        if model == "plumb_bob" and d.size == 4:
            d = np.append(d, 0.0)
        if d.size > size and not np.any(d[size:]):  # trailing zeros some drivers append (e.g. 14 values)
            d = d[:size]
    return model, d


def _apply_roi_binning(camera: CameraModel, msg) -> CameraModel:
    roi = msg.roi
    try:
        if roi.width > 0 and roi.height > 0 and (roi.width, roi.height) != (camera.width, camera.height):
            camera = camera.crop(int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
        bx, by = max(int(msg.binning_x), 1), max(int(msg.binning_y), 1)
        if bx > 1 or by > 1:
            K = camera.K.copy()
            K[0, :] /= bx
            K[1, :] /= by
            camera = camera._derived(camera.width // bx, camera.height // by, K)
    except CalibrationError as exc:
        raise ConversionError(f"camera_info: roi/binning: {exc}") from exc
    return camera


def published_info_fields(msg, kind: str) -> dict:
    """K, D, R, P and distortion_model of the CameraInfo that describes an image in ``kind`` geometry.

    ``rectified``: K = P[:, :3], D = 0, R = I, P as is (a consumer such as depth_image_proc then sees an
    undistorted camera with the right intrinsics); ``raw``: the input's fields unchanged.
    """
    if kind == "raw":
        return {
            "distortion_model": msg.distortion_model,
            "d": [float(v) for v in _distortion(msg)],
            "k": [float(v) for v in np.asarray(msg.k, np.float64).reshape(-1)],
            "r": [float(v) for v in np.asarray(msg.r, np.float64).reshape(-1)],
            "p": [float(v) for v in np.asarray(msg.p, np.float64).reshape(-1)],
        }
    _, _, P = _matrices(msg)
    return {
        "distortion_model": "plumb_bob",
        "d": [0.0] * 5,
        "k": [float(v) for v in P[:, :3].reshape(-1)],
        "r": [float(v) for v in np.eye(3).reshape(-1)],
        "p": [float(v) for v in P.reshape(-1)],
    }


@dataclass(frozen=True, eq=False)
class InfoGeometry:
    """What one CameraInfo means to the node.

    ``kind``: how the input image is read (``raw`` / ``rectified``, :func:`resolve_camera_model`) and ``reason``;
    ``output``: the geometry of everything published (depth, confidence, colourised depth, cloud colours);
    ``camera``: the model the node projects the LiDAR with, in that output geometry; ``rectifier``: resamples
    an input image into it (None: the input image is used as is).
    """

    kind: str
    reason: str
    output: str
    camera: CameraModel
    rectifier: Rectifier | None = None


def info_geometry(
    msg,
    camera_model: str = "auto",
    image_topic: str = "",
    max_incidence_deg: float | None = None,
    depth_geometry: str = "rectified",
) -> InfoGeometry:
    """:class:`InfoGeometry` of a CameraInfo (``ConversionError`` naming the problem).

    A raw input with ``depth_geometry: rectified`` is rectified onto P (image_geometry's maps), unless the raw
    image already is the rectified one (no distortion, K = P[:, :3], R = I); a rectified input stays as is.
    """
    if depth_geometry not in DEPTH_GEOMETRIES:
        raise ConversionError(
            f"depth_geometry must be one of {', '.join(DEPTH_GEOMETRIES)}, got {depth_geometry!r}"
        )
    kind, reason = resolve_camera_model(camera_model, msg, image_topic)
    camera = camera_info_to_model(msg, kind, image_topic, max_incidence_deg)
    if kind == "rectified" or depth_geometry == "raw":
        return InfoGeometry(kind, reason, kind, camera)
    rectified = camera_info_to_model(msg, "rectified", image_topic, max_incidence_deg)
    try:
        rectifier = Rectifier(camera, rectified) if needs_rectification(camera, rectified) else None
    except CalibrationError as exc:
        raise ConversionError(f"camera_info: cannot rectify: {exc}") from exc
    return InfoGeometry(kind, reason, "rectified", rectified, rectifier)
