"""Builders of the messages the bag tools write (Image, CameraInfo, PointCloud2, TF, Clock) as ``rosbags``
message objects, and the TF decoder. Decoding images, clouds and CameraInfo is :mod:`depth_nodes.msgs`'s job.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depth_nodes.core.transforms import matrix_to_quaternion, quaternion_to_matrix, validate_transform
from depth_nodes.data.bag_types import msg_class, typestore
from depth_nodes.errors import DataFormatError
from depth_nodes.msgs.cloud import FLOAT32


def _header(stamp_ns: int, frame_id: str):
    ts = typestore().types
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return ts["std_msgs/msg/Header"](
        stamp=ts["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=frame_id
    )


def image_msg(image: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8"):
    """``sensor_msgs/Image`` from an H x W x 3 uint8 (``rgb8``/``bgr8``) or H x W float32 (``32FC1``) array."""
    image = np.ascontiguousarray(image)
    if image.ndim == 3:
        channels = image.shape[2]
    elif image.ndim == 2:
        channels = 1
    else:
        raise DataFormatError(f"image must be H x W or H x W x C, got shape {image.shape}")
    h, w = image.shape[:2]
    return msg_class("sensor_msgs/msg/Image")(
        header=_header(stamp_ns, frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * channels * image.dtype.itemsize,
        data=image.view(np.uint8).reshape(-1),
    )


def camera_info_msg(K: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str, P=None, R=None):
    """``sensor_msgs/CameraInfo`` of a rectified camera (no distortion: ``plumb_bob`` with D = 0).

    ``P`` defaults to ``[K | 0]`` and ``R`` to identity: the image is already rectified and the frame's pose
    (including any stereo baseline) is carried by TF, so consumers project with K alone.
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.hstack([K, np.zeros((3, 1))]) if P is None else np.asarray(P, np.float64).reshape(3, 4)
    R = np.eye(3) if R is None else np.asarray(R, np.float64).reshape(3, 3)
    ts = typestore().types
    return ts["sensor_msgs/msg/CameraInfo"](
        header=_header(stamp_ns, frame_id),
        height=int(height),
        width=int(width),
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=K.reshape(-1),
        r=R.reshape(-1),
        p=P.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=ts["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def pointcloud_msg(points: np.ndarray, stamp_ns: int, frame_id: str, names=("x", "y", "z", "intensity")):
    """Unorganized ``sensor_msgs/PointCloud2`` of N x len(names) float32 values (default x, y, z, intensity)."""
    pts = np.ascontiguousarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != len(names):
        raise DataFormatError(f"points must be N x {len(names)} float32, got shape {pts.shape}")
    Field = msg_class("sensor_msgs/msg/PointField")
    fields = [Field(name=n, offset=4 * i, datatype=FLOAT32, count=1) for i, n in enumerate(names)]
    step = 4 * len(names)
    return msg_class("sensor_msgs/msg/PointCloud2")(
        header=_header(stamp_ns, frame_id),
        height=1,
        width=pts.shape[0],
        fields=fields,
        is_bigendian=False,
        point_step=step,
        row_step=step * pts.shape[0],
        data=pts.view(np.uint8).reshape(-1),
        is_dense=bool(np.all(np.isfinite(pts))),
    )


def transform_stamped(T_parent_child: np.ndarray, stamp_ns: int, parent: str, child: str):
    """``geometry_msgs/TransformStamped`` for the 4x4 ``T_parent_child`` (maps child-frame points to parent)."""
    T = validate_transform(T_parent_child, f"{parent} <- {child}")
    q = matrix_to_quaternion(T[:3, :3])
    ts = typestore().types
    return ts["geometry_msgs/msg/TransformStamped"](
        header=_header(stamp_ns, parent),
        child_frame_id=child,
        transform=ts["geometry_msgs/msg/Transform"](
            translation=ts["geometry_msgs/msg/Vector3"](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
            rotation=ts["geometry_msgs/msg/Quaternion"](
                x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])
            ),
        ),
    )


def tf_message(transforms: list):
    return msg_class("tf2_msgs/msg/TFMessage")(transforms=transforms)


def clock_msg(stamp_ns: int):
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    ts = typestore().types
    return ts["rosgraph_msgs/msg/Clock"](clock=ts["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec))


def transform_to_matrix(tf: Any) -> np.ndarray:
    """4x4 ``T_parent_child`` from a ``geometry_msgs/Transform``."""
    r, t = tf.rotation, tf.translation
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(np.array([r.x, r.y, r.z, r.w]))
    T[:3, 3] = (t.x, t.y, t.z)
    return T
