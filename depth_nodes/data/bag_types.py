"""The ``rosbags`` type store and CDR (de)serialisation, rosbag2 QoS profiles, stamps read from raw CDR."""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any

from depth_nodes.errors import DataFormatError, DepthNodesError


class BagError(DataFormatError):
    """A bag is missing, unreadable, truncated, corrupt, empty, or lacks a needed topic."""


class TopicTypeError(BagError):
    """A topic exists but carries a different message type than the one required."""


@lru_cache(maxsize=1)
def typestore():
    """The ROS 2 Jazzy type store of ``rosbags`` (all standard message types, hashes and definitions)."""
    try:
        from rosbags.typesys import Stores, get_typestore
    except ModuleNotFoundError as exc:  # pragma: no cover - rosbags is in the [bag] extra
        raise DepthNodesError(
            "the 'rosbags' package is needed for bag files: pip install 'depth_nodes[bag]' (or rosbags)"
        ) from exc
    return get_typestore(Stores.ROS2_JAZZY)


def msg_class(msgtype: str):
    """The ``rosbags`` dataclass for a type name such as ``sensor_msgs/msg/Image``."""
    try:
        return typestore().types[msgtype]
    except KeyError as exc:
        raise BagError(f"unknown message type {msgtype!r} (not in the ROS 2 Jazzy type store)") from exc


def serialize(msg: Any, msgtype: str | None = None) -> bytes:
    """CDR bytes (with the 4-byte encapsulation header, as rosbag2 and rmw store them)."""
    return bytes(typestore().serialize_cdr(msg, msgtype or msg.__msgtype__))


def deserialize(raw: bytes | memoryview, msgtype: str) -> Any:
    """Decode CDR bytes into a ``rosbags`` message object; errors name the type."""
    try:
        return typestore().deserialize_cdr(raw, msgtype)
    except Exception as exc:  # rosbags raises assorted struct/index errors on bad bytes
        raise BagError(f"cannot decode a {msgtype} message ({len(raw)} bytes): {exc}") from exc


# ---------------------------------------------------------------------------------------------- QoS
def sensor_data_qos():
    """rosbags ``Qos`` of rclpy's sensor-data profile (best effort, keep last 5, volatile)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST,
        5,
        QosReliability.BEST_EFFORT,
        QosDurability.VOLATILE,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


def reliable_qos(depth: int = 10, transient_local: bool = False):
    """rosbags ``Qos``: reliable, keep last ``depth``; transient local for latched topics (``/tf_static``)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    durability = QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE
    return Qos(
        QosHistory.KEEP_LAST,
        depth,
        QosReliability.RELIABLE,
        durability,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


def header_stamp_ns(raw: bytes | memoryview) -> int:
    """Stamp of a serialized message that starts with a ``std_msgs/Header`` (Image, PointCloud2, ...),
    read from the CDR bytes without decoding the rest (a 1.4 MB image costs nothing)."""
    if len(raw) < 12:
        raise BagError(f"serialized message of {len(raw)} bytes is too short for a header")
    little = raw[1] == 1  # CDR encapsulation: 0x0001 = little endian, 0x0000 = big endian
    sec, nsec = struct.unpack_from("<iI" if little else ">iI", raw, 4)
    return sec * 1_000_000_000 + nsec
