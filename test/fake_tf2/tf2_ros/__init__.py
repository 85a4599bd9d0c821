"""A stand-in ``tf2_ros`` for tests (the real one is not importable here), put on PYTHONPATH of a node process.

Its Buffer answers like tf2 for a robot driving straight at ``FAKE_TF_SPEED_MPS`` along the LiDAR's x axis:
``FAKE_TF_FIXED <- FAKE_TF_LIDAR`` at time t is a translation ``speed * (t - FAKE_TF_T0_NS)``, and
``FAKE_TF_CAMERA <- FAKE_TF_LIDAR`` is the static ``FAKE_TF_STATIC`` (16 row-major numbers). Every lookup is
appended to ``FAKE_TF_LOG`` (one line: kind and arguments) when set. Same method signatures as tf2_ros.
"""

from __future__ import annotations

import json
import os

import numpy as np

from depth_nodes.core.transforms import matrix_to_quaternion


class TransformException(Exception):
    pass


class LookupException(TransformException):
    pass


class ConnectivityException(TransformException):
    pass


class ExtrapolationException(TransformException):
    pass


class _Msg:
    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


def _msg(T: np.ndarray) -> _Msg:
    q = matrix_to_quaternion(T[:3, :3])
    t = T[:3, 3]
    tf = _Msg(translation=_Msg(x=t[0], y=t[1], z=t[2]), rotation=_Msg(x=q[0], y=q[1], z=q[2], w=q[3]))
    return _Msg(transform=tf)


def _log(*args) -> None:
    path = os.environ.get("FAKE_TF_LOG")
    if path:
        with open(path, "a") as f:
            f.write(" ".join(str(a) for a in args) + "\n")


class Buffer:
    def __init__(self, cache_time=None, node=None) -> None:
        self.speed = float(os.environ.get("FAKE_TF_SPEED_MPS", "0"))
        self.t0 = int(os.environ.get("FAKE_TF_T0_NS", "0"))
        self.static = np.array(json.loads(os.environ["FAKE_TF_STATIC"]), float).reshape(4, 4)
        self.camera = os.environ.get("FAKE_TF_CAMERA", "camera_optical")
        self.lidar = os.environ.get("FAKE_TF_LIDAR", "lidar")
        self.fixed = os.environ.get("FAKE_TF_FIXED", "odom")

    def _odom(self, t_ns: int) -> np.ndarray:
        T = np.eye(4)
        T[0, 3] = self.speed * (t_ns - self.t0) * 1e-9
        return T

    def lookup_transform(self, target_frame, source_frame, time, timeout=None):
        _log("lookup_transform", target_frame, source_frame, time.nanoseconds)
        if (target_frame, source_frame) == (self.camera, self.lidar):
            return _msg(self.static)
        if (target_frame, source_frame) == (self.fixed, self.lidar):
            return _msg(self._odom(time.nanoseconds))
        raise LookupException(f'"{target_frame}" <- "{source_frame}": frame does not exist')

    def lookup_transform_full(
        self, target_frame, target_time, source_frame, source_time, fixed_frame, timeout=None
    ):
        _log("lookup_transform_full", target_frame, target_time.nanoseconds, source_frame,
             source_time.nanoseconds, fixed_frame)  # fmt: skip
        if (target_frame, source_frame, fixed_frame) != (self.camera, self.lidar, self.fixed):
            raise LookupException(f'"{fixed_frame}": frame does not exist')
        T_img, T_scan = self._odom(target_time.nanoseconds), self._odom(source_time.nanoseconds)
        return _msg(self.static @ np.linalg.inv(T_img) @ T_scan)


class TransformListener:
    def __init__(self, buffer, node, *, spin_thread=False, qos=None, static_qos=None) -> None:
        self.buffer, self.node, self.spin_thread = buffer, node, spin_thread
