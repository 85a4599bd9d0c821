"""Motion compensation: bring a LiDAR scan to the image's time (ROS-free).

Conventions. Poses are 4x4 ``T_fixed_sensor`` (sensor -> fixed frame, e.g. ``odom``). A scan has a stamp
``t_scan`` and, optionally, a firing time per point, ``point_time_ns`` = int64 ns relative to ``t_scan``
(see :func:`normalise_point_times`). Velocities are *body* twists of the LiDAR, ``v`` (m/s) and ``w``
(rad/s) in the LiDAR frame, held constant over a sweep (constant velocity): the pose ``dt`` seconds after a
reference is ``T_ref @ exp(dt * [v, w])``. The motion between two firing times therefore depends only on
their difference, and a point measured at ``t_k`` is brought into the LiDAR frame at ``t_ref`` by
``exp((t_k - t_ref) * [v, w])``.

Three steps, as the node uses them:
1. :func:`velocity_from_poses`: the twist from two odometry poses (TF at two times, or LiDAR odometry).
2. :func:`deskew`: every point to the LiDAR frame at one reference time (vectorised SE(3) exp; the axis
   of rotation is the same for all points, so the exp map is Rodrigues' formula with a per-point angle:
   exact, no per-point matrices).
3. The scan-level transform ``camera(t_image) <- lidar(t_scan)`` (tf2 ``lookup_transform_full`` with a
   fixed frame, or :func:`scan_to_image_transform` from the static extrinsics and the twist).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_nodes.errors import DepthNodesError

#: Diagnostics text when nothing moves the scan to the image's time.
STATUS_NONE = "no motion compensation"
#: A sweep whose per-point times span more than this is not one sweep (bad field or unit): not deskewed.
MAX_SWEEP_S = 0.5
_NS_ABSOLUTE = 1e15  # 11.6 days in ns: larger integer times are epoch stamps, not offsets
_S_ABSOLUTE = 1e6  # 11.6 days in s
_S_IS_NS = 1e15  # a floating "seconds" value this large is epoch nanoseconds (livox_ros_driver2)


class MotionError(DepthNodesError):
    """Per-point times or poses that cannot be used for motion compensation."""


@dataclass(frozen=True)
class Velocity:
    """Constant body twist of the LiDAR: ``v_mps`` (3,) and ``w_radps`` (3,) in the LiDAR frame."""

    v_mps: np.ndarray
    w_radps: np.ndarray

    @property
    def speed_mps(self) -> float:
        return float(np.linalg.norm(self.v_mps))

    @staticmethod
    def zero() -> Velocity:
        return Velocity(np.zeros(3), np.zeros(3))


def _hat(w: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def se3_log(T: np.ndarray) -> np.ndarray:
    """Twist ``[rho, phi]`` (6,) with ``exp([rho, phi]) = T`` (phi = rotation vector, |phi| < pi)."""
    # imported here: scipy.spatial costs ~37 MB RSS and ~1 s of start-up in every node process, and only
    # motion compensation needs it (issue 19, node RSS budget)
    from scipy.spatial.transform import Rotation

    T = np.asarray(T, np.float64)
    phi = Rotation.from_matrix(T[:3, :3]).as_rotvec()
    theta = float(np.linalg.norm(phi))
    K = _hat(phi)
    if theta < 1e-6:
        V_inv = np.eye(3) - 0.5 * K + (1.0 / 12.0) * (K @ K)
    else:
        c = 1.0 / theta**2 - (1.0 + np.cos(theta)) / (2.0 * theta * np.sin(theta))
        V_inv = np.eye(3) - 0.5 * K + c * (K @ K)
    return np.concatenate([V_inv @ T[:3, 3], phi])


def se3_exp(xi: np.ndarray) -> np.ndarray:
    """4x4 ``exp([rho, phi])`` (the inverse of :func:`se3_log`)."""
    rho, phi = np.asarray(xi, np.float64)[:3], np.asarray(xi, np.float64)[3:]
    R, t = _exp_along(phi, rho, np.ones(1))
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R[0], t[0]
    return T


def _exp_along(w: np.ndarray, v: np.ndarray, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (N x 3 x 3) and translations (N x 3) of ``exp(dt_i * [v, w])`` for every ``dt_i``."""
    dt = np.asarray(dt, np.float64).reshape(-1)
    speed = float(np.linalg.norm(w))
    k = w / speed if speed > 0 else np.zeros(3)
    th = speed * dt
    s, c = np.sin(th), np.cos(th)
    K = _hat(k)
    R = np.eye(3) + s[:, None, None] * K + (1.0 - c)[:, None, None] * (K @ K)
    a, b = _series(th)
    vt = v[None, :] * dt[:, None]
    t = vt + a[:, None] * np.cross(k, vt) + b[:, None] * np.cross(k, np.cross(k, vt))
    return R, t


