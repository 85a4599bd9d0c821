"""``sensor_msgs/PointCloud2`` builders; the decoders live in :mod:`depth_nodes.msgs.cloud`."""

from __future__ import annotations

import sys

import cv2
import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from depth_nodes.errors import ConversionError
from depth_nodes.msgs.cloud import (
    packed_rgb,
)
from depth_nodes.ros.builders.buffer import set_data

_HOST_BIG_ENDIAN = sys.byteorder == "big"


def xyzrgb_fields(with_rgb: bool = True) -> list[PointField]:
    """float32 x, y, z (+ float32 ``rgb`` packed 0x00RRGGBB, as PCL and RViz expect)."""
    names = ("x", "y", "z", "rgb") if with_rgb else ("x", "y", "z")
    return [
        PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(names)
    ]


def xyzrgb_to_pointcloud2(
    xyz: np.ndarray, rgb: np.ndarray | None, header: Header | None = None, organized: bool = True
) -> PointCloud2:
    """PointCloud2 with float32 x, y, z and packed ``rgb`` (omitted when ``rgb`` is None).

    ``xyz`` is H x W x 3 (organized: kept as an H x W cloud with NaN for invalid points) or N x 3.
    With ``organized=False`` the cloud is flattened to 1 x N and points with non-finite xyz are dropped
    (``is_dense`` = True). ``rgb`` is uint8 with the same leading shape as ``xyz`` and 3 channels (RGB).
    """
    xyz = np.asarray(xyz)
    if xyz.ndim not in (2, 3) or xyz.shape[-1] != 3:
        raise ConversionError(f"xyzrgb_to_pointcloud2: xyz must be H x W x 3 or N x 3, got shape {xyz.shape}")
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != xyz.shape:
            raise ConversionError(
                f"xyzrgb_to_pointcloud2: rgb shape {rgb.shape} does not match xyz shape {xyz.shape}"
            )
        if rgb.dtype != np.uint8:
            raise ConversionError(f"xyzrgb_to_pointcloud2: rgb must be uint8, got {rgb.dtype}")
    if organized and xyz.ndim == 3:
        height, width = xyz.shape[:2]
    else:
        height, width = 1, xyz.size // 3
    # OpenCV does the interleaving: 1 x N images with 3 (xyz) and 1 (packed rgb) channels merged into one
    # 1 x N x 4 float32 buffer in one pass (0.45 ms at 1216x352 vs 3.5 ms for numpy strided assignments).
    # 1 x N, not N x 1: OpenCV loops over rows, and 428k one-pixel rows cost 10x more.
    pts = np.ascontiguousarray(xyz, dtype=np.float32).reshape(1, -1, 3)
    if pts.shape[0] == 0:  # OpenCV refuses empty images
        buf = np.zeros((0, 4 if rgb is not None else 3), np.float32)
    elif rgb is not None:
        buf = cv2.merge([pts, packed_rgb(rgb.reshape(1, -1, 3)).view(np.float32)])
    else:
        buf = pts
    step = 16 if rgb is not None else 12
    records = buf.reshape(-1).view(f"V{step}")  # one opaque item per point
    # x + y + z is finite iff all three are (an overflow to inf only for |coordinates| ~ 1e38).
    finite = (
        np.isfinite(cv2.transform(pts, np.ones((1, 3), np.float32))).reshape(-1)
        if len(pts)
        else pts[:0, 0, 0] == 0
    )
    dense = bool(finite.all())
    if not organized:
        if not dense:
            records = records[finite]
        width, dense = records.shape[0], True
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(height), int(width)
    msg.fields = xyzrgb_fields(rgb is not None)
    msg.is_bigendian = _HOST_BIG_ENDIAN
    msg.point_step = step
    msg.row_step = step * int(width)
    msg.is_dense = dense
    set_data(msg, records)
    return msg
