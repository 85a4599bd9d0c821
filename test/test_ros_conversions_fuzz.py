"""Conversions under fuzzed, duck-typed (rosbags) and rclpy-serialized messages: only ConversionError escapes."""

from __future__ import annotations

import array

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")

from ros_msg_builders import F32, XYZ, hand_cloud, header  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from depth_nodes.errors import ConversionError  # noqa: E402
from depth_nodes.msgs.cloud import pointcloud2_to_arrays, pointcloud2_view, unpack_rgb  # noqa: E402
from depth_nodes.msgs.image import ENCODINGS, image_to_depth, image_to_numpy, image_to_rgb  # noqa: E402
from depth_nodes.msgs.stamp import stamp_to_ns  # noqa: E402
from depth_nodes.ros.builders.cloud import xyzrgb_to_pointcloud2  # noqa: E402
from depth_nodes.ros.builders.image import numpy_to_image  # noqa: E402

RNG = np.random.default_rng(7)


# ---------------------------------------------------------------------------------------------- fuzz
def _mutated_image(rng: np.random.Generator) -> Image:
    enc = rng.choice([*ENCODINGS, "rgb9", "", "jpeg", "32FC9"])
    w, h = (int(v) for v in rng.integers(0, 6, 2))
    bpp = ENCODINGS[enc][0].itemsize * ENCODINGS[enc][1] if enc in ENCODINGS else 3
    step = max(w * bpp + int(rng.integers(-3, 4)), 0)
    n = max(step * h + int(rng.integers(-4, 3)), 0)
    return Image(
        width=w,
        height=h,
        encoding=str(enc),
        step=step,
        is_bigendian=int(rng.integers(0, 2)),
        data=rng.bytes(n),
    )


def _mutated_cloud(rng: np.random.Generator) -> PointCloud2:
    """A valid x, y, z, intensity cloud with 0-2 random defects (field, layout or size)."""
    w, h = (int(v) for v in rng.integers(1, 5, 2))
    layout = [*XYZ, ("intensity", 12, F32, "f")]
    msg = hand_cloud([tuple(rng.normal(size=4)) for _ in range(w * h)], layout, point_step=16, height=h)
    fields = list(msg.fields)
    for _ in range(int(rng.integers(0, 3))):
        kind = int(rng.integers(0, 8))
        f = fields[int(rng.integers(0, len(fields)))] if fields else None
        if kind == 0 and fields:
            fields.remove(f)
        elif kind == 1 and f is not None:
            f.datatype = int(rng.integers(0, 10))
        elif kind == 2 and f is not None:
            f.offset = int(rng.integers(0, 24))
        elif kind == 3 and f is not None:
            f.count = int(rng.integers(0, 4))
        elif kind == 4:
            msg.point_step = int(rng.integers(0, 24))
        elif kind == 5:
            msg.row_step = max(int(msg.row_step) + int(rng.integers(-20, 20)), 0)
        elif kind == 6:
            msg.data = array.array("B", bytes(msg.data)[: int(rng.integers(0, len(msg.data) + 8))])
        else:
            msg.is_bigendian = not msg.is_bigendian
    msg.fields = fields
    return msg


def test_fuzzed_messages_convert_or_raise_conversion_error_only():
    """Malformed messages never raise anything but ConversionError (what the node catches)."""
    rng = np.random.default_rng(2024)
    outcomes = {"ok": 0, "error": 0}
    clouds = {"ok": 0, "error": 0}
    for _ in range(1500):
        img, cloud = _mutated_image(rng), _mutated_cloud(rng)
        for convert, msg in ((image_to_numpy, img), (image_to_rgb, img), (image_to_depth, img)):
            try:
                out = convert(msg)
                assert out.shape[:2] == (msg.height, msg.width)
                outcomes["ok"] += 1
            except ConversionError:
                outcomes["error"] += 1
        try:
            c = pointcloud2_to_arrays(cloud)
            assert c.xyz.shape == (cloud.height * cloud.width, 3)
            clouds["ok"] += 1
        except ConversionError:
            clouds["error"] += 1
    assert outcomes["ok"] > 200 and outcomes["error"] > 200, outcomes
    assert clouds["ok"] > 200 and clouds["error"] > 200, clouds


def test_duck_typed_messages_with_other_data_containers():
    """rosbags messages carry numpy data, hand-made ones lists or bytes: all decode the same."""
    from types import SimpleNamespace

    for data in (
        np.arange(8, dtype=np.uint8)[:4],
        list(range(4)),
        bytes(range(4)),
        np.arange(8, dtype=np.uint8)[::2] // 2,
    ):
        msg = SimpleNamespace(height=2, width=2, encoding="mono8", step=2, is_bigendian=0, data=data)
        assert image_to_numpy(msg).tolist() == [[0, 1], [2, 3]]
    for bad in ([300, 1, 2, 3], "abcd"):
        msg = SimpleNamespace(height=2, width=2, encoding="mono8", step=2, is_bigendian=0, data=bad)
        with pytest.raises(ConversionError, match="not a byte sequence"):
            image_to_numpy(msg)
    cloud = hand_cloud([(1.0, 2.0, 3.0)], XYZ, point_step=12)
    rosbags_like = SimpleNamespace(
        **{
            k: getattr(cloud, k)
            for k in ("height", "width", "fields", "point_step", "row_step", "is_bigendian")
        },
        data=np.frombuffer(bytes(cloud.data), np.uint8),
    )
    np.testing.assert_array_equal(pointcloud2_to_arrays(rosbags_like).xyz, [[1.0, 2.0, 3.0]])


def test_filled_messages_survive_rclpy_serialization():
    """The middleware reads what set_data stored (the path publish() takes), and decodes back equal."""
    from rclpy.serialization import deserialize_message, serialize_message

    depth = RNG.uniform(0.5, 80, (6, 9)).astype(np.float32)
    depth[0, :3] = np.nan
    img = deserialize_message(serialize_message(numpy_to_image(depth, "32FC1", header())), Image)
    assert img.header.frame_id == "cam_optical" and stamp_to_ns(img.header.stamp) == 1_700_000_000_123_456_789
    np.testing.assert_array_equal(image_to_depth(img), depth)
    xyz = RNG.normal(0, 5, (3, 4, 3)).astype(np.float32)
    xyz[1, 1] = np.nan
    rgb = RNG.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    cloud = deserialize_message(serialize_message(xyzrgb_to_pointcloud2(xyz, rgb, header())), PointCloud2)
    np.testing.assert_array_equal(pointcloud2_to_arrays(cloud).xyz, xyz.reshape(-1, 3))
    np.testing.assert_array_equal(unpack_rgb(pointcloud2_view(cloud)["rgb"].reshape(-1)), rgb.reshape(-1, 3))
    # the field checks path (ROS_PYTHON_CHECK_FIELDS=1) stores the array as is
    checked = Image(check_fields=True)
    from depth_nodes.ros.builders.buffer import set_data

    set_data(checked, depth)
    assert bytes(checked.data) == depth.tobytes()
