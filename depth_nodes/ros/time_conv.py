"""ROS time stamps <-> integer nanoseconds."""

from __future__ import annotations

from builtin_interfaces.msg import Time

from depth_nodes.errors import ConversionError

_NS = 1_000_000_000
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def stamp_to_ns(stamp) -> int:
    """Nanoseconds of a ``builtin_interfaces/Time`` (or anything with ``sec``/``nanosec``, or an rclpy Time)."""
    if hasattr(stamp, "sec"):
        return int(stamp.sec) * _NS + int(stamp.nanosec)
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    raise ConversionError(f"stamp_to_ns: not a time stamp: {type(stamp).__name__}")


def ns_to_stamp(ns: int) -> Time:
    """``builtin_interfaces/Time`` for integer nanoseconds (nanosec always in [0, 1e9))."""
    sec, nanosec = divmod(int(ns), _NS)
    if not _INT32_MIN <= sec <= _INT32_MAX:
        raise ConversionError(
            f"ns_to_stamp: {ns} ns is outside the int32 seconds range of builtin_interfaces/Time"
        )
    return Time(sec=sec, nanosec=nanosec)
