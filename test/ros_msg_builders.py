"""Hand-built ROS messages shared by the conversion tests: headers, struct-packed PointCloud2 layouts."""

from __future__ import annotations

import array
import struct

from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from depth_nodes.ros.builders.stamp import ns_to_stamp


def header(frame: str = "cam_optical", ns: int = 1_700_000_000_123_456_789) -> Header:
    return Header(frame_id=frame, stamp=ns_to_stamp(ns))


F32, F64, U8, U16, U32, I16 = (
    PointField.FLOAT32,
    PointField.FLOAT64,
    PointField.UINT8,
    PointField.UINT16,
    PointField.UINT32,
    PointField.INT16,
)


def hand_cloud(
    points: list[tuple], layout: list[tuple[str, int, int, str]], point_step: int, **kw
) -> PointCloud2:
    """Pack ``points`` (tuples in ``layout`` order) with struct: layout = (name, offset, datatype, struct char)."""
    big = kw.pop("big", False)
    height = kw.pop("height", 1)
    width = len(points) // height
    row_pad = kw.pop("row_pad", 0)
    order = ">" if big else "<"
    rows = []
    for r in range(height):
        row = bytearray()
        for p in points[r * width : (r + 1) * width]:
            rec = bytearray(b"\xcd" * point_step)
            for (_, off, _, ch), v in zip(layout, p, strict=True):
                struct.pack_into(order + ch, rec, off, v)
            row += rec
        rows.append(bytes(row) + b"\xee" * row_pad)
    fields = [PointField(name=n, offset=o, datatype=d, count=1) for n, o, d, _ in layout]
    return PointCloud2(
        height=height,
        width=width,
        fields=fields,
        is_bigendian=big,
        point_step=point_step,
        row_step=width * point_step + row_pad,
        data=array.array("B", b"".join(rows)),
        **kw,
    )


XYZ = [("x", 0, F32, "f"), ("y", 4, F32, "f"), ("z", 8, F32, "f")]
