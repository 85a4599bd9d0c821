"""Messages of the test scene (:mod:`node_scene`) and a running node + client pair for the ROS tests."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import node_scene as scene
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from std_msgs.msg import Header  # noqa: E402

from depth_nodes.msgs.image import image_to_depth  # noqa: E402
from depth_nodes.ros.builders.camera_info import model_to_camera_info  # noqa: E402
from depth_nodes.ros.builders.cloud import xyzrgb_to_pointcloud2  # noqa: E402
from depth_nodes.ros.builders.image import numpy_to_image  # noqa: E402
from depth_nodes.ros.builders.stamp import ns_to_stamp  # noqa: E402
from depth_nodes.ros.node_main import shm_profile_path as use_shm_profile_path  # noqa: E402
from depth_nodes.ros.tools.node_harness import NodeClient, NodeProcess  # noqa: E402

CAMERA_FRAME = "camera_optical"
LIDAR_FRAME = "lidar"

#: Parameters the ROS tests run the node with (reliable inputs: the tests count every frame).
TEST_PARAMS = {
    "lidar_to_camera_xyz": scene.LIDAR_XYZ,
    "lidar_to_camera_quat_xyzw": scene.LIDAR_QUAT_XYZW,
    "lidar_frame": LIDAR_FRAME,
    "image_qos_reliability": "reliable",
    "points_qos_reliability": "reliable",
    "camera_info_qos_reliability": "reliable",
    "image_qos_depth": 10,
    "points_qos_depth": 10,
    "min_lidar_points": 100,
    "mode_hysteresis_frames": 3,
    "diagnostics_period_s": 0.2,
    "cloud_organized": True,
    "cloud_decimation": 1,
    "max_lidar_age_s": 0.15,
    "max_image_age_s": 0.5,
    "max_future_stamp_s": 2.0,
}


def ros_env() -> dict:
    """This process's environment with DDS kept on loopback; ROS_DOMAIN_ID from the caller, else one picked
    from this process id (100..199) so that concurrent test runs on one machine do not hear each other.

    Both ends use the shipped Fast DDS profile (64 MB shared-memory segment): with Fast DDS's default
    512 KB segment, reliable ~100 KB images are lost once the writer's history fills the segment and
    come back only with the next heartbeat, 3 s later (measured here; see docs/ros_interface.md).
    """
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(use_shm_profile_path()))
    return dict(os.environ)


class SceneSender:
    """Publishes scene frames through a :class:`NodeClient` with wall-clock stamps."""

    def __init__(self, client: NodeClient) -> None:
        self.client = client
        self.camera = scene.camera()
        self.rgb = scene.rgb_image()
        self.points, sparse_true = scene.lidar_scan()
        self.sparse = scene.projected_returns(self.points, sparse_true)

    def info(self, stamp, camera=None):
        return model_to_camera_info(camera or self.camera, Header(stamp=stamp, frame_id=CAMERA_FRAME))

    def image(self, stamp, rgb=None):
        return numpy_to_image(
            self.rgb if rgb is None else rgb, "rgb8", Header(stamp=stamp, frame_id=CAMERA_FRAME)
        )

    def cloud(self, stamp, points=None, frame_id: str = LIDAR_FRAME):
        pts = self.points if points is None else points
        return xyzrgb_to_pointcloud2(pts, None, Header(stamp=stamp, frame_id=frame_id), organized=False)

    def send(self, image: bool = True, points: bool = True, stamp_ns: int | None = None) -> int:
        """One frame (points, camera_info, image as asked); returns its stamp in ns."""
        stamp_ns = time.time_ns() if stamp_ns is None else stamp_ns
        stamp = ns_to_stamp(stamp_ns)
        if points:
            self.client.points_pub.publish(self.cloud(stamp))
        if image:
            self.client.info_pub.publish(self.info(stamp))
            self.client.image_pub.publish(self.image(stamp))
        return stamp_ns


def start_node(params: dict | None = None, input_depth: int = 5, namespace: str = "", outputs=None):
    """``(NodeProcess, NodeClient, SceneSender)`` matched and ready; caller stops them. ``outputs``: the
    topics the client subscribes to (default: the node harness's ``OUTPUTS``)."""
    env = ros_env()
    ns_args = ["-r", f"__ns:={namespace}"] if namespace else []
    proc = NodeProcess({**TEST_PARAMS, **(params or {})}, env=env, extra_ros_args=ns_args).start()
    client = None
    try:
        extra = {} if outputs is None else {"outputs": tuple(outputs)}
        client = NodeClient(input_depth=input_depth, namespace=namespace, **extra)
        compressed = (params or {}).get("use_compressed_image", False)
        client.wait_matched(
            30.0, inputs=("camera_info", "points") if compressed else ("image", "camera_info", "points")
        )
    except BaseException as exc:
        if client is not None:
            client.close()
        proc.stop()
        raise RuntimeError(f"{exc}\nnode output:\n{proc.output()[-3000:]}") from exc
    return proc, client, SceneSender(client)


def depth_array(msg) -> np.ndarray:
    return image_to_depth(msg)


def stop_node(proc, client) -> None:
    """Close the client and stop the node; the node must exit cleanly (code 0, no traceback)."""
    client.close()
    code = proc.stop()
    out = proc.output()
    proc.cleanup()
    assert code == 0 and "Traceback" not in out, out[-4000:]


@contextmanager
def running_node(params: dict | None = None, **kw) -> Iterator[tuple]:
    """:func:`start_node` ... :func:`stop_node` around a block (a module fixture's body): yields
    ``(NodeProcess, NodeClient, SceneSender)``; the node must exit cleanly at the end."""
    proc, client, sender = start_node(params, **kw)
    try:
        yield proc, client, sender
    finally:
        stop_node(proc, client)


def feed_until(client, feed, pred, timeout: float = 15.0, period_s: float = 0.1) -> dict:
    """Call ``feed()`` every ``period_s`` until the latest diagnostics satisfy ``pred``; returns them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if feed is not None:
            feed()
        time.sleep(period_s)  # pacing of the inputs (a 10 Hz sensor), not a wait for the node
        d = client.latest_diagnostics()
        if d and pred(d):
            return d
    raise AssertionError(f"diagnostics never got there; last: {client.latest_diagnostics()}")
