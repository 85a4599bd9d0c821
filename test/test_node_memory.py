"""Real node process: the LiDAR stops while odometry TF keeps moving -> mode lidar_memory keeps publishing
depth carried with the odometry, then (memory aged out, no monocular estimator) monocular publishes nothing,
diagnostics saying which; the LiDAR returns -> guided again. A fake tf2_ros on the node's PYTHONPATH
(``test/fake_tf2``) drives the robot at 0.5 m/s along the LiDAR's x axis (towards the scene's box, which stands
still: each scan sees it from where the LiDAR is at the scan's stamp)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import node_scene as scene
import numpy as np
import pytest
from node_io import CAMERA_FRAME, LIDAR_FRAME, depth_array, feed_until, start_node, stop_node

pytestmark = pytest.mark.ros

from depth_nodes.msgs.image import image_to_depth  # noqa: E402
from depth_nodes.ros.builders.stamp import ns_to_stamp  # noqa: E402

FAKE_TF2 = Path(__file__).parent / "fake_tf2"
SPEED_MPS = 0.5
#: The robot passes the scene's origin (box 8 m ahead) this long after the fixture starts.
T0_DELAY_S = 8.0
MAX_AGE_S = 3.0  # generous: reaching the mode takes 3 frames + a diagnostics tick on a loaded machine


@pytest.fixture(scope="module")
def node():
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", os.pathsep.join([str(FAKE_TF2), os.environ.get("PYTHONPATH", "")]))
    mp.setenv("FAKE_TF_SPEED_MPS", str(SPEED_MPS))
    t0_ns = time.time_ns() + int(T0_DELAY_S * 1e9)
    mp.setenv("FAKE_TF_T0_NS", str(t0_ns))
    mp.setenv("FAKE_TF_STATIC", json.dumps(scene.T_CAM_LIDAR.reshape(-1).tolist()))
    mp.setenv("FAKE_TF_CAMERA", CAMERA_FRAME)
    mp.setenv("FAKE_TF_LIDAR", LIDAR_FRAME)
    try:
        proc, client, sender = start_node(
            {"fixed_frame": "odom", "monocular_estimator": "", "memory_max_age_s": MAX_AGE_S}
        )
    finally:
        mp.undo()
    try:
        yield proc, client, sender, t0_ns
    finally:
        stop_node(proc, client)


def test_lidar_drop_memory_then_monocular_then_guided(node):
    proc, client, sender, t0_ns = node
    last_scan = {}

    def lidar_x_m(t_ns: int) -> float:
        return SPEED_MPS * (t_ns - t0_ns) * 1e-9

    def guided_feed():
        # the static world seen from where the LiDAR is at the scan's stamp
        t = time.time_ns()
        stamp = ns_to_stamp(t)
        sender.client.points_pub.publish(
            sender.cloud(stamp, sender.points - np.float32([lidar_x_m(t), 0, 0]))
        )
        sender.client.info_pub.publish(sender.info(stamp))
        sender.client.image_pub.publish(sender.image(stamp))
        last_scan["t"] = t

    d = feed_until(client, guided_feed, lambda d: d.get("mode") == "guided" and d.get("published_mode") == "guided",
                   timeout=60.0)  # fmt: skip
    assert d["memory_odometry"] == "odometry TF", d
    t_last_scan = last_scan["t"]

    # The LiDAR stops; images keep coming, TF keeps moving at 2 m/s towards the box.
    d = feed_until(client, lambda: sender.send(points=False),
                   lambda d: d.get("mode") == "lidar_memory" and d.get("published_mode") == "lidar_memory",
                   timeout=MAX_AGE_S * 0.9)  # fmt: skip
    assert int(d["level"]) == 1 and d["message"].startswith("mode lidar_memory"), d
    assert "LiDAR memory carried with odometry" in d["mode_reason"], d
    while time.time_ns() - t_last_scan < 0.8e9:  # the camera's 10 Hz while the robot drives on
        sender.send(points=False)
        time.sleep(0.1)
    t_img = sender.send(points=False)
    depth = depth_array(client.wait_stamp("depth/image_rect", t_img, timeout=10.0))
    expected = scene.BOX["z"] - lidar_x_m(t_img)  # where the box is now
    stale = scene.BOX["z"] - lidar_x_m(t_last_scan)  # where the last scan saw it
    assert expected < stale - 0.35  # the robot drove on: carrying the memory matters
    centre = depth[44:54, 152:168]  # the box's middle at any distance from 4 to 20 m
    assert np.nanmedian(centre) == pytest.approx(expected, abs=0.06), (np.nanmedian(centre), expected, stale)
    conf = image_to_depth(client.wait_stamp("depth/confidence", t_img, timeout=10.0))
    assert 0 < np.nanmax(conf) < 1.0  # carried depth is never as certain as a fresh return
    assert float(d["memory_age_s"]) > 0 and float(d["memory_travelled_m"]) > 0
    assert float(d["memory_share_px"]) > 0.3 and float(d["memory_mono_share_px"]) == 0.0

    # The memory ages out: monocular, nothing published (no monocular estimator), diagnostics say why.
    d = feed_until(client, lambda: sender.send(points=False),
                   lambda d: d.get("mode") == "monocular" and d.get("published_mode") == "none", timeout=20.0)  # fmt: skip
    assert "aged out" in d["mode_reason"] and int(d["level"]) == 2, d

    # The LiDAR returns: guided again.
    d = feed_until(client, guided_feed, lambda d: d.get("mode") == "guided" and d.get("published_mode") == "guided",
                   timeout=20.0)  # fmt: skip
    assert d["last_transition"].startswith("mode monocular -> guided"), d
    assert "Traceback" not in proc.output()
