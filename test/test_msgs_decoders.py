"""One decoder per message kind: ROS-free (importable without rclpy or message packages) and duck-typed,
so rclpy messages and the ``rosbags`` objects the bag tools read decode the same."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from depth_nodes.errors import ConversionError
from depth_nodes.msgs.camera_info import camera_info_to_model
from depth_nodes.msgs.cloud import pointcloud2_to_arrays
from depth_nodes.msgs.image import image_to_depth, image_to_rgb

PACKAGE = Path(__file__).resolve().parents[1] / "depth_nodes"
ROS_MODULES = (
    "rclpy",
    "sensor_msgs",
    "std_msgs",
    "builtin_interfaces",
    "cv_bridge",
    "geometry_msgs",
    "tf2_ros",
)

BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked for the test: " + name)
sys.meta_path.insert(0, Block())
import depth_nodes.msgs.image, depth_nodes.msgs.cloud, depth_nodes.msgs.camera_info, depth_nodes.msgs.stamp
import depth_nodes.data.rosbag_io, depth_nodes.data.kitti2bag, depth_nodes.eval.demo_report, depth_nodes.eval.demo_bags
print("ok", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


def test_decoders_and_bag_tools_import_without_ros():
    code = BLOCKER.format(blocked=set(ROS_MODULES))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok []"


def test_nothing_outside_ros_imports_rclpy_or_message_packages():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "ros":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(PACKAGE)}: {n}" for n in names if n.split(".")[0] in ROS_MODULES
            ]
            if isinstance(node, ast.ImportFrom) and node.module == "depth_nodes.ros":
                offenders.append(f"{path.relative_to(PACKAGE)}: depth_nodes.ros")
    assert not offenders


# ---------------------------------------------------------------------------------------------- rosbags
rosbags = pytest.importorskip("rosbags")


def _types():
    from depth_nodes.data.rosbag_io import typestore

    return typestore().types


def test_rosbags_16uc1_depth_zeros_are_nan_and_step_padding_is_honoured():
    T = _types()
    mm = np.array([[0, 1500, 65535], [250, 0, 1]], dtype=np.uint16)
    rows = np.zeros((2, 8), np.uint8)  # 6 bytes of pixels + 2 bytes of padding per row
    rows[:, :6] = mm.view(np.uint8).reshape(2, 6)
    rows[:, 6:] = 0xAB
    msg = T["sensor_msgs/msg/Image"](
        header=T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c"
        ),
        height=2,
        width=3,
        encoding="16UC1",
        is_bigendian=0,
        step=8,
        data=rows.reshape(-1),
    )
    depth = image_to_depth(msg)
    expected = mm.astype(np.float32) / 1000
    expected[mm == 0] = np.nan
    np.testing.assert_allclose(depth, expected, rtol=1e-6)
    assert np.isnan(depth[0, 0]) and np.isnan(depth[1, 1])
    with pytest.raises(ConversionError, match="not a colour image"):
        image_to_rgb(
            msg.__class__(**{**msg.__dict__, "encoding": "32FC1", "step": 12, "data": np.zeros(24, np.uint8)})
        )


def test_rosbags_cloud_with_row_step_padding_decodes_every_row():
    T = _types()
    pts = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    row = np.zeros((2, 3 * 12 + 4), np.uint8)  # 4 padding bytes after each row
    row[:, :36] = pts.reshape(2, 9).view(np.uint8)
    row[:, 36:] = 0xFF
    F = T["sensor_msgs/msg/PointField"]
    fields = [F(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")]
    msg = T["sensor_msgs/msg/PointCloud2"](
        header=T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="l"
        ),
        height=2,
        width=3,
        fields=fields,
        is_bigendian=False,
        point_step=12,
        row_step=40,
        data=row.reshape(-1),
        is_dense=True,
    )
    np.testing.assert_array_equal(pointcloud2_to_arrays(msg).xyz, pts.reshape(-1, 3))


def test_rosbags_camera_info_uses_p_for_a_rectified_image():
    from depth_nodes.data.rosbag_io import camera_info_msg

    K = np.array([[700.0, 0, 600], [0, 700, 180], [0, 0, 1]])
    P = np.array([[690.0, 0, 610, -690 * 0.54], [0, 690, 175, 0], [0, 0, 1, 0]])
    msg = camera_info_msg(K, 1200, 360, 0, "cam", P=P)
    cam = camera_info_to_model(msg)  # D = 0: auto reads it as rectified, P projects
    assert cam.fx == 690 and cam.cx == 610
    np.testing.assert_allclose(cam.T_proj_frame[:3, 3], [-0.54, 0, 0])