def _series(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - cos th) / th`` and ``(th - sin th) / th`` without cancellation near 0."""
    small = np.abs(th) < 1e-4
    safe = np.where(small, 1.0, th)
    a = np.where(small, th / 2.0, (1.0 - np.cos(safe)) / safe)
    b = np.where(small, th * th / 6.0, (safe - np.sin(safe)) / safe)
    return a, b


def _cross_const(k: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``k x p_i`` for one vector ``k`` and N x 3 ``p``."""
    out = np.empty_like(p)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    out[:, 0] = k[1] * z - k[2] * y
    out[:, 1] = k[2] * x - k[0] * z
    out[:, 2] = k[0] * y - k[1] * x
    return out


def velocity_from_poses(T_a: np.ndarray, t_a_ns: int, T_b: np.ndarray, t_b_ns: int) -> Velocity:
    """Constant body twist that moves the LiDAR from pose ``T_a`` (at ``t_a_ns``) to ``T_b`` (at ``t_b_ns``).

    ``T_a``/``T_b`` are ``T_fixed_lidar`` (e.g. from TF ``odom <- lidar``); the twist is in the LiDAR frame.
    """
    dt_s = (int(t_b_ns) - int(t_a_ns)) * 1e-9
    if dt_s <= 0:
        raise MotionError(f"velocity from poses needs t_b > t_a, got dt = {dt_s * 1e3:.3f} ms")
    xi = se3_log(np.linalg.solve(np.asarray(T_a, np.float64), np.asarray(T_b, np.float64))) / dt_s
    return Velocity(xi[:3], xi[3:])


def motion_over(velocity: Velocity, dt_s: float) -> np.ndarray:
    """4x4 ``T_lidar(t)_lidar(t + dt)``: where the LiDAR is ``dt_s`` later, in its frame at ``t``."""
    return se3_exp(np.concatenate([velocity.v_mps, velocity.w_radps]) * float(dt_s))


def deskew(points: np.ndarray, dt_s: np.ndarray, velocity: Velocity) -> np.ndarray:
    """Points measured ``dt_s`` (N,) after a reference time -> the LiDAR frame at the reference time.

    ``points`` N x 3 (or N x 4: extra columns are kept), each in the LiDAR frame at its own firing time.
    """
    pts = np.asarray(points)
    dt = np.asarray(dt_s, np.float64).reshape(-1)
    if dt.shape[0] != pts.shape[0]:
        raise MotionError(f"deskew: {dt.shape[0]} times for {pts.shape[0]} points")
    # Rodrigues on the vectors themselves (the axis k is shared): p' = p + sin(th) k x p
    # + (1 - cos th) k x (k x p) + t(th), no per-point matrices.
    w, v = velocity.w_radps, velocity.v_mps
    speed = float(np.linalg.norm(w))
    k = w / speed if speed > 0 else np.zeros(3)
    th = speed * dt
    xyz = pts[:, :3].astype(np.float64)
    kp = _cross_const(k, xyz)  # elementwise, not BLAS: (N, 3) @ (3, 3) threads badly on a busy machine
    moved = xyz + np.sin(th)[:, None] * kp + (1.0 - np.cos(th))[:, None] * _cross_const(k, kp)
    a, b = _series(th)
    K = _hat(k)
    kv, kkv = K @ v, K @ (K @ v)  # v is constant: the translation is v dt + a k x (v dt) + b k x k x (v dt)
    moved += dt[:, None] * (v + a[:, None] * kv + b[:, None] * kkv)
    out = pts.copy()
    out[:, :3] = moved.astype(pts.dtype, copy=False)
    return out


def scan_to_image_transform(
    T_cam_lidar: np.ndarray, velocity: Velocity, t_scan_ns: int, t_image_ns: int
) -> np.ndarray:
    """``camera(t_image) <- lidar(t_scan)`` from static extrinsics and a constant twist (no TF).

    What tf2's ``lookup_transform_full(camera, t_image, lidar, t_scan, fixed)`` gives when odometry TF
    exists: the LiDAR frame at ``t_scan`` seen from the LiDAR at ``t_image``, then the extrinsics.
    """
    return np.asarray(T_cam_lidar, np.float64) @ motion_over(velocity, (t_scan_ns - t_image_ns) * 1e-9)


