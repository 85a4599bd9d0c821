"""rclpy side of the bag tools (``play``, ``record``): message classes by type name and QoS mapping.

rclpy is imported lazily here, so importing the module (e.g. for ``depth-nodes --help``) never loads it.
The bag tools live under ``data/`` next to the rosbags code they share; they are the only modules outside
``ros/`` that touch rclpy, and only inside their ``run`` functions.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

from depth_nodes.errors import DepthNodesError


class MessageTypeUnavailable(DepthNodesError):
    """A bag/topic type whose Python message package is not installed (e.g. tf2_msgs from PyPI)."""


def message_class(msgtype: str) -> Any:
    """rclpy message class for ``pkg/msg/Name`` (e.g. ``sensor_msgs/msg/Image``)."""
    try:
        pkg, kind, name = msgtype.split("/")
    except ValueError as exc:
        raise MessageTypeUnavailable(
            f"malformed message type name {msgtype!r} (expected pkg/msg/Name)"
        ) from exc
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise MessageTypeUnavailable(
            f"message type {msgtype} is not available in this Python environment ({exc}); "
            f"install the '{pkg}' package of your ROS distribution"
        ) from exc


def qos_from_bag(profiles: list, topic: str) -> Any:
    """rclpy ``QoSProfile`` for republishing what a bag recorded.

    Several recorded publishers are merged like ``ros2 bag play`` does: reliable only if all were reliable,
    transient local only if all were; no recorded profile -> sensor-data QoS (``/tf_static``: reliable,
    transient local, depth 1, which latched-topic subscribers need).
    """
    from rclpy.qos import (
        DurabilityPolicy,
        HistoryPolicy,
        QoSPresetProfiles,
        QoSProfile,
        ReliabilityPolicy,
    )

    if topic == "/tf_static":
        return QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
    if not profiles:
        return QoSPresetProfiles.SENSOR_DATA.value
    reliable = all(p.reliability.name == "RELIABLE" for p in profiles)
    latched = all(p.durability.name == "TRANSIENT_LOCAL" for p in profiles)
    depth = max(max(int(p.depth) for p in profiles), 1)
    keep_all = any(p.history.name == "KEEP_ALL" for p in profiles)
    return QoSProfile(
        history=HistoryPolicy.KEEP_ALL if keep_all else HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def subscription_qos(endpoint_qos: list) -> Any:
    """rclpy ``QoSProfile`` that connects to all the given publishers (``TopicEndpointInfo.qos_profile``).

    Reliable only if every publisher offers reliable, transient local only if every one is (as
    ``ros2 bag record`` adapts); keep last 100 so bursts are not lost while a message is being written.
    """
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    reliable = bool(endpoint_qos) and all(q.reliability == ReliabilityPolicy.RELIABLE for q in endpoint_qos)
    latched = bool(endpoint_qos) and all(
        q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in endpoint_qos
    )
    return QoSProfile(
        depth=100,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def bag_qos_from_endpoint(q: Any) -> Any:
    """rosbags ``Qos`` (for ``metadata.yaml`` offered_qos_profiles) from an rclpy ``QoSProfile``."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def _t(duration) -> QosTime:
        ns = int(duration.nanoseconds)
        return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)

    def _enum(cls, policy):
        return cls.__members__.get(policy.name, cls.UNKNOWN)

    return Qos(
        _enum(QosHistory, q.history),
        int(q.depth),
        _enum(QosReliability, q.reliability),
        _enum(QosDurability, q.durability),
        _t(q.deadline),
        _t(q.lifespan),
        _enum(QosLiveliness, q.liveliness),
        _t(q.liveliness_lease_duration),
        bool(q.avoid_ros_namespace_conventions),
    )


def init_context(args: list[str] | None = None) -> Any:
    """A private rclpy context without rclpy's signal handlers (the tools handle SIGINT/SIGTERM)."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    context = rclpy.Context()
    rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)
    return context


@contextlib.contextmanager
def stop_on_signals() -> Iterator[tuple[threading.Event, list[str]]]:
    """Turn SIGINT/SIGTERM into a stop event for the block (names of received signals collected)."""
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum, _frame) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop, received
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def exit_without_teardown(code: int) -> NoReturn:
    """Leave a CLI process at once, skipping rclpy's teardown (the tool's work is done and flushed).

    rclpy's ``Node.destroy_node`` can spin forever, holding the GIL, in ``destroy_when_not_in_use`` (seen here
    under load after ``play`` had sent its last message: 100 % CPU for 30 min), so a timeout thread cannot
    rescue it. The player and recorder therefore skip the teardown when they run as their own process.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
