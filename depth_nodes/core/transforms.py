"""Rigid transforms as 4x4 homogeneous matrices (``T_a_b`` maps points from frame b to frame a)."""

from __future__ import annotations

import numpy as np

from depth_nodes.errors import CalibrationError, InputShapeError, NonFiniteInputError


def rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Build a 4x4 float64 transform from a 3x3 rotation and a 3-vector translation."""
    rotation = np.asarray(rotation, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64).reshape(-1)
    if rotation.shape != (3, 3) or translation.shape != (3,):
        raise InputShapeError(
            f"rigid() needs a 3x3 rotation and a 3-vector, got {rotation.shape} and {translation.shape}"
        )
    T = np.eye(4)
    T[:3, :3] = rotation
    T[:3, 3] = translation
    return validate_transform(T)


def validate_transform(T: np.ndarray, name: str = "transform") -> np.ndarray:
    """Check that ``T`` is a finite 4x4 rigid transform (orthonormal rotation, last row 0 0 0 1)."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape == (3, 4):
        T = np.vstack([T, [0.0, 0.0, 0.0, 1.0]])
    if T.shape != (4, 4):
        raise InputShapeError(f"{name} must be 4x4 (or 3x4), got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise NonFiniteInputError(f"{name} contains NaN or inf")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
        raise CalibrationError(f"{name} rotation is not orthonormal with det +1 (det={np.linalg.det(R):.4f})")
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0]):
        raise CalibrationError(f"{name} last row must be [0 0 0 1], got {T[3]}")
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform (exact, no general matrix inverse)."""
    T = np.asarray(T, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def quaternion_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrix from a quaternion in ROS order (x, y, z, w); normalises, rejects zero norm."""
    q = np.asarray(q_xyzw, dtype=np.float64).reshape(-1)
    if q.shape != (4,):
        raise InputShapeError(f"quaternion must have 4 elements (x, y, z, w), got {q.shape}")
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise CalibrationError(f"quaternion {q.tolist()} has zero or non-finite norm")
    x, y, z, w = q / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Quaternion (x, y, z, w) of a rotation matrix (Shepperd's method, w >= 0)."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = np.asarray(q)
    return q if q[3] >= 0 else -q


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply ``T`` (4x4) to N x 3 points; returns float32 N x 3."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise InputShapeError(f"points must be N x 3 (or N x >=3), got shape {pts.shape}")
    T = np.asarray(T, dtype=np.float32)
    xyz = pts[:, :3].astype(np.float32, copy=False)
    return xyz @ T[:3, :3].T + T[:3, 3]
