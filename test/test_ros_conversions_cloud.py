"""PointCloud2 <-> numpy: hand-built (struct-packed) shuffled/padded layouts, XYZRGB clouds, error paths."""

from __future__ import annotations

import array
import struct

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")

from ros_msg_builders import F32, F64, I16, U8, U16, U32, XYZ, hand_cloud, header  # noqa: E402
from sensor_msgs.msg import PointCloud2, PointField  # noqa: E402

from depth_nodes.errors import ConversionError  # noqa: E402
from depth_nodes.msgs.cloud import pointcloud2_to_arrays, pointcloud2_view, unpack_rgb  # noqa: E402
from depth_nodes.ros.builders.cloud import xyzrgb_to_pointcloud2  # noqa: E402

RNG = np.random.default_rng(7)


# intensity first, z before x, ring, padding holes, float64 xyz, float64 time: a shuffled, padded layout.
SHUFFLED = [
    ("intensity", 0, U8, "B"),
    ("z", 4, F64, "d"),
    ("ring", 12, U16, "H"),
    ("x", 16, F64, "d"),
    ("time", 24, F64, "d"),
    ("y", 36, F64, "d"),
]
PTS = [  # (intensity, z, ring, x, time, y)
    (17, 3.5, 0, 1.0, 0.001, -2.0),
    (255, 10.25, 63, -4.5, 0.002, 0.5),
    (0, float("nan"), 5, float("nan"), 0.003, float("nan")),
    (99, 1e-3, 31, 123.0, 0.1, 7.0),
    (1, 2.0, 2, 3.0, 0.05, 4.0),
    (2, 5.0, 7, 6.0, 0.06, 8.0),
]


def expected_xyz(points):
    return np.array([(p[3], p[5], p[1]) for p in points], dtype=np.float32)


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize(("height", "row_pad"), [(1, 0), (2, 0), (2, 6), (3, 5)])
def test_cloud_shuffled_padded_float64_layout(big, height, row_pad):
    msg = hand_cloud(PTS, SHUFFLED, point_step=48, big=big, height=height, row_pad=row_pad)
    c = pointcloud2_to_arrays(msg)
    assert (c.height, c.width, c.organized, len(c)) == (height, 6 // height, height > 1, 6)
    np.testing.assert_array_equal(c.xyz, expected_xyz(PTS))  # NaN row kept, in place
    assert c.xyz.dtype == np.float32
    np.testing.assert_array_equal(c.intensity, np.float32([17, 255, 0, 99, 1, 2]))
    np.testing.assert_array_equal(c.ring, [0, 63, 5, 31, 2, 7])
    np.testing.assert_allclose(c.time, [0.001, 0.002, 0.003, 0.1, 0.05, 0.06])
    assert c.time_field == "time" and c.time.dtype == np.float64


def test_cloud_float32_int_fields_and_aliases():
    layout = [
        ("x", 0, F32, "f"),
        ("y", 4, F32, "f"),
        ("z", 8, F32, "f"),
        ("i", 12, I16, "h"),
        ("t", 16, U32, "I"),
    ]
    pts = [(1.5, 2.5, 3.5, -7, 100_000), (4.0, 5.0, 6.0, 300, 4_000_000_000)]
    c = pointcloud2_to_arrays(hand_cloud(pts, layout, point_step=24))
    np.testing.assert_array_equal(c.xyz, [[1.5, 2.5, 3.5], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(c.intensity, [-7.0, 300.0])
    assert c.ring is None and c.time_field == "t" and c.time.tolist() == [100_000.0, 4_000_000_000.0]


def test_cloud_matches_sensor_msgs_py_when_available():
    pc2 = pytest.importorskip("sensor_msgs_py.point_cloud2")
    msg = hand_cloud(PTS, SHUFFLED, point_step=48, height=2)
    ref = pc2.read_points(msg, field_names=("x", "y", "z"))
    ref_xyz = np.stack([ref["x"], ref["y"], ref["z"]], axis=-1).reshape(-1, 3).astype(np.float32)
    np.testing.assert_array_equal(pointcloud2_to_arrays(msg).xyz, ref_xyz)


def test_xyzrgb_organized_round_trip_with_nan():
    h, w = 4, 5
    xyz = RNG.normal(0, 10, (h, w, 3)).astype(np.float32)
    xyz[1, 2] = np.nan
    xyz[3, 0] = np.nan
    rgb = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    msg = xyzrgb_to_pointcloud2(xyz, rgb, header(), organized=True)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (h, w, 16, 16 * w)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, F32, 1),
        ("y", 4, F32, 1),
        ("z", 8, F32, 1),
        ("rgb", 12, F32, 1),
    ]
    assert not msg.is_dense and not msg.is_bigendian and msg.header.frame_id == "cam_optical"
    assert len(msg.data) == h * w * 16 and isinstance(msg.data, array.array)
    c = pointcloud2_to_arrays(msg)
    np.testing.assert_array_equal(c.xyz.reshape(h, w, 3), xyz)
    # packed rgb checked independently: unpack each record's 4th word with struct
    raw = bytes(msg.data)
    for idx in (0, 7, 19):
        x, y, z, packed = struct.unpack_from("<3fI", raw, 16 * idx)
        r, g, b = rgb.reshape(-1, 3)[idx].tolist()
        assert packed == (r << 16) | (g << 8) | b
    np.testing.assert_array_equal(unpack_rgb(pointcloud2_view(msg)["rgb"].reshape(-1)), rgb.reshape(-1, 3))


def test_xyzrgb_unorganized_drops_invalid_points():
    xyz = np.array([[1, 2, 3], [np.nan, 0, 1], [4, 5, np.inf], [7, 8, 9]], dtype=np.float32)
    rgb = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]], dtype=np.uint8)
    msg = xyzrgb_to_pointcloud2(xyz, rgb, header(), organized=False)
    assert (msg.height, msg.width, msg.is_dense) == (1, 2, True)
    c = pointcloud2_to_arrays(msg)
    np.testing.assert_array_equal(c.xyz, xyz[[0, 3]])
    np.testing.assert_array_equal(unpack_rgb(pointcloud2_view(msg)["rgb"].reshape(-1)), rgb[[0, 3]])
    flat = xyzrgb_to_pointcloud2(xyz.reshape(2, 2, 3), None, header(), organized=False)
    assert [f.name for f in flat.fields] == ["x", "y", "z"] and flat.point_step == 12 and flat.width == 2


