"""The node reads CameraInfo as image_geometry does and publishes depth that depth_image_proc can use (real
processes). ``camera_model: rectified``: a CameraInfo whose K/D describe the raw image and P the rectified one
projects the scan with P, and ``depth/camera_info`` describes the published (rectified) depth image. The default
(``auto`` on a raw ``image`` topic, ``depth_geometry: rectified``) with a strongly distorted raw image: the image is
rectified onto P, ``depth/image_rect`` back-projected with image_geometry's convention (P only, D ignored) lands
on the LiDAR points, and the cloud's colours are the rectified image. ``depth_geometry: raw`` publishes the raw
geometry (K + D) on ``depth/image_raw`` with the input calibration; a 12-bit mono16 image is scaled by its bit
depth."""

from __future__ import annotations

import time

import cv2
import node_scene as scene
import numpy as np
import pytest
from node_io import CAMERA_FRAME, depth_array, start_node, stop_node

from depth_nodes.ros.tools.node_harness import OUTPUTS, RAW_DEPTH

pytestmark = pytest.mark.ros

from sensor_msgs.msg import CameraInfo  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from depth_nodes.core.projection import scan_to_depth  # noqa: E402
from depth_nodes.core.transforms import transform_points  # noqa: E402
from depth_nodes.msgs.camera_info import camera_info_to_model  # noqa: E402
from depth_nodes.msgs.cloud import pointcloud2_view, unpack_rgb  # noqa: E402
from depth_nodes.ros.builders.image import numpy_to_image  # noqa: E402

K_RAW = np.array([[214.0, 0.0, 166.0], [0.0, 213.0, 45.0], [0.0, 0.0, 1.0]])
#: Strong barrel distortion: a corner pixel sits ~59 px from where the pinhole K puts it (monotonic over the image).
D_RAW = [-0.36, 0.12, 0.001, -0.0005, 0.0]
R_RECT = cv2.Rodrigues(np.array([0.004, -0.006, 0.002]))[0]
P_RECT = np.hstack([scene.K, np.zeros((3, 1))])  # the rectified image is the scene's pinhole camera


def calibration(stamp) -> CameraInfo:
    return CameraInfo(
        header=Header(stamp=stamp, frame_id=CAMERA_FRAME), width=scene.WIDTH, height=scene.HEIGHT,
        distortion_model="plumb_bob", d=D_RAW, k=K_RAW.reshape(-1).tolist(), r=R_RECT.reshape(-1).tolist(),
        p=P_RECT.reshape(-1).tolist(),
    )  # fmt: skip


def first_frame(client, sender, tries: int = 8, topic: str = "depth/image_rect"):
    """Send frames with the calibration above until one is published; ``(stamp, depth msg, info msg)``."""
    sender.info = lambda stamp, camera=None: calibration(stamp)
    for _ in range(tries):
        stamp = sender.send()
        try:
            depth = client.wait_stamp(topic, stamp, timeout=4.0)
            info = client.wait_stamp("depth/camera_info", stamp, timeout=2.0)
        except TimeoutError:
            time.sleep(0.1)
            continue
        return stamp, depth, info
    raise AssertionError(f"no depth published: {client.latest_diagnostics()}")


