"""The shipped defaults are what is tested: the node exactly as ``launch/depth_nodes.launch.py`` starts it.

Parameter files, inline overrides, environment (Fast DDS profile) and ROS arguments are read from the
launch file (:mod:`launch_config`); QoS is the parameter files' default (best-effort subscriptions).
Full KITTI-size frames (1242 x 375) come from a best-effort publisher (a camera / LiDAR driver) and a
reliable one (``ros2 bag play``). The shipped extrinsics are identity, so the scan is published in the
camera's optical frame (with tf2 importable, as on a robot, an identity static TF is published instead).
"""

from __future__ import annotations

import os
import time

import node_scene as scene
import numpy as np
import pytest
from launch_config import launched_node
from node_io import depth_array
from std_msgs.msg import Header

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.core.transforms import transform_points
from depth_nodes.msgs.cloud import pointcloud2_to_arrays
from depth_nodes.ros.builders.camera_info import model_to_camera_info
from depth_nodes.ros.builders.cloud import xyzrgb_to_pointcloud2
from depth_nodes.ros.builders.image import numpy_to_image
from depth_nodes.ros.builders.stamp import ns_to_stamp
from depth_nodes.ros.tools.node_harness import NodeClient, NodeProcess

pytestmark = pytest.mark.ros

KITTI_K = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])
FRAME = "camera_optical"
N_FRAMES = 8  # depth images that must come back
PERIOD_S = 0.25
STREAM_TIMEOUT_S = 30.0


class KittiScene:
    def __init__(self) -> None:
        self.camera = CameraModel(1242, 375, KITTI_K)
        self.rgb = scene.rgb_image(self.camera)
        pts_lidar, _ = scene.lidar_scan(cam=self.camera)
        self.points = transform_points(scene.T_CAM_LIDAR, pts_lidar).astype(np.float32)  # optical frame
        self.sparse = scan_to_depth(self.points, np.eye(4), self.camera).depth  # what the node keeps
        self.gt = scene.dense_depth(self.camera)

    def send(self, client: NodeClient, stamp_ns: int) -> None:
        h = Header(stamp=ns_to_stamp(stamp_ns), frame_id=FRAME)
        client.points_pub.publish(xyzrgb_to_pointcloud2(self.points, None, h, organized=False))
        client.info_pub.publish(model_to_camera_info(self.camera, h))
        client.image_pub.publish(numpy_to_image(self.rgb, "rgb8", h))


def _identity_static_tf(client: NodeClient):
    """On a real Jazzy install extrinsics_source auto means tf2: publish camera <- camera (identity)."""
    try:
        import tf2_ros
        from geometry_msgs.msg import TransformStamped
    except ImportError:
        return None
    broadcaster = tf2_ros.StaticTransformBroadcaster(client.node)
    tf = TransformStamped()
    tf.header.frame_id = tf.child_frame_id = FRAME
    tf.transform.rotation.w = 1.0
    broadcaster.sendTransform(tf)
    return broadcaster


@pytest.fixture(scope="module")
def launched():
    cfg = launched_node()
    env = {**os.environ, **cfg.env}
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.update(cfg.env)  # the client runs in this process with the same transport
    proc = NodeProcess(cfg.overrides, env=env, params_files=cfg.params_files, extra_ros_args=cfg.ros_args)
    proc.start()
    yield proc, cfg
    code = proc.stop()
    out = proc.output()
    proc.cleanup()
    assert code == 0 and "Traceback" not in out, out[-4000:]


@pytest.mark.parametrize("reliable", [False, True], ids=["best_effort_driver", "reliable_bag_play"])
def test_launch_defaults_publish_correct_depth_at_kitti_size(launched, reliable) -> None:
    proc, cfg = launched
    assert cfg.params_files and all(p.name == "depth_nodes.yaml" for p in cfg.params_files)
    kitti = KittiScene()
    client = NodeClient(
        name=f"defaults_{'rel' if reliable else 'be'}",
        outputs=("depth/image_rect", "depth/points"),
        reliable_inputs=reliable,
        input_depth=10 if reliable else 5,  # ros2 bag play / a driver's sensor-data depth
    )
    try:
        tf = _identity_static_tf(client)  # noqa: F841 - kept alive while frames flow
        client.wait_matched(30.0)
        # A driver streams: send at 4 Hz until N_FRAMES depth images came back (the first frames may be lost
        # while DDS discovery completes on the node's side: best effort does not repair them).
        stamps: list[int] = []

        def published() -> set[int]:
            return set(client.stamps("depth/image_rect")) & set(stamps)

        deadline = time.monotonic() + STREAM_TIMEOUT_S
        while len(published()) < N_FRAMES and time.monotonic() < deadline:
            stamps.append(time.time_ns())
            kitti.send(client, stamps[-1])
            time.sleep(PERIOD_S)  # a 4 Hz sensor
        got = published()
        assert len(got) >= N_FRAMES, (
            f"{len(got)} of {len(stamps)} published in {STREAM_TIMEOUT_S} s\n{proc.output()[-3000:]}"
        )
        # Once frames come through, a steady stream is published nearly whole (the last few may be in flight).
        steady = stamps[min(stamps.index(s) for s in got) :]

        def steady_published() -> int:
            return len(published() & set(steady))

        try:
            client.wait_for(
                lambda: steady_published() >= 0.75 * len(steady), 10.0, "most of the steady stream"
            )
        except TimeoutError as exc:
            raise AssertionError(
                f"{steady_published()} of {len(steady)} steady-stream frames published\n{proc.output()[-3000:]}"
            ) from exc
        got = published()

        msg = client.wait_stamp("depth/image_rect", max(got))
        assert (msg.width, msg.height, msg.encoding, msg.header.frame_id) == (1242, 375, "32FC1", FRAME)
        depth = depth_array(msg)
        hit = kitti.sparse > 0
        assert hit.sum() > 10_000 and np.abs(depth[hit] - kitti.sparse[hit]).max() < 0.01
        both = np.isfinite(kitti.gt) & np.isfinite(depth)
        assert both.sum() > 0.3 * depth.size
        assert np.median(np.abs(depth[both] - kitti.gt[both]) / kitti.gt[both]) < 0.03
        cloud = client.wait_stamp("depth/points", max(got))
        xyz = pointcloud2_to_arrays(cloud).xyz
        n_valid_decimated = np.isfinite(depth[::2, ::2]).sum()  # shipped cloud_decimation 2, unorganized
        assert cloud.height == 1 and xyz.shape[0] == n_valid_decimated

        d = client.latest_diagnostics()
        assert d["mode"] == "guided" and d["estimator"] == "guided", d
    finally:
        client.close()
