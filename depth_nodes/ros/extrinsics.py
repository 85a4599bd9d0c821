"""LiDAR -> camera extrinsics: tf2 lookups where ``tf2_ros`` is importable, else a static transform from parameters.

``T_cam_lidar`` (4x4, float64) maps points from the LiDAR frame to the camera optical frame. The TF source
looks up ``camera_frame <- lidar_frame`` at the scan's stamp; the parameter source builds it once from
``lidar_to_camera_matrix`` (16 values, row-major) or ``lidar_to_camera_xyz`` + ``lidar_to_camera_quat_xyzw``.
"""

from __future__ import annotations

import numpy as np

from depth_nodes.core.transforms import quaternion_to_matrix, rigid, validate_transform
from depth_nodes.errors import CalibrationError, DepthNodesError


class ExtrinsicsError(DepthNodesError):
    """No LiDAR -> camera transform is available for a scan (unknown frame, TF lookup failed)."""


def tf2_available() -> bool:
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return False
    return True


def static_from_params(xyz, quat_xyzw, matrix) -> tuple[np.ndarray, str]:
    """``(T_cam_lidar, description)`` from the parameter values; :class:`CalibrationError` when invalid."""
    m = np.asarray(matrix, dtype=np.float64).reshape(-1)
    if m.size == 16 and np.any(m):
        return validate_transform(
            m.reshape(4, 4), "lidar_to_camera_matrix"
        ), "parameters (lidar_to_camera_matrix)"
    try:
        R = quaternion_to_matrix(quat_xyzw)
    except DepthNodesError as exc:
        raise CalibrationError(f"lidar_to_camera_quat_xyzw: {exc}") from None
    return rigid(R, xyz), "parameters (lidar_to_camera_xyz + lidar_to_camera_quat_xyzw)"


class StaticExtrinsics:
    """A fixed ``T_cam_lidar``; scans from a frame other than ``lidar_frame`` (when set) are rejected."""

    def __init__(self, T_cam_lidar: np.ndarray, description: str, lidar_frame: str = "") -> None:
        self.T = validate_transform(T_cam_lidar, "T_cam_lidar")
        self.source = description
        self.lidar_frame = lidar_frame

    def lookup(self, camera_frame: str, lidar_frame: str, stamp_ns: int) -> np.ndarray:
        if self.lidar_frame and lidar_frame != self.lidar_frame:
            raise ExtrinsicsError(
                f"scan frame {lidar_frame!r} is not the configured lidar_frame {self.lidar_frame!r} "
                "(static extrinsics from parameters)"
            )
        return self.T


def transform_msg_to_matrix(transform) -> np.ndarray:
    """4x4 from a ``geometry_msgs/Transform`` (translation + rotation quaternion)."""
    t, q = transform.translation, transform.rotation
    return rigid(quaternion_to_matrix([q.x, q.y, q.z, q.w]), [t.x, t.y, t.z])


