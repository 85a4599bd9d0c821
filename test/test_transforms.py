"""Rigid transforms: quaternions, inversion, validation."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.core.transforms import (
    invert,
    matrix_to_quaternion,
    quaternion_to_matrix,
    rigid,
    transform_points,
    validate_transform,
)
from depth_nodes.errors import CalibrationError, InputShapeError, NonFiniteInputError


def test_quaternion_round_trip_and_known_rotation(rng):
    # 90 degrees about z: x axis -> y axis
    R = quaternion_to_matrix([0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)])
    np.testing.assert_allclose(R @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q *= np.sign(q[3])
        np.testing.assert_allclose(matrix_to_quaternion(quaternion_to_matrix(q)), q, atol=1e-9)


def test_invert_and_transform_points(rng):
    T = rigid(quaternion_to_matrix([0.1, -0.2, 0.3, 0.9]), [1.0, -2.0, 0.5])
    pts = rng.normal(size=(50, 3)) * 10
    back = transform_points(invert(T), transform_points(T, pts))
    np.testing.assert_allclose(back, pts, atol=1e-4)
    np.testing.assert_allclose(invert(T) @ T, np.eye(4), atol=1e-12)


def test_validation_errors():
    with pytest.raises(InputShapeError):
        validate_transform(np.eye(3))
    with pytest.raises(NonFiniteInputError):
        validate_transform(np.full((4, 4), np.nan))
    with pytest.raises(CalibrationError, match="orthonormal"):
        validate_transform(np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(CalibrationError, match="zero"):
        quaternion_to_matrix([0, 0, 0, 0])
    assert validate_transform(np.eye(4)[:3]).shape == (4, 4)
