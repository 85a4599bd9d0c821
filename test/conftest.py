"""Shared fixtures: KITTI-like camera and helpers that build exact geometric scenes."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from depth_nodes import resources
from depth_nodes.core.camera import CameraModel

# Each test session gets its own DDS domain (inherited by the node processes it starts), so parallel runs on
# one machine -- two developers, or CI beside a developer -- never hear each other's topics.
if "ROS_DOMAIN_ID" not in os.environ:
    os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))

# Fast DDS reads its XML profile once per process, when the process's first participant is created. Every
# in-process test client must use the shipped profile (the node's, 64 MB shared-memory segment): without this
# the first participant (e.g. a bag test's) fixed the whole session on Fast DDS's built-in 512 KB segment,
# where best-effort 1.4 MB KITTI-size images are lost (measured: test_node_defaults "0-3 of 8 published"
# after such a participant, 8 of 8 with the profile). node_io.ros_env() sets the same, but only when first called.
if "FASTRTPS_DEFAULT_PROFILES_FILE" not in os.environ:
    try:
        os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(resources.fastdds_profile("shm"))
    except resources.ConfigNotFoundError:
        pass  # no shipped config found: the ROS tests then say so themselves

KITTI_K = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])


@pytest.fixture
def kitti_camera() -> CameraModel:
    return CameraModel(1242, 375, KITTI_K)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
