"""Real node process without odometry (static extrinsics, no tf2: a pip install): the LiDAR memory serves only
while the picture stands still."""

from __future__ import annotations

import time

import node_scene as scene
import numpy as np
import pytest
from node_io import depth_array, feed_until, running_node

pytestmark = pytest.mark.ros

from depth_nodes.ros.builders.stamp import ns_to_stamp  # noqa: E402


def test_without_odometry_memory_only_while_the_picture_stands_still():
    """Static extrinsics (no tf2: a pip install): the memory bridges the dropout while the image is unchanged
    (the robot stands), and hands over to the stale-LiDAR path once the picture moves, saying why."""
    with running_node({"monocular_estimator": "", "extrinsics_source": "parameters"}) as (
        proc,
        client,
        sender,
    ):
        d = feed_until(client, sender.send, lambda d: d.get("published_mode") == "guided", timeout=60.0)
        assert d["memory_odometry"] == "none (memory only while still)", d
        d = feed_until(client, lambda: sender.send(points=False),
                       lambda d: d.get("mode") == "lidar_memory" and d.get("published_mode") == "lidar_memory",
                       timeout=20.0)  # fmt: skip
        assert "robot still" in d["mode_reason"], d
        t_img = sender.send(points=False)
        depth = depth_array(client.wait_stamp("depth/image_rect", t_img, timeout=10.0))
        box = scene.dense_depth() == scene.BOX["z"]
        assert np.nanmedian(depth[box]) == pytest.approx(scene.BOX["z"], abs=0.05)
        turned = np.roll(sender.rgb, 40, axis=1)  # the robot turned: the picture moved

        def moved():
            stamp = ns_to_stamp(time.time_ns())
            sender.client.info_pub.publish(sender.info(stamp))
            sender.client.image_pub.publish(sender.image(stamp, turned))

        d = feed_until(client, moved, lambda d: d.get("mode") == "monocular", timeout=20.0)
        assert (
            "memory only while the robot is still" in d["mode_reason"] and "image changed" in d["mode_reason"]
        ), d
