"""Integer nanoseconds -> ROS time stamps (the reader lives in :mod:`depth_nodes.msgs.stamp`)."""

from __future__ import annotations

from builtin_interfaces.msg import Time

from depth_nodes.errors import ConversionError

_NS = 1_000_000_000
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def ns_to_stamp(ns: int) -> Time:
    """``builtin_interfaces/Time`` for integer nanoseconds (nanosec always in [0, 1e9))."""
    sec, nanosec = divmod(int(ns), _NS)
    if not _INT32_MIN <= sec <= _INT32_MAX:
        raise ConversionError(
            f"ns_to_stamp: {ns} ns is outside the int32 seconds range of builtin_interfaces/Time"
        )
    return Time(sec=sec, nanosec=nanosec)
