"""Zero-copy byte view of a message's ``uint8[] data`` field, whatever container carries it."""

from __future__ import annotations

from depth_nodes.errors import ConversionError


def data_view(msg) -> memoryview:
    """A flat byte view of ``msg.data`` (array.array from rclpy, numpy from rosbags, bytes or a list)."""
    data = msg.data
    try:
        return memoryview(data).cast("B")
    except (TypeError, ValueError):  # a list of ints, or a non-contiguous buffer
        try:
            return memoryview(bytes(data))
        except (TypeError, ValueError) as exc:
            raise ConversionError(
                f"message data is not a byte sequence ({type(data).__name__}): {exc}"
            ) from exc
