"""Shared fixtures: KITTI-like camera and helpers that build exact geometric scenes."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.core.camera import CameraModel

KITTI_K = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])


@pytest.fixture
def kitti_camera() -> CameraModel:
    return CameraModel(1242, 375, KITTI_K)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
