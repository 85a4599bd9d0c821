"""Rectification: a raw camera image resampled onto its rectified camera (P), as ``image_geometry`` does.

ROS's ``image_geometry.PinholeCameraModel.rectifyImage`` (used by ``image_proc``'s rectify node) builds its maps
once per CameraInfo with ``cv::initUndistortRectifyMap(K, D, R, P, size, CV_16SC2)`` (plumb_bob,
rational_polynomial) or ``cv::fisheye::initUndistortRectifyMap`` (equidistant) and resamples with
``cv::remap(..., INTER_LINEAR)``. :class:`Rectifier` does exactly that with OpenCV, from the two
:class:`~depth_nodes.core.camera.CameraModel` a CameraInfo describes (``msgs.camera_info``: the raw one, K + D
after ``R^T``, and the rectified one, P), so the rectified image, the LiDAR projected with P and a consumer that
back-projects with P (``depth_image_proc``) all share one geometry. ROI and binning: both models are already
cropped / scaled alike, which gives image_geometry's reduced maps (a crop of the full maps).
"""

from __future__ import annotations

import cv2
import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.errors import CalibrationError, InputShapeError


def _rotation(camera: CameraModel) -> np.ndarray:
    return np.eye(4) if camera.T_proj_frame is None else camera.T_proj_frame


def rectification_rotation(raw: CameraModel, rectified: CameraModel) -> np.ndarray:
    """``R`` (3x3) taking directions from the raw camera's projection frame into the rectified one's.

    Both models share the TF frame; their ``T_proj_frame`` may differ only by a rotation (a CameraInfo's R):
    an image can be re-projected onto another camera without parallax only about its own centre.
    """
    T = _rotation(rectified) @ np.linalg.inv(_rotation(raw))
    if not np.allclose(T[:3, 3], 0.0, atol=1e-9):
        raise CalibrationError(
            f"raw and rectified cameras differ by a translation {T[:3, 3].tolist()} m: not a rectification"
        )
    return T[:3, :3]


def needs_rectification(raw: CameraModel, rectified: CameraModel) -> bool:
    """False when the raw image already is the rectified one (no distortion, same K, no rotation)."""
    return (
        raw.has_distortion
        or not np.array_equal(raw.K, rectified.K)
        or not np.allclose(rectification_rotation(raw, rectified), np.eye(3), atol=1e-12)
    )


class Rectifier:
    """Resamples images of the ``raw`` camera onto the ``rectified`` one (same size); maps built once."""

    def __init__(self, raw: CameraModel, rectified: CameraModel) -> None:
        if raw.shape != rectified.shape:
            raise CalibrationError(
                f"raw camera is {raw.width}x{raw.height} but the rectified one {rectified.width}x{rectified.height}"
            )
        if rectified.has_distortion:
            raise CalibrationError("the rectified camera must have no distortion")
        self.raw, self.rectified = raw, rectified
        R = rectification_rotation(raw, rectified)
        size = (raw.width, raw.height)
        if raw.distortion_model == "equidistant":
            self.map1, self.map2 = cv2.fisheye.initUndistortRectifyMap(
                raw.K, raw.D[:4], R, rectified.K, size, cv2.CV_16SC2
            )
        else:
            D = raw.D if raw.has_distortion else None
            self.map1, self.map2 = cv2.initUndistortRectifyMap(raw.K, D, R, rectified.K, size, cv2.CV_16SC2)

    @property
    def shape(self) -> tuple[int, int]:
        return self.raw.shape

    def rectify(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """``image`` (H x W or H x W x C, raw geometry) in the rectified geometry; pixels the raw image does not
        cover are 0 (NaN for float images, as image_geometry's ``rectifyImage``)."""
        if image.shape[:2] != self.shape:
            raise InputShapeError(
                f"image is {image.shape[1]}x{image.shape[0]}, the rectifier expects "
                f"{self.raw.width}x{self.raw.height}"
            )
        border = float("nan") if image.dtype.kind == "f" else 0
        return cv2.remap(
            image, self.map1, self.map2, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=border
        )