def raw_image(rectified_rgb: np.ndarray) -> np.ndarray:
    """The distorted image a raw camera with this calibration sees when its rectification is ``rectified_rgb``."""
    v, u = np.mgrid[0 : scene.HEIGHT, 0 : scene.WIDTH].astype(np.float64)
    pix = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
    rect = cv2.undistortPoints(pix, K_RAW, np.array(D_RAW), None, R_RECT, P_RECT[:, :3], crit)
    mx = rect[:, 0, 0].reshape(scene.HEIGHT, scene.WIDTH).astype(np.float32)
    my = rect[:, 0, 1].reshape(scene.HEIGHT, scene.WIDTH).astype(np.float32)
    return cv2.remap(rectified_rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


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


def test_raw_camera_depth_is_rectified_onto_p_for_depth_image_proc() -> None:
    proc, client, sender = start_node(
        {"keep_lidar_returns": True}
    )  # auto, depth_geometry: rectified (defaults)
    try:
        distorted = raw_image(sender.rgb)
        sender.image = lambda stamp, rgb=None: numpy_to_image(
            distorted, "rgb8", Header(stamp=stamp, frame_id=CAMERA_FRAME)
        )
        stamp, depth_msg, info = first_frame(client, sender)
        depth = depth_array(depth_msg)
        # depth/camera_info: the rectified camera, nothing for depth_image_proc to get wrong.
        P = np.reshape(info.p, (3, 4))
        np.testing.assert_allclose(P, P_RECT)
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), P[:, :3])
        np.testing.assert_allclose(np.reshape(info.r, (3, 3)), np.eye(3))
        assert list(info.d) == [0.0] * 5 and info.header.frame_id == CAMERA_FRAME
        # Back-project the published depth as depth_image_proc / image_geometry do (P only, D ignored):
        # each return's pixel lands within 1 px / 1 % of the LiDAR point.
        pts = transform_points(scene.T_CAM_LIDAR, sender.points.astype(np.float64))
        u = (P[0, 0] * pts[:, 0] + P[0, 3]) / pts[:, 2] + P[0, 2]
        v = (P[1, 1] * pts[:, 1] + P[1, 3]) / pts[:, 2] + P[1, 2]
        ui, vi = np.rint(u).astype(int), np.rint(v).astype(int)
        assert np.hypot(u - ui, v - vi).max() < 1.0
        z = depth[vi, ui].astype(np.float64)
        back = np.stack(
            [(ui - P[0, 2] - P[0, 3]) / P[0, 0] * z, (vi - P[1, 2] - P[1, 3]) / P[1, 1] * z, z], 1
        )
        miss = np.linalg.norm(back - pts, axis=1) / pts[:, 2]
        assert len(pts) > 500 and np.mean(miss < 0.01) > 0.99, np.quantile(miss, (0.5, 0.99))
        # Raw geometry (what was published before) would put the returns elsewhere: K + D moves them.
        raw_sparse = scan_to_depth(
            sender.points, scene.T_CAM_LIDAR, camera_info_to_model(calibration(None), "raw")
        )
        hit = sender.sparse > 0
        assert np.mean(raw_sparse.depth[hit] > 0) < 0.5
        # The cloud is coloured by the rectified image (the scene), not the distorted input.
        cloud = client.wait_stamp("depth/points", stamp)
        rgb = unpack_rgb(pointcloud2_view(cloud)["rgb"].reshape(-1)).reshape(
            scene.HEIGHT, scene.WIDTH, 3
        )
        # Where the scene is uniform over 5 x 5 px (interpolation cannot blur), the colour is exact; the
        # distorted input there is off by > 2 levels in 4 % of those pixels (its content sits up to ~59 px away).
        k = np.ones((5, 5), np.uint8)
        flat = (cv2.dilate(sender.rgb, k).astype(int) - cv2.erode(sender.rgb, k).astype(int)).max(axis=2) == 0
        flat[:8], flat[-8:], flat[:, :8], flat[:, -8:] = False, False, False, False
        err = np.abs(rgb.astype(int) - sender.rgb.astype(int)).max(axis=2)[flat]
        assert flat.sum() > 5000 and err.max() <= 2, (flat.sum(), np.mean(err > 2))
        client.wait_for(lambda: client.latest_diagnostics().get("depth_geometry") == "rectified", 5.0, "diag")
        assert client.latest_diagnostics()["camera_model"] == "raw"
        assert "input images rectified onto P" in proc.output()
    finally:
        stop_node(proc, client)


def test_depth_geometry_raw_publishes_the_input_geometry_on_image_raw() -> None:
    proc, client, sender = start_node(
        {"keep_lidar_returns": True, "depth_geometry": "raw"}, outputs=(*OUTPUTS, RAW_DEPTH)
    )
    try:
        _, depth_msg, info = first_frame(client, sender, topic=RAW_DEPTH)
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
        client.wait_for(lambda: client.latest_diagnostics().get("depth_geometry") == "raw", 5.0, "diag")
        assert client.latest_diagnostics()["camera_model"] == "raw"
        assert client.stamps("depth/image_rect") == []  # one depth topic per geometry
        # A 12-bit mono16 camera: the cloud's colours are the image scaled by its detected bit depth
        grey12 = sender.rgb[..., 0].astype(np.uint16) * 16  # <= 3520: detected as 12 bits
        mono16 = numpy_to_image(grey12, "mono16", Header(frame_id=CAMERA_FRAME))
        sender.image = lambda stamp, rgb=None: _stamped(mono16, stamp)
        stamp, _, _ = first_frame(client, sender, topic=RAW_DEPTH)
        cloud = client.wait_stamp("depth/points", stamp)
        rgb = unpack_rgb(pointcloud2_view(cloud)["rgb"].reshape(-1)).reshape(
            scene.HEIGHT, scene.WIDTH, 3
        )
        np.testing.assert_array_equal(rgb[..., 1], np.round(grey12 * 255.0 / 4095).astype(np.uint8))
    finally:
        stop_node(proc, client)


def _stamped(msg, stamp):
    msg.header.stamp = stamp
    return msg
