"""``sensor_msgs/PointCloud2`` -> numpy (duck-typed: rclpy and rosbags messages alike).

Decoding builds a numpy structured dtype from the message's fields (names, offsets, datatypes, counts,
``point_step`` as itemsize, the message's byte order) and views ``data`` through it with ``row_step`` as
the row stride, so any field order, padding and endianness is handled by numpy without copies; only the
requested columns are copied out.

``sensor_msgs_py`` is deliberately not used even where importable: its ``read_points`` views the data as
``width * height`` contiguous points (no ``row_step`` padding), byte-swaps big-endian data *in place in the
message*, and ``create_cloud`` only builds unorganized clouds via ``tobytes``. For the layouts it does
handle, results are identical (``test_cloud_matches_sensor_msgs_py_when_available``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import cv2
import numpy as np

from depth_nodes.core.motion import MotionError, normalise_point_times
from depth_nodes.errors import ConversionError
from depth_nodes.msgs.buffer import data_view

#: PointField datatype -> numpy type character (sensor_msgs/PointField constants 1..8).
POINTFIELD_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
FLOAT32 = 7

#: Field names drivers use for the optional per-point channels, in order of preference.
INTENSITY_NAMES = ("intensity", "i", "reflectivity")
RING_NAMES = ("ring", "channel", "laser_id", "line")
#: Per-point time fields (core.motion.normalise_point_times has each driver's unit and origin): Velodyne
#: ``time`` float32 s relative to the header; Ouster ``t`` uint32 ns from the scan's first column; Hesai and
#: RoboSense ``timestamp`` float64 epoch s (livox_ros_driver2: float64 epoch ns); Livox ``offset_time`` uint32
#: ns from the frame's time base; others ``time_stamp``, ``ts``, ``time_offset``.
TIME_NAMES = ("time", "t", "timestamp", "time_stamp", "offset_time", "ts", "time_offset")

_HOST_BIG_ENDIAN = sys.byteorder == "big"


@dataclass
class CloudArrays:
    """Decoded point cloud: ``xyz`` N x 3 float32 (NaN rows kept), optional per-point channels.

    ``height``/``width`` are the message's layout (organized when ``height > 1``; N = height*width).
    ``time`` is float64 in the field's own unit (drivers differ: s relative, ns, or absolute s);
    ``time_field`` names the field it came from. ``point_time_ns`` is the same normalised to int64 ns
    relative to the message stamp (None when absent or unusable; ``time_error`` then says why).
    """

    xyz: np.ndarray
    height: int
    width: int
    intensity: np.ndarray | None = None
    ring: np.ndarray | None = None
    time: np.ndarray | None = None
    time_field: str | None = None
    point_time_ns: np.ndarray | None = None
    time_error: str | None = None

    @property
    def organized(self) -> bool:
        return self.height > 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


def cloud_dtype(fields, point_step: int, big_endian: bool) -> np.dtype:
    """Structured dtype (itemsize = ``point_step``) for a list of PointField."""
    order = ">" if big_endian else "<"
    names, formats, offsets = [], [], []
    for f in fields:
        if f.datatype not in POINTFIELD_DTYPES:
            raise ConversionError(
                f"point cloud: field {f.name!r} has unknown PointField datatype {f.datatype}"
            )
        base = np.dtype(order + POINTFIELD_DTYPES[f.datatype])
        count = max(int(f.count), 1)
        end = f.offset + base.itemsize * count
        if end > point_step:
            raise ConversionError(
                f"point cloud: field {f.name!r} (offset {f.offset}, {count} x {base.itemsize} bytes) ends at "
                f"byte {end}, beyond point_step {point_step}"
            )
        if f.name in names:
            raise ConversionError(f"point cloud: field {f.name!r} appears twice")
        names.append(f.name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(int(f.offset))
    try:
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(point_step)})
    except (ValueError, TypeError) as exc:  # e.g. an empty or unusable field name
        raise ConversionError(f"point cloud: invalid fields: {exc}") from exc


def pointcloud2_view(msg) -> np.ndarray:
    """Zero-copy height x width structured view of a PointCloud2 (fields as the message declares them)."""
    h, w = int(msg.height), int(msg.width)
    if msg.point_step <= 0:
        raise ConversionError(f"point cloud: point_step is {msg.point_step}")
    dtype = cloud_dtype(msg.fields, msg.point_step, bool(msg.is_bigendian))
    data = data_view(msg)
    if h == 0 or w == 0:
        if len(data):
            raise ConversionError(f"point cloud: {h}x{w} points but {len(data)} bytes of data")
        return np.zeros((h, w), dtype=dtype)
    if msg.row_step < w * msg.point_step:
        raise ConversionError(
            f"point cloud: row_step {msg.row_step} is smaller than width*point_step = {w}*{msg.point_step}"
        )
    expected = msg.row_step * h
    if len(data) != expected:
        raise ConversionError(
            f"point cloud: data has {len(data)} bytes, expected row_step*height = {msg.row_step}*{h} = {expected}"
            f" (point_step {msg.point_step} x {w} x {h} points)"
        )
    return np.ndarray((h, w), dtype=dtype, buffer=data, strides=(msg.row_step, msg.point_step))


def _find(names, candidates) -> str | None:
    for name in candidates:
        if name in names:
            return name
    return None


def pointcloud2_to_arrays(msg) -> CloudArrays:
    """Decode x, y, z (+ intensity, ring, time when present) into flat arrays; NaN points are kept."""
    names = [f.name for f in msg.fields]
    missing = [c for c in "xyz" if c not in names]
    if missing:
        raise ConversionError(
            f"point cloud: missing field(s) {', '.join(missing)} (fields: {names or 'none'})"
        )
    view = pointcloud2_view(msg)
    n = view.size
    flat = view.reshape(n)  # a view when rows are unpadded, else one copy
    for c in "xyz":
        if flat.dtype.fields[c][0].shape:
            raise ConversionError(f"point cloud: field {c!r} has count > 1")
    xyz = np.empty((n, 3), dtype=np.float32)
    for i, c in enumerate("xyz"):
        xyz[:, i] = flat[c]  # numpy casts float64 / integers and byte-swaps in the same pass
    out = CloudArrays(xyz=xyz, height=int(msg.height), width=int(msg.width))
    if (name := _find(names, INTENSITY_NAMES)) is not None:
        out.intensity = _column(flat, name, np.float32)
    if (name := _find(names, RING_NAMES)) is not None:
        out.ring = _column(flat, name, np.int32)
    if (name := _find(names, TIME_NAMES)) is not None:
        native = _column(flat, name, None)
        out.time, out.time_field = native.astype(np.float64), name
        stamp = msg.header.stamp
        try:
            out.point_time_ns = normalise_point_times(
                native, int(stamp.sec) * 10**9 + int(stamp.nanosec), name
            )
        except MotionError as exc:
            out.time_error = str(exc)
    return out


def _column(flat: np.ndarray, name: str, dtype) -> np.ndarray:
    """One field as a contiguous native-endian column (``dtype`` None: keep the field's type)."""
    col = flat[name]
    if col.ndim > 1:  # count > 1: take the first element
        col = col[:, 0]
    return col.astype(col.dtype.newbyteorder("=") if dtype is None else dtype)


def packed_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint32 0x00RRGGBB (PCL's packing of the float32 ``rgb`` field) from ... x 3 uint8 RGB."""
    if _HOST_BIG_ENDIAN:
        c = rgb.astype(np.uint32)
        return (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
    # Little-endian 0x00RRGGBB is the byte sequence B, G, R, 0: OpenCV's BGRA with alpha masked off.
    bgra = cv2.cvtColor(np.ascontiguousarray(rgb).reshape(1, -1, 3), cv2.COLOR_RGB2BGRA)
    word = bgra.view(np.uint32)
    word &= np.uint32(0x00FFFFFF)
    return word.reshape(rgb.shape[:-1])


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """N x 3 uint8 RGB from a float32 (or uint32) packed ``rgb`` column (0x00RRGGBB)."""
    if packed.dtype.kind == "f":  # reinterpret the float's bits (in native byte order)
        u = np.ascontiguousarray(packed, dtype=np.float32).view(np.uint32)
    else:
        u = packed.astype(np.uint32)
    return np.stack([(u >> 16) & 0xFF, (u >> 8) & 0xFF, u & 0xFF], axis=-1).astype(np.uint8)
