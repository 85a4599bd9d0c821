"""The node reads CameraInfo as image_geometry does (real processes): with ``camera_model: rectified`` a
CameraInfo whose K/D describe the raw image and P the rectified one projects the scan with P, and
``depth/camera_info`` describes the published (rectified) depth image; with the default ``auto`` on a raw
``image`` topic the same message projects with K + D, and a 12-bit mono16 image is scaled by its bit depth."""

from __future__ import annotations

import time

import cv2
import node_scene as scene
import numpy as np
import pytest
from node_io import CAMERA_FRAME, depth_array, start_node, stop_node

pytestmark = pytest.mark.ros

from sensor_msgs.msg import CameraInfo  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from depth_nodes.core.projection import scan_to_depth  # noqa: E402
from depth_nodes.msgs.camera_info import camera_info_to_model  # noqa: E402
from depth_nodes.ros import conversions as conv  # noqa: E402

K_RAW = np.array([[214.0, 0.0, 166.0], [0.0, 213.0, 45.0], [0.0, 0.0, 1.0]])
D_RAW = [-0.25, 0.08, 0.001, -0.0005, 0.0]
R_RECT = cv2.Rodrigues(np.array([0.004, -0.006, 0.002]))[0]
P_RECT = np.hstack([scene.K, np.zeros((3, 1))])  # the rectified image is the scene's pinhole camera


def calibration(stamp) -> CameraInfo:
    return CameraInfo(
        header=Header(stamp=stamp, frame_id=CAMERA_FRAME), width=scene.WIDTH, height=scene.HEIGHT,
        distortion_model="plumb_bob", d=D_RAW, k=K_RAW.reshape(-1).tolist(), r=R_RECT.reshape(-1).tolist(),
        p=P_RECT.reshape(-1).tolist(),
    )  # fmt: skip


def first_frame(client, sender, tries: int = 8):
    """Send frames with the calibration above until one is published; ``(stamp, depth msg, info msg)``."""
    sender.info = lambda stamp, camera=None: calibration(stamp)
    for _ in range(tries):
        stamp = sender.send()
        try:
            depth = client.wait_stamp("depth/image_rect", stamp, timeout=4.0)
            info = client.wait_stamp("depth/camera_info", stamp, timeout=2.0)
        except TimeoutError:
            time.sleep(0.1)
            continue
        return stamp, depth, info
    raise AssertionError(f"no depth published: {client.latest_diagnostics()}")


def test_rectified_camera_info_projects_with_p_and_publishes_the_rectified_model() -> None:
    proc, client, sender = start_node({"camera_model": "rectified", "keep_lidar_returns": True})
    try:
        _, depth_msg, info = first_frame(client, sender)
        depth = depth_array(depth_msg)
        hit = sender.sparse > 0  # where P (= the scene camera) puts each return, with its exact depth
        assert np.abs(depth[hit] - sender.sparse[hit]).max() < 0.01
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), scene.K)
        np.testing.assert_allclose(np.reshape(info.p, (3, 4)), P_RECT)
        np.testing.assert_allclose(np.reshape(info.r, (3, 3)), np.eye(3))
        assert list(info.d) == [0.0] * 5 and info.header.frame_id == CAMERA_FRAME
        client.wait_for(lambda: client.latest_diagnostics().get("camera_model") == "rectified", 5.0, "diag")
    finally:
        stop_node(proc, client)


def test_auto_on_a_raw_topic_projects_with_k_and_d() -> None:
    proc, client, sender = start_node({"keep_lidar_returns": True})  # camera_model: auto (the default)
    try:
        _, depth_msg, info = first_frame(client, sender)
        depth = depth_array(depth_msg)
        raw = camera_info_to_model(calibration(None), "raw")
        expected = scan_to_depth(sender.points, scene.T_CAM_LIDAR, raw).depth
        at = expected > 0
        assert at.sum() > 500
        assert (
            np.nanmedian(np.abs(depth[at] - expected[at])) < 0.01
        )  # LiDAR returns kept where K + D put them
        hit = sender.sparse > 0
        assert np.mean(np.abs(depth[hit] - sender.sparse[hit]) < 0.01) < 0.9  # not where P would
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), K_RAW)  # raw: the calibration unchanged
        np.testing.assert_allclose(list(info.d), D_RAW)
        client.wait_for(lambda: client.latest_diagnostics().get("camera_model") == "raw", 5.0, "diag")
        # A 12-bit mono16 camera: the cloud's colours are the image scaled by its detected bit depth
        grey12 = sender.rgb[..., 0].astype(np.uint16) * 16  # <= 3520: detected as 12 bits
        mono16 = conv.numpy_to_image(grey12, "mono16", Header(frame_id=CAMERA_FRAME))
        sender.image = lambda stamp, rgb=None: _stamped(mono16, stamp)
        stamp, _, _ = first_frame(client, sender)
        cloud = client.wait_stamp("depth/points", stamp)
        rgb = conv.unpack_rgb(conv.pointcloud2_view(cloud)["rgb"].reshape(-1)).reshape(
            scene.HEIGHT, scene.WIDTH, 3
        )
        np.testing.assert_array_equal(rgb[..., 1], np.round(grey12 * 255.0 / 4095).astype(np.uint8))
    finally:
        stop_node(proc, client)


def _stamped(msg, stamp):
    msg.header.stamp = stamp
    return msg
