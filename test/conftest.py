"""Shared fixtures: KITTI-like camera and helpers that build exact geometric scenes."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from depth_nodes.core.camera import CameraModel

# Each test session gets its own DDS domain (inherited by the node processes it starts), so parallel runs on
# one machine -- two developers, or CI beside a developer -- never hear each other's topics.
if "ROS_DOMAIN_ID" not in os.environ:
    os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))

KITTI_K = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])


@pytest.fixture
def kitti_camera() -> CameraModel:
    return CameraModel(1242, 375, KITTI_K)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
