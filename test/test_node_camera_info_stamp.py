"""CameraInfo paired by stamp in the running node (real processes), as depth_image_proc's exact sync pairs them.

The camera alternates between two calibrations of the same size (an intrinsics change every frame). Each image
must use the CameraInfo with its own stamp: its published ``depth/camera_info`` carries that P and its depth
has the LiDAR returns where that P puts them, whether the infos arrive ahead of their images or right after
them (image_transport's CameraPublisher order) -- pairing by "latest" gets both orders wrong. An info stamped
3 ms apart from its image is dropped with a counted, rate-limited reason until
``camera_info_stamp_tolerance_s`` covers it.
"""

from __future__ import annotations

import time

import node_scene as scene
import numpy as np
import pytest
from node_io import depth_array, running_node

pytestmark = pytest.mark.ros

from depth_nodes.core.camera import CameraModel  # noqa: E402
from depth_nodes.ros.builders.stamp import ns_to_stamp  # noqa: E402

#: The second calibration: same 320 x 96 size, other focal length and principal point.
K_B = np.array([[240.0, 0.0, 150.0], [0.0, 240.0, 52.0], [0.0, 0.0, 1.0]])
MS = 1_000_000


class Calibration:
    """A calibration with its scan: LiDAR points that land exactly on this camera's pixel centres."""

    def __init__(self, camera: CameraModel) -> None:
        self.camera = camera
        self.points, sparse_true = scene.lidar_scan(cam=camera)
        self.sparse = scene.projected_returns(self.points, sparse_true, camera)


@pytest.fixture(scope="module")
def node():
    # max_image_age_s: the camera never goes stale here, so no scan drives a lidar_only frame that would
    # publish a depth/camera_info with the scan's stamp and the newest calibration.
    with running_node({"keep_lidar_returns": True, "warning_period_s": 0.5, "max_image_age_s": 60.0}) as running:
        yield running


def publish(client, sender, what: str, cal: Calibration, stamp_ns: int) -> None:
    stamp = ns_to_stamp(stamp_ns)
    if what == "points":
        client.points_pub.publish(sender.cloud(stamp, cal.points))
    elif what == "info":
        client.info_pub.publish(sender.info(stamp, cal.camera))
    else:
        client.image_pub.publish(sender.image(stamp, scene.rgb_image(cal.camera)))


def check(client, cal: Calibration, stamp_ns: int) -> None:
    info = client.wait_stamp("depth/camera_info", stamp_ns, timeout=30.0)
    np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], cal.camera.K)
    depth = depth_array(client.wait_stamp("depth/image_rect", stamp_ns, timeout=30.0))
    hit = cal.sparse > 0
    assert np.mean(np.abs(depth[hit] - cal.sparse[hit]) < 0.01) > 0.99


def test_each_image_uses_the_camera_info_of_its_stamp(node) -> None:
    proc, client, sender = node
    a, b = Calibration(scene.camera()), Calibration(CameraModel(scene.WIDTH, scene.HEIGHT, K_B))
    for attempt in range(3):  # the first frames may race discovery (best-effort inputs)
        t = time.time_ns()
        try:
            # Infos ahead of their images: A at t, B at t + 40 ms, then the two images in order.
            for cal, s in ((a, t), (b, t + 40 * MS)):
                publish(client, sender, "points", cal, s)
            publish(client, sender, "info", a, t)
            publish(client, sender, "info", b, t + 40 * MS)
            publish(client, sender, "image", a, t)
            check(client, a, t)  # by "latest" it would have had B's model
            publish(client, sender, "image", b, t + 40 * MS)
            check(client, b, t + 40 * MS)
            break
        except TimeoutError:
            if attempt == 2:
                raise
    # Image first, its info right after (image_transport's CameraPublisher order), calibration changing
    # every frame: each waits for its own info.
    for i in range(6):
        cal, s = (a, b)[i % 2], time.time_ns()
        publish(client, sender, "points", cal, s)
        publish(client, sender, "image", cal, s)
        publish(client, sender, "info", cal, s)
        check(client, cal, s)
    d = client.latest_diagnostics()
    assert int(d.get("images_rejected_unmatched_camera_info", 0)) == 0, d
    assert proc.output().count("camera intrinsics changed") == 1  # both calibrations kept, each read once


def test_an_info_stamped_apart_is_dropped_and_counted_until_the_tolerance_covers_it(node) -> None:
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    proc, client, sender = node
    a = Calibration(scene.camera())
    before = int(client.latest_diagnostics().get("images_rejected_unmatched_camera_info", 0))
    stamps = []
    for _ in range(3):  # a driver stamping its CameraInfo 3 ms after the image
        s = time.time_ns()
        publish(client, sender, "points", a, s)
        publish(client, sender, "image", a, s)
        publish(client, sender, "info", a, s + 3 * MS)
        stamps.append(s)
        time.sleep(0.1)  # a 10 Hz camera
    client.wait_for(
        lambda: (
            int(client.latest_diagnostics().get("images_rejected_unmatched_camera_info", 0)) >= before + 2
        ),
        10.0,
        "the unmatched images counted",
    )
    assert not set(stamps[:2]) & set(client.stamps("depth/image_rect"))
    out = proc.output()
    assert "no CameraInfo stamped within camera_info_stamp_tolerance_s=0.0 s of the image" in out
    assert "3.000 ms away" in out

    pc = AsyncParameterClient(client.node, "depth_node")
    assert pc.wait_for_services(timeout_sec=10.0)
    future = pc.set_parameters([Parameter("camera_info_stamp_tolerance_s", value=0.005)])
    client.wait_for(lambda: future.done(), 10.0, "set_parameters")
    assert future.result().results[0].successful
    s = time.time_ns()
    publish(client, sender, "points", a, s)
    publish(client, sender, "image", a, s)
    publish(client, sender, "info", a, s + 3 * MS)
    check(client, a, s)
