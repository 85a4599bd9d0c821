"""QoS profiles of the depth node and readable reports of incompatible-QoS events.

Subscribers default to sensor-data QoS (best effort, keep last, shallow) so they connect to any camera or
LiDAR driver; publishers are reliable with a short queue so RViz, recorders and best-effort consumers all
connect. When a peer's QoS is incompatible, DDS silently never matches; the event callbacks here turn that
into one log line that says which policy clashes and which parameter fixes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
)

from depth_nodes.errors import DepthNodesError

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
DURABILITY = {"volatile": DurabilityPolicy.VOLATILE, "transient_local": DurabilityPolicy.TRANSIENT_LOCAL}
#: Queue depth of the sensor-data profile (rclpy's qos_profile_sensor_data uses 5).
SENSOR_DEPTH = 5
MAX_PUBLISHER_DEPTH = 5


class QoSConfigError(DepthNodesError):
    """A QoS parameter has a value outside its allowed set or range."""


def qos_from_params(reliability: str = "best_effort", depth: int = SENSOR_DEPTH) -> QoSProfile:
    """Subscriber profile: keep last ``depth`` (>= 1), volatile, ``reliability`` 'best_effort' | 'reliable'."""
    key = str(reliability).strip().lower()
    if key not in RELIABILITY:
        raise QoSConfigError(f"QoS reliability must be one of {', '.join(RELIABILITY)}, got {reliability!r}")
    if int(depth) < 1:
        raise QoSConfigError(f"QoS depth must be >= 1, got {depth}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth),
        reliability=RELIABILITY[key],
        durability=DurabilityPolicy.VOLATILE,
    )


def publisher_qos(depth: int = 1) -> QoSProfile:
    """Publisher profile: reliable, volatile, keep last ``depth`` (1..5: a deep queue only adds latency)."""
    if not 1 <= int(depth) <= MAX_PUBLISHER_DEPTH:
        raise QoSConfigError(f"publisher QoS depth must be in 1..{MAX_PUBLISHER_DEPTH}, got {depth}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth),
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def _policy_name(kind) -> str:
    try:
        return QoSPolicyKind(int(kind)).name
    except (ValueError, TypeError):
        return str(kind)


def _name(policy) -> str:
    return getattr(policy, "name", str(policy)).upper()


def subscription_incompatibility(
    topic: str, own: QoSProfile, offered: list[QoSProfile], policy_kind, param_prefix: str
) -> str:
    """Message for a subscription whose requested QoS no publisher on ``topic`` satisfies."""
    policy = _policy_name(policy_kind)
    if policy == "RELIABILITY" or (
        own.reliability == ReliabilityPolicy.RELIABLE
        and any(p.reliability == ReliabilityPolicy.BEST_EFFORT for p in offered)
    ):
        return (
            f"subscription '{topic}' is {_name(own.reliability)} but the publisher offers BEST_EFFORT: "
            f"set {param_prefix}_qos_reliability: best_effort"
        )
    if policy == "DURABILITY":
        return (
            f"subscription '{topic}' requests {_name(own.durability)} durability but the publisher offers "
            f"VOLATILE: the subscription must be volatile (QoS profile of '{topic}')"
        )
    offers = ", ".join(f"{_name(p.reliability)}/{_name(p.durability)}" for p in offered) or "unknown"
    return (
        f"subscription '{topic}' has QoS incompatible with its publisher(s) (policy {policy}; "
        f"they offer {offers}): align the {policy.lower()} policy of both sides"
    )


def publisher_incompatibility(topic: str, own: QoSProfile, requested: list[QoSProfile], policy_kind) -> str:
    """Message for a publisher whose offered QoS does not satisfy a subscription on ``topic``."""
    policy = _policy_name(policy_kind)
    if policy == "DURABILITY" or any(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in requested):
        fix = "make the subscriber VOLATILE (e.g. RViz: Durability Policy = Volatile)"
    elif policy == "RELIABILITY":
        fix = "make the subscriber BEST_EFFORT"
    else:
        fix = f"align the subscriber's {policy.lower()} policy with the publisher"
    return (
        f"publisher '{topic}' offers {_name(own.reliability)}/{_name(own.durability)} but a subscriber "
        f"requests an incompatible {policy} policy: {fix}"
    )


class _TopicWarner:
    """Logs one topic's QoS reports, repeating an identical text at most every ``period_s``.

    Per topic on purpose: rclpy's ``throttle_duration_sec`` throttles per call site, which would hide a
    second topic's report behind the first.
    """

    def __init__(self, node, report: Callable[[str], None] | None, period_s: float = 5.0) -> None:
        self._node, self._report, self._period_s = node, report, period_s
        self._last: tuple[str, float] | None = None

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if self._last is None or self._last[0] != text or now - self._last[1] >= self._period_s:
            self._node.get_logger().warning(text)
            self._last = (text, now)
        if self._report is not None:
            self._report(text)


def subscription_event_callbacks(
    node,
    topic: str,
    qos: QoSProfile,
    param_prefix: str,
    report: Callable[[str], None] | None = None,
) -> SubscriptionEventCallbacks:
    """Event callbacks for ``node.create_subscription(..., event_callbacks=...)`` on ``topic``.

    On an incompatible-QoS event the offered profiles are read from the graph and one warning names the fix,
    e.g. "subscription 'image' is RELIABLE but the publisher offers BEST_EFFORT: set
    image_qos_reliability: best_effort" (``param_prefix`` = 'image'). ``report`` receives the text too.
    """

    warn = _TopicWarner(node, report)

    def on_incompatible(info) -> None:
        offered = [i.qos_profile for i in _safe_graph(node.get_publishers_info_by_topic, node, topic)]
        warn(subscription_incompatibility(topic, qos, offered, info.last_policy_kind, param_prefix))

    return SubscriptionEventCallbacks(incompatible_qos=on_incompatible)


def publisher_event_callbacks(
    node, topic: str, qos: QoSProfile, report: Callable[[str], None] | None = None
) -> PublisherEventCallbacks:
    """Event callbacks for ``node.create_publisher(..., event_callbacks=...)``; logs the fix on a clash."""

    warn = _TopicWarner(node, report)

    def on_incompatible(info) -> None:
        requested = [i.qos_profile for i in _safe_graph(node.get_subscriptions_info_by_topic, node, topic)]
        warn(publisher_incompatibility(topic, qos, requested, info.last_policy_kind))

    return PublisherEventCallbacks(incompatible_qos=on_incompatible)


def _safe_graph(query, node, topic: str) -> list:
    """Endpoint infos of ``topic`` (resolved like the node resolves it); empty when the graph query fails."""
    try:
        name = node.resolve_topic_name(topic)
    except Exception:  # noqa: BLE001 - older rclpy without resolve_topic_name
        name = topic
    try:
        return list(query(name))
    except Exception:  # noqa: BLE001 - the report must never take the node down
        return []