def compensate(
    points: np.ndarray,
    point_time_ns: np.ndarray | None,
    velocity: Velocity | None,
) -> tuple[np.ndarray, bool]:
    """Deskew a scan to its stamp when it has per-point times and a velocity; ``(points, deskewed)``."""
    if point_time_ns is None or velocity is None:
        return points, False
    return deskew(points, np.asarray(point_time_ns, np.float64) * 1e-9, velocity), True


def status(mode: str, fixed_frame: str = "", deskewed: bool = False, detail: str = "") -> str:
    """Diagnostics text: ``motion compensation: tf (odom), deskew on`` / ``no motion compensation``."""
    if mode in ("", "off", "none"):
        return STATUS_NONE + (f" ({detail})" if detail else "")
    where = f"{mode} ({fixed_frame})" if fixed_frame else mode
    text = f"motion compensation: {where}, deskew {'on' if deskewed else 'off'}"
    return text + (f" ({detail})" if detail else "")


# ---------------------------------------------------------------------------------------------- times
def normalise_point_times(
    values: np.ndarray, stamp_ns: int, field: str = "time", max_sweep_s: float = MAX_SWEEP_S
) -> np.ndarray:
    """Per-point times of any common driver -> int64 ns relative to the message stamp ``stamp_ns``.

    The unit follows the field's type (the drivers agree on this): integer fields are nanoseconds
    (Ouster ``t`` uint32 ns since the scan's first column; Livox ``offset_time`` uint32 ns since the
    frame's time base; ``timestamp`` uint64 ns absolute in some drivers), floating fields are seconds
    (Velodyne ``time`` float32 s relative to the header stamp; Hesai ``timestamp`` and RoboSense
    ``timestamp`` float64 s absolute, epoch), except floating values beyond 1e15, which are epoch
    nanoseconds (livox_ros_driver2 ``timestamp`` float64). Absolute vs relative is told by magnitude: more
    than ~11.6 days (1e6 s / 1e15 ns) is an epoch stamp and the message stamp is subtracted. Raises
    :class:`MotionError` for times a sweep cannot have (non-finite, absolute float32, span > ``max_sweep_s``).
    """
    v = np.asarray(values)
    if v.size == 0:
        return np.zeros(0, np.int64)
    if v.dtype.kind in "iu":
        rel = v.astype(np.int64)  # uint64 epoch ns fit int64 until 2262
        if int(np.max(rel)) > _NS_ABSOLUTE:
            rel = rel - np.int64(stamp_ns)
    elif v.dtype.kind == "f":
        if not np.isfinite(v).all():
            raise MotionError(f"per-point time field {field!r} has non-finite values")
        peak = float(np.max(np.abs(v)))
        if peak > _S_IS_NS and v.dtype.itemsize == 8:
            rel = np.rint(v - float(stamp_ns)).astype(np.int64)  # float64 epoch ns: ~0.3 us resolution
        elif peak > _S_ABSOLUTE:
            if v.dtype.itemsize < 8:
                raise MotionError(
                    f"per-point time field {field!r} holds absolute seconds in {v.dtype} "
                    "(~100 s resolution): cannot time a sweep"
                )
            sec, frac = divmod(int(stamp_ns), 1_000_000_000)
            rel = np.rint(((v.astype(np.float64) - sec) - frac * 1e-9) * 1e9).astype(np.int64)
        else:
            rel = np.rint(v.astype(np.float64) * 1e9).astype(np.int64)
    else:
        raise MotionError(f"per-point time field {field!r} has non-numeric type {v.dtype}")
    span_s = (int(rel.max()) - int(rel.min())) * 1e-9
    if span_s > max_sweep_s:
        raise MotionError(
            f"per-point time field {field!r} spans {span_s:.3f} s (> {max_sweep_s} s for one sweep): "
            "wrong unit or not per-point times"
        )
    if max(abs(int(rel.max())), abs(int(rel.min()))) * 1e-9 > 2 * max_sweep_s:
        raise MotionError(
            f"per-point time field {field!r} is {rel.min() * 1e-9:.3f} .. {rel.max() * 1e-9:.3f} s from "
            "the message stamp: not times of this sweep"
        )
    return rel
