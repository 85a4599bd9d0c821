"""``sensor_msgs/CameraInfo`` builders; the decoder lives in :mod:`depth_nodes.msgs.camera_info`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import CameraInfo, RegionOfInterest
from std_msgs.msg import Header

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.rectification import Rectifier
from depth_nodes.msgs.camera_info import (
    info_geometry,
    published_info_fields,
)


def model_to_camera_info(camera: CameraModel, header: Header | None = None) -> CameraInfo:
    """A CameraInfo for ``camera``: K, D, R = I, P = [K | K b] (b: the translation of ``T_proj_frame``).

    A ``T_proj_frame`` with a rotation (a raw stereo camera) is written as R = its rotation transposed;
    P's 3x3 is then K (the model does not keep the rectified intrinsics).
    """
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = int(camera.width), int(camera.height)
    msg.distortion_model = "plumb_bob" if camera.distortion_model == "none" else camera.distortion_model
    msg.d = [float(v) for v in camera.D] if camera.distortion_model != "none" else [0.0] * 5
    msg.k = [float(v) for v in camera.K.reshape(-1)]
    T = np.eye(4) if camera.T_proj_frame is None else camera.T_proj_frame
    R = T[:3, :3].T
    P = np.zeros((3, 4))
    P[:, :3] = camera.K
    P[:, 3] = camera.K @ (R @ T[:3, 3])
    msg.r = [float(v) for v in R.reshape(-1)]
    msg.p = [float(v) for v in P.reshape(-1)]
    return msg


def depth_camera_info(info: CameraInfo, kind: str, header: Header) -> CameraInfo:
    """A new CameraInfo for the published depth image, whose geometry is ``kind`` ("raw" / "rectified"),
    the ``output`` of :func:`camera_geometry`.

    Rectified: K = P[:, :3], D = 0, R = I, P as is; raw: the input's calibration unchanged. Size, binning and
    ROI are copied. Always a new message: the input one may still be read by another thread.
    """
    fields = published_info_fields(info, kind)
    roi = info.roi
    return CameraInfo(
        header=header,
        width=int(info.width),
        height=int(info.height),
        binning_x=int(info.binning_x),
        binning_y=int(info.binning_y),
        roi=RegionOfInterest(
            x_offset=int(roi.x_offset),
            y_offset=int(roi.y_offset),
            width=int(roi.width),
            height=int(roi.height),
            do_rectify=bool(roi.do_rectify),
        ),
        **fields,
    )


@dataclass(frozen=True)
class CameraGeometry:
    """What the node keeps per CameraInfo: the model it works in (the published geometry), how the input image
    is read (``kind``) and why, the published geometry (``output``), the rectifier of input images (None: used
    as they are) and the CameraInfo describing the published depth (a template; the header is replaced)."""

    camera: CameraModel
    kind: str
    reason: str
    depth_info: CameraInfo
    output: str = ""
    rectifier: Rectifier | None = None


def camera_geometry(
    msg: CameraInfo,
    camera_model: str = "auto",
    image_topic: str = "",
    max_incidence_deg: float | None = None,
    depth_geometry: str = "rectified",
) -> CameraGeometry:
    """:class:`CameraGeometry` of a received CameraInfo (``ConversionError`` naming the problem)."""
    g = info_geometry(msg, camera_model, image_topic, max_incidence_deg, depth_geometry)
    return CameraGeometry(
        g.camera, g.kind, g.reason, depth_camera_info(msg, g.output, msg.header), g.output, g.rectifier
    )
