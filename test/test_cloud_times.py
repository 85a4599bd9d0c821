"""Per-point time fields of the common LiDAR drivers in PointCloud2 -> int64 ns relative to the stamp."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 message packages) not importable")

from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from depth_nodes.msgs.cloud import POINTFIELD_DTYPES, pointcloud2_to_arrays  # noqa: E402

STAMP_NS = 1_700_000_000_250_000_000
_TYPES = {v: k for k, v in POINTFIELD_DTYPES.items()}


def cloud(fields: list[tuple[str, str]], columns: dict[str, np.ndarray], big: bool = False) -> PointCloud2:
    """A PointCloud2 with the drivers' field layout (numpy packs it; offsets in declaration order)."""
    order = ">" if big else "<"
    dt = np.dtype([(n, order + t) for n, t in fields])
    n = len(next(iter(columns.values())))
    rec = np.zeros(n, dt)
    for name, col in columns.items():
        rec[name] = col
    pf = [PointField(name=name, offset=dt.fields[name][1], datatype=_TYPES[t], count=1) for name, t in fields]
    sec, nsec = divmod(STAMP_NS, 1_000_000_000)
    return PointCloud2(
        header=Header(stamp=Time(sec=sec, nanosec=nsec), frame_id="lidar"),
        height=1, width=n, fields=pf, is_bigendian=big, point_step=dt.itemsize,
        row_step=dt.itemsize * n, data=rec.tobytes(), is_dense=True,
    )  # fmt: skip


XYZ = [("x", "f4"), ("y", "f4"), ("z", "f4")]
N = 5
STAMP_S = STAMP_NS * 1e-9
#: (driver, extra fields, time column, expected ns relative to the header stamp)
DRIVERS = [
    ("ouster (t uint32 ns from the first column)",
     [("intensity", "f4"), ("t", "u4"), ("reflectivity", "u2"), ("ring", "u2"), ("ambient", "u2"), ("range", "u4")],
     ("t", np.array([0, 24_400, 49_000_000, 98_000_000, 99_951_000], np.uint32)),
     [0, 24_400, 49_000_000, 98_000_000, 99_951_000]),
    ("velodyne (time float32 s relative, negative: header at the last packet)",
     [("intensity", "f4"), ("ring", "u2"), ("time", "f4")],
     ("time", np.array([-0.1, -0.075, -0.05, -0.0001, 0.0], np.float32)),
     [-100_000_000, -75_000_000, -50_000_000, -100_000, 0]),
    ("hesai (timestamp float64 epoch s)",
     [("intensity", "f4"), ("timestamp", "f8"), ("ring", "u2")],
     ("timestamp", STAMP_S + np.array([0.0, 0.01, 0.02, 0.05, 0.0999])),
     [0, 10_000_000, 20_000_000, 50_000_000, 99_900_000]),
    ("robosense (timestamp float64 epoch s, header at the sweep end)",
     [("intensity", "f4"), ("ring", "u2"), ("timestamp", "f8")],
     ("timestamp", STAMP_S - np.array([0.1, 0.08, 0.05, 0.01, 0.0])),
     [-100_000_000, -80_000_000, -50_000_000, -10_000_000, 0]),
    ("livox ros driver (offset_time uint32 ns from the time base)",
     [("intensity", "f4"), ("tag", "u1"), ("line", "u1"), ("offset_time", "u4")],
     ("offset_time", np.array([0, 1_000, 2_000_000, 50_000_000, 99_000_000], np.uint32)),
     [0, 1_000, 2_000_000, 50_000_000, 99_000_000]),
    ("livox_ros_driver2 (timestamp float64 epoch ns)",
     [("intensity", "f4"), ("tag", "u1"), ("line", "u1"), ("timestamp", "f8")],
     ("timestamp", float(STAMP_NS) + np.array([0.0, 1e6, 2e6, 5e7, 9.9e7])),
     [0, 1_000_000, 2_000_000, 50_000_000, 99_000_000]),
]  # fmt: skip


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize(
    ("driver", "extra", "time_col", "expected"), DRIVERS, ids=[d[0][:12] for d in DRIVERS]
)
def test_driver_time_fields_normalise_to_ns_relative_to_stamp(driver, extra, time_col, expected, big):
    cols = {"x": np.arange(N, dtype=np.float32), "y": np.ones(N), "z": np.zeros(N), time_col[0]: time_col[1]}
    c = pointcloud2_to_arrays(cloud(XYZ + extra, cols, big))
    assert c.time_field == time_col[0] and c.time_error is None, driver
    assert c.point_time_ns.dtype == np.int64
    # float64 epoch seconds resolve ~0.24 us at 1.7e9 s; everything else is exact to the ns.
    np.testing.assert_allclose(c.point_time_ns, expected, atol=1000, err_msg=driver)
    np.testing.assert_array_equal(c.xyz[:, 0], np.arange(N))


def test_unusable_time_field_is_named_and_the_cloud_still_decodes():
    cols = {"x": np.zeros(3, np.float32), "y": np.zeros(3), "z": np.zeros(3), "time": np.float32([0, 1, 2])}
    c = pointcloud2_to_arrays(cloud(XYZ + [("time", "f4")], cols))
    assert c.point_time_ns is None and "spans 2.000 s" in c.time_error and len(c) == 3
    cols["time"] = np.float32([STAMP_S] * 3)
    c = pointcloud2_to_arrays(cloud(XYZ + [("time", "f4")], cols))
    assert c.point_time_ns is None and "float32" in c.time_error


def test_no_time_field():
    cols = {"x": np.zeros(2, np.float32), "y": np.zeros(2), "z": np.zeros(2)}
    c = pointcloud2_to_arrays(cloud(XYZ, cols))
    assert c.point_time_ns is None and c.time_field is None and c.time_error is None
