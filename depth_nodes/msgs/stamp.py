"""Time stamps -> integer nanoseconds (``builtin_interfaces/Time`` of rclpy or rosbags, rclpy ``Time``)."""

from __future__ import annotations

from depth_nodes.errors import ConversionError

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp) -> int:
    """Nanoseconds of a ``builtin_interfaces/Time`` (or anything with ``sec``/``nanosec``, or an rclpy Time)."""
    if hasattr(stamp, "sec"):
        return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    raise ConversionError(f"stamp_to_ns: not a time stamp: {type(stamp).__name__}")
