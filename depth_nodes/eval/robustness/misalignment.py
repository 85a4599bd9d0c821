"""Camera-LiDAR misalignment: extrinsic rotation / translation drift and a time offset with ego-motion.

- ``rotation_drift``: ``T_cam_lidar' = R(axis, angle) @ T_cam_lidar``, the rotation about an axis through
  the camera centre (camera frame), severities 0.25 / 0.5 / 1 / 2 / 4 deg. A point at depth z on the
  optical axis moves by ``f tan(angle)`` pixels for a rotation about the camera's x or y axis.
- ``translation_drift``: the LiDAR origin shifted by 2 / 5 / 10 / 20 / 40 cm (camera frame): a point at
  depth z moves by ``f t / z`` pixels for a shift across the optical axis.
- ``time_offset``: the scan is paired with an image 10 / 25 / 50 / 100 / 200 ms away while the vehicle
  moves: each point is re-expressed in the LiDAR frame ``dt`` later, ``inv(T_world_lidar(t + dt)) @
  T_world_lidar(t) @ p``, with constant velocity between the frame's pose and the next one.
The axis / direction of a drift is drawn per frame from the seeded generator (uniform on the sphere).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from depth_nodes.core.transforms import invert, transform_points

SEVERITY_PARAMS: dict[str, list[float]] = {
    "rotation_drift": [0.25, 0.5, 1.0, 2.0, 4.0],  # deg
    "translation_drift": [0.02, 0.05, 0.10, 0.20, 0.40],  # m
    "time_offset": [0.010, 0.025, 0.050, 0.100, 0.200],  # s
}
MISALIGNMENT_FAMILIES = {"spatial": ("rotation_drift", "translation_drift"), "temporal": ("time_offset",)}


def random_unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def rotation_drift(T_cam_lidar: np.ndarray, angle_deg: float, axis_cam: np.ndarray) -> np.ndarray:
    """``T_cam_lidar`` rotated by ``angle_deg`` about ``axis_cam`` (camera frame, through its centre)."""
    axis = np.asarray(axis_cam, np.float64)
    D = np.eye(4)
    D[:3, :3] = Rotation.from_rotvec(np.deg2rad(angle_deg) * axis / np.linalg.norm(axis)).as_matrix()
    return D @ np.asarray(T_cam_lidar, np.float64)


def translation_drift(T_cam_lidar: np.ndarray, offset_cam_m: np.ndarray) -> np.ndarray:
    """``T_cam_lidar`` with its translation moved by ``offset_cam_m`` (camera frame, metres)."""
    T = np.array(T_cam_lidar, np.float64)
    T[:3, 3] += np.asarray(offset_cam_m, np.float64)
    return T


def interpolate_motion(T_a_b: np.ndarray, fraction: float) -> np.ndarray:
    """``fraction`` of the rigid motion ``T_a_b`` (rotation vector scaled, translation linear)."""
    out = np.eye(4)
    out[:3, :3] = Rotation.from_rotvec(Rotation.from_matrix(T_a_b[:3, :3]).as_rotvec() * fraction).as_matrix()
    out[:3, 3] = T_a_b[:3, 3] * fraction
    return out


def time_offset_points(
    points: np.ndarray,
    T_world_lidar_t: np.ndarray,
    T_world_lidar_next: np.ndarray,
    period_s: float,
    dt_s: float,
) -> np.ndarray:
    """The scan as measured ``dt_s`` later (constant velocity from this pose to the next, ``period_s`` apart)."""
    step = invert(T_world_lidar_t) @ T_world_lidar_next  # T_lidar(t)_lidar(t+period)
    move = interpolate_motion(step, dt_s / period_s)  # T_lidar(t)_lidar(t+dt)
    out = np.array(points, np.float32)
    out[:, :3] = transform_points(invert(move), out[:, :3])
    return out
