"""The node brings scans to the image's time with TF odometry (a fake tf2_ros on the node's PYTHONPATH)."""

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

from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from depth_nodes.ros.builders.stamp import ns_to_stamp  # noqa: E402

FAKE_TF2 = Path(__file__).parent / "fake_tf2"
SPEED_MPS = 10.0


def timed_cloud(points: np.ndarray, time_s: np.ndarray, stamp_ns: int) -> PointCloud2:
    """x, y, z, time float32 (Velodyne layout: time in s relative to the header stamp)."""
    data = np.column_stack([points, time_s]).astype(np.float32)
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate(("x", "y", "z", "time"))]  # fmt: skip
    sec, nsec = divmod(stamp_ns, 10**9)
    return PointCloud2(
        header=Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=LIDAR_FRAME), height=1,
        width=len(data), fields=fields, is_bigendian=False, point_step=16, row_step=16 * len(data),
        data=data.tobytes(), is_dense=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def moving_node(tmp_path_factory):
    log = tmp_path_factory.mktemp("tf") / "lookups.log"
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", os.pathsep.join([str(FAKE_TF2), os.environ.get("PYTHONPATH", "")]))
    mp.setenv("FAKE_TF_SPEED_MPS", str(SPEED_MPS))
    t0 = time.time_ns()
    mp.setenv("FAKE_TF_T0_NS", str(t0))
    mp.setenv("FAKE_TF_STATIC", json.dumps(scene.T_CAM_LIDAR.reshape(-1).tolist()))
    mp.setenv("FAKE_TF_CAMERA", CAMERA_FRAME)
    mp.setenv("FAKE_TF_LIDAR", LIDAR_FRAME)
    mp.setenv("FAKE_TF_LOG", str(log))
    try:
        proc, client, sender = start_node({"fixed_frame": "odom"})
    finally:
        mp.undo()
    try:
        yield proc, client, sender, log
    finally:
        stop_node(proc, client)


def box_depth(client, stamp_ns: int) -> float:
    depth = depth_array(client.wait_stamp("depth/image_rect", stamp_ns, timeout=10.0))
    box = scene.dense_depth() == scene.BOX["z"]
    return float(np.nanmedian(depth[box]))


def send(sender, scan_msg, stamp_ns: int) -> None:
    sender.client.points_pub.publish(scan_msg)
    stamp = ns_to_stamp(stamp_ns)
    sender.client.info_pub.publish(sender.info(stamp))
    sender.client.image_pub.publish(sender.image(stamp))


def test_scan_50ms_before_the_image_lands_on_the_image(moving_node):
    proc, client, sender, log = moving_node
    assert "extrinsics source: tf2" in proc.output() and "motion compensation: tf" in proc.output()
    got = None
    for _ in range(4):  # the first frames may race discovery
        t_img = time.time_ns()
        t_scan = t_img - 50_000_000
        # At 10 m/s along x the LiDAR was 0.5 m behind when it scanned: everything 0.5 m farther.
        shifted = sender.points + np.float32([SPEED_MPS * 0.05, 0.0, 0.0])
        send(sender, sender.cloud(ns_to_stamp(t_scan), shifted), t_img)
        try:
            got = box_depth(client, t_img)
            break
        except TimeoutError:
            continue
    assert got is not None, proc.output()[-3000:]
    assert abs(got - scene.BOX["z"]) < 0.1, got  # uncompensated: 8.5 m
    calls = [
        line.split() for line in log.read_text().splitlines() if line.startswith("lookup_transform_full")
    ]
    assert ["lookup_transform_full", CAMERA_FRAME, str(t_img), LIDAR_FRAME, str(t_scan), "odom"] in calls
    d = feed_until(client, None, lambda d: "deskew off" in d.get("motion_compensation", ""))
    assert d["motion_compensation"] == "motion compensation: tf (odom), deskew off"


def test_skewed_sweep_with_point_times_is_deskewed(moving_node):
    proc, client, sender, _ = moving_node
    rng = np.random.default_rng(3)
    got = None
    for _ in range(4):
        t_img = time.time_ns()
        t_scan = t_img - 30_000_000
        tau = rng.uniform(-0.05, 0.05, len(sender.points))  # each point fired at t_scan + tau
        skewed = sender.points.copy()
        skewed[:, 0] += SPEED_MPS * (t_img * 1e-9 - (t_scan * 1e-9 + tau))
        send(sender, timed_cloud(skewed, tau, t_scan), t_img)
        try:
            got = box_depth(client, t_img)
            break
        except TimeoutError:
            continue
    assert got is not None, proc.output()[-3000:]
    assert abs(got - scene.BOX["z"]) < 0.1, got
    d = feed_until(client, None, lambda d: "deskew on" in d.get("motion_compensation", ""))
    assert d["motion_compensation"] == "motion compensation: tf (odom), deskew on"
    assert float(d["stage_motion_p50_ms"]) > 0  # the compensation's time is reported with the stages