class TfExtrinsics:
    """tf2 lookups of ``camera_frame <- lidar_frame`` at the scan stamp (waits up to ``timeout_s``)."""

    source = "tf2"

    def __init__(self, node, timeout_s: float = 0.05, lidar_frame: str = "") -> None:
        import tf2_ros

        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer()
        # spin_thread=False: the /tf and /tf_static subscriptions live on ``node`` and are served by the
        # node's own executor (tf2_ros puts them in a reentrant group). spin_thread=True would add the
        # node to a second executor, and a node in two executors races both. lookup() runs on the
        # worker thread, whose timed wait (Buffer.can_transform sleeps) never blocks the executor.
        self.listener = tf2_ros.TransformListener(self.buffer, node, spin_thread=False)
        self.timeout_s = timeout_s
        self.lidar_frame = lidar_frame

    def lookup(self, camera_frame: str, lidar_frame: str, stamp_ns: int) -> np.ndarray:
        from rclpy.duration import Duration
        from rclpy.time import Time

        if self.lidar_frame and lidar_frame != self.lidar_frame:
            raise ExtrinsicsError(
                f"scan frame {lidar_frame!r} is not the configured lidar_frame {self.lidar_frame!r}"
            )
        try:
            tf = self.buffer.lookup_transform(
                camera_frame,
                lidar_frame,
                Time(nanoseconds=stamp_ns),
                timeout=Duration(seconds=self.timeout_s),
            )
        except (
            self._tf2.LookupException,
            self._tf2.ConnectivityException,
            self._tf2.ExtrapolationException,
        ) as exc:
            raise ExtrinsicsError(
                f"no TF {camera_frame!r} <- {lidar_frame!r} at the scan stamp: {exc}"
            ) from None
        return transform_msg_to_matrix(tf.transform)

    # ------------------------------------------------------------------ motion compensation
    def lookup_full(
        self, camera_frame: str, t_image_ns: int, lidar_frame: str, t_scan_ns: int, fixed_frame: str
    ) -> np.ndarray:
        """``camera(t_image) <- lidar(t_scan)`` through ``fixed_frame`` (tf2's time-travel lookup).

        ``Buffer.lookup_transform_full(target_frame, target_time, source_frame, source_time, fixed_frame,
        timeout)``: the LiDAR frame at ``t_scan`` into the fixed frame, then out of it into the camera frame
        at ``t_image`` - the robot's motion between the two stamps is in the transform.
        """
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            tf = self.buffer.lookup_transform_full(
                camera_frame,
                Time(nanoseconds=t_image_ns),
                lidar_frame,
                Time(nanoseconds=t_scan_ns),
                fixed_frame,
                timeout=Duration(seconds=self.timeout_s),
            )
        except self._errors() as exc:
            raise ExtrinsicsError(
                f"no TF {camera_frame!r} at the image stamp <- {lidar_frame!r} at the scan stamp through "
                f"{fixed_frame!r}: {exc}"
            ) from None
        return transform_msg_to_matrix(tf.transform)

    def lookup_pose(self, fixed_frame: str, lidar_frame: str, stamp_ns: int) -> np.ndarray:
        """``T_fixed_lidar`` at ``stamp_ns`` (the odometry pose of the LiDAR)."""
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            tf = self.buffer.lookup_transform(
                fixed_frame, lidar_frame, Time(nanoseconds=stamp_ns), timeout=Duration(seconds=self.timeout_s)
            )
        except self._errors() as exc:
            raise ExtrinsicsError(
                f"no TF {fixed_frame!r} <- {lidar_frame!r} at {stamp_ns} ns: {exc}"
            ) from None
        return transform_msg_to_matrix(tf.transform)

    def _errors(self) -> tuple[type[Exception], ...]:
        """tf2's lookup failures (``TransformException`` is their base in tf2_ros: timeouts included)."""
        names = ("TransformException", "LookupException", "ConnectivityException", "ExtrapolationException")
        return tuple(getattr(self._tf2, n) for n in names if hasattr(self._tf2, n))


def make_extrinsics(node, params) -> StaticExtrinsics | TfExtrinsics:
    """The extrinsics source chosen by ``params.extrinsics_source`` (``auto``: tf2 if importable)."""
    source = params.extrinsics_source
    if source == "tf" and not tf2_available():
        raise CalibrationError("extrinsics_source is 'tf' but tf2_ros is not importable: use 'parameters'")
    if source == "tf" or (source == "auto" and tf2_available()):
        return TfExtrinsics(node, params.tf_timeout_s, params.lidar_frame)
    T, description = static_from_params(
        params.lidar_to_camera_xyz, params.lidar_to_camera_quat_xyzw, params.lidar_to_camera_matrix
    )
    return StaticExtrinsics(T, description, params.lidar_frame)


def make_compensator(params, extrinsics):
    """The :class:`core.compensation.ScanCompensator` for ``params.motion_compensation``.

    ``lidar_odometry`` builds KISS-ICP (lazily imported; max range = ``max_depth_m``).
    """
    from depth_nodes.core.compensation import ScanCompensator, resolve_mode

    odometry = None
    if resolve_mode(params.motion_compensation, extrinsics) == "lidar_odometry":
        from depth_nodes.core.lidar_odometry import LidarOdometry

        odometry = LidarOdometry(max_range_m=params.max_depth_m)
    return ScanCompensator(params.motion_compensation, extrinsics, odometry)