def test_xyzrgb_input_errors():
    with pytest.raises(ConversionError, match="xyz must be"):
        xyzrgb_to_pointcloud2(np.zeros((4, 2)), None)
    with pytest.raises(ConversionError, match="does not match"):
        xyzrgb_to_pointcloud2(np.zeros((4, 3)), np.zeros((3, 3), np.uint8))
    with pytest.raises(ConversionError, match="must be uint8"):
        xyzrgb_to_pointcloud2(np.zeros((4, 3)), np.zeros((4, 3), np.float32))


def test_empty_cloud_is_valid():
    msg = PointCloud2(
        height=1,
        width=0,
        fields=[PointField(name=n, offset=4 * i, datatype=F32, count=1) for i, n in enumerate("xyz")],
        point_step=12,
        row_step=0,
    )
    c = pointcloud2_to_arrays(msg)
    assert c.xyz.shape == (0, 3) and c.intensity is None


def test_cloud_errors():
    good = hand_cloud([(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)], XYZ, point_step=16)
    pointcloud2_to_arrays(good)

    def variant(**changes) -> PointCloud2:
        m = hand_cloud([(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)], XYZ, point_step=16)
        for k, v in changes.items():
            setattr(m, k, v)
        return m

    no_z = variant(fields=[f for f in good.fields if f.name != "z"])
    with pytest.raises(ConversionError, match=r"missing field\(s\) z"):
        pointcloud2_to_arrays(no_z)
    bad_type = variant(fields=[*good.fields[:2], PointField(name="z", offset=8, datatype=9, count=1)])
    with pytest.raises(ConversionError, match="unknown PointField datatype 9"):
        pointcloud2_to_arrays(bad_type)
    with pytest.raises(ConversionError, match="data has 31 bytes, expected"):
        pointcloud2_to_arrays(variant(data=array.array("B", bytes(good.data)[:31])))
    with pytest.raises(ConversionError, match="data has 33 bytes"):
        pointcloud2_to_arrays(variant(data=array.array("B", bytes(good.data) + b"\0")))
    with pytest.raises(ConversionError, match="expected row_step"):
        pointcloud2_to_arrays(variant(width=3, row_step=48))
    with pytest.raises(ConversionError, match="row_step 20 is smaller"):
        pointcloud2_to_arrays(variant(row_step=20))
    with pytest.raises(ConversionError, match="beyond point_step 16"):
        pointcloud2_to_arrays(
            variant(fields=[*good.fields[:2], PointField(name="z", offset=14, datatype=F32)])
        )
    with pytest.raises(ConversionError, match="appears twice"):
        pointcloud2_to_arrays(variant(fields=[*good.fields, PointField(name="x", offset=12, datatype=F32)]))
    with pytest.raises(ConversionError, match="point_step is 0"):
        pointcloud2_to_arrays(variant(point_step=0))
