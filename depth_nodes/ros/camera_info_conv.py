"""``sensor_msgs/CameraInfo`` <-> :class:`depth_nodes.core.camera.CameraModel`."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from depth_nodes.core.camera import DISTORTION_SIZES, CameraModel
from depth_nodes.errors import CalibrationError, ConversionError

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


def camera_info_to_model(msg: CameraInfo) -> CameraModel:
    """Camera model from K, D and the distortion model of a CameraInfo (empty or all-zero D -> no distortion).

    ``binning_x/y`` > 1 and a non-empty ``roi`` describe the image actually published: the model is
    cropped to the ROI and then scaled by the binning, as image_geometry does.
    """
    if msg.width <= 0 or msg.height <= 0:
        raise ConversionError(f"camera_info: zero image size {msg.width}x{msg.height}")
    k = np.asarray(msg.k, dtype=np.float64)
    if k.size != 9:
        raise ConversionError(f"camera_info: k must have 9 values, got {k.size}")
    if not np.any(k):
        raise ConversionError("camera_info: K is all zero (camera not calibrated)")
    name = (msg.distortion_model or "").strip().lower()
    if name not in _MODEL_ALIASES:
        raise ConversionError(
            f"camera_info: unknown distortion_model {msg.distortion_model!r}; "
            f"supported: plumb_bob, rational_polynomial, equidistant"
        )
    model = _MODEL_ALIASES[name]
    d = np.asarray(msg.d, dtype=np.float64).reshape(-1)
    if d.size == 0 or not np.any(d):
        model, d = "none", np.zeros(0)
    elif model != "none":
        size = max(DISTORTION_SIZES[model])
        if model == "plumb_bob" and d.size == 4:
            d = np.append(d, 0.0)
        if d.size > size and not np.any(d[size:]):  # trailing zeros some drivers append (e.g. 14 values)
            d = d[:size]
    try:
        camera = CameraModel(int(msg.width), int(msg.height), k.reshape(3, 3), d, model)
    except CalibrationError as exc:
        raise ConversionError(f"camera_info: {exc}") from exc
    return _apply_roi_binning(camera, msg)


def _apply_roi_binning(camera: CameraModel, msg: CameraInfo) -> CameraModel:
    roi = msg.roi
    try:
        if roi.width > 0 and roi.height > 0 and (roi.width, roi.height) != (camera.width, camera.height):
            camera = camera.crop(int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
        bx, by = max(int(msg.binning_x), 1), max(int(msg.binning_y), 1)
        if bx > 1 or by > 1:
            K = camera.K.copy()
            K[0, :] /= bx
            K[1, :] /= by
            camera = CameraModel(
                camera.width // bx, camera.height // by, K, camera.D.copy(), camera.distortion_model
            )
    except CalibrationError as exc:
        raise ConversionError(f"camera_info: roi/binning: {exc}") from exc
    return camera


def model_to_camera_info(camera: CameraModel, header: Header | None = None) -> CameraInfo:
    """A CameraInfo for ``camera``: K, D, R = I, P = [K | 0] (a single unrectified camera)."""
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = int(camera.width), int(camera.height)
    msg.distortion_model = "plumb_bob" if camera.distortion_model == "none" else camera.distortion_model
    msg.d = [float(v) for v in camera.D] if camera.distortion_model != "none" else [0.0] * 5
    msg.k = [float(v) for v in camera.K.reshape(-1)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:, :3] = camera.K
    msg.p = [float(v) for v in P.reshape(-1)]
    return msg
