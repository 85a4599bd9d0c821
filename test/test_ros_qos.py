"""QoS profiles and the incompatible-QoS event path (real rclpy + Fast DDS in this process)."""

from __future__ import annotations

import os
import time
import uuid

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from depth_nodes.errors import DepthNodesError  # noqa: E402
from depth_nodes.ros.qos import (  # noqa: E402
    QoSConfigError,
    publisher_event_callbacks,
    publisher_incompatibility,
    publisher_qos,
    qos_from_params,
    subscription_event_callbacks,
    subscription_incompatibility,
)


def test_qos_from_params_defaults_to_sensor_data():
    q = qos_from_params()
    assert q.reliability == ReliabilityPolicy.BEST_EFFORT
    assert q.history == HistoryPolicy.KEEP_LAST and q.depth == 5
    assert q.durability == DurabilityPolicy.VOLATILE
    r = qos_from_params(" Reliable ", 2)
    assert r.reliability == ReliabilityPolicy.RELIABLE and r.depth == 2


@pytest.mark.parametrize(
    ("rel", "depth", "match"), [("fast", 5, "reliability must be one of"), ("reliable", 0, ">= 1")]
)
def test_qos_from_params_errors(rel, depth, match):
    with pytest.raises(QoSConfigError, match=match):
        qos_from_params(rel, depth)
    assert issubclass(QoSConfigError, DepthNodesError)


def test_publisher_qos_is_reliable_and_shallow():
    q = publisher_qos(3)
    assert q.reliability == ReliabilityPolicy.RELIABLE and q.depth == 3
    assert q.durability == DurabilityPolicy.VOLATILE and q.history == HistoryPolicy.KEEP_LAST
    for bad in (0, 6):
        with pytest.raises(QoSConfigError, match="1..5"):
            publisher_qos(bad)


def test_messages_name_the_fix():
    best = qos_from_params("best_effort")
    reliable = qos_from_params("reliable")
    text = subscription_incompatibility("points", reliable, [best], QoSPolicyKind.RELIABILITY, "points")
    assert text == (
        "subscription 'points' is RELIABLE but the publisher offers BEST_EFFORT: "
        "set points_qos_reliability: best_effort"
    )
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    text = subscription_incompatibility("camera_info", latched, [reliable], QoSPolicyKind.DURABILITY, "info")
    assert "TRANSIENT_LOCAL" in text and "volatile" in text
    text = publisher_incompatibility("depth/image_rect", publisher_qos(), [latched], QoSPolicyKind.DURABILITY)
    assert text.startswith("publisher 'depth/image_rect' offers RELIABLE/VOLATILE") and "VOLATILE" in text
    text = subscription_incompatibility("x", reliable, [], QoSPolicyKind.DEADLINE, "x")
    assert "DEADLINE" in text and "align the deadline policy" in text


def _spin_until(executor, done, timeout_s: float = 20.0) -> bool:
    """Spin until ``done()`` or the timeout (event waits, no fixed sleeps)."""
    end = time.monotonic() + timeout_s
    while not done() and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    return done()


@pytest.fixture
def ros_node():
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    ctx = Context()
    rclpy.init(context=ctx, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "42")))
    node = rclpy.create_node(f"qos_test_{uuid.uuid4().hex[:8]}", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)


@pytest.mark.ros
def test_reliable_subscription_reports_best_effort_publisher(ros_node):
    node, executor = ros_node
    topic = f"image_{uuid.uuid4().hex[:8]}"  # unique: no other test's endpoints on it
    reports: list[str] = []
    sub_qos = qos_from_params("reliable", 5)
    node.create_subscription(
        Image,
        topic,
        lambda _msg: None,
        sub_qos,
        event_callbacks=subscription_event_callbacks(node, topic, sub_qos, "image", reports.append),
    )
    node.create_publisher(Image, topic, qos_from_params("best_effort", 5))
    assert _spin_until(executor, lambda: bool(reports)), "incompatible-QoS event never fired"
    assert reports[0] == (
        f"subscription '{topic}' is RELIABLE but the publisher offers BEST_EFFORT: "
        "set image_qos_reliability: best_effort"
    )


@pytest.mark.ros
def test_publisher_reports_transient_local_subscriber_and_compatible_pair_is_silent(ros_node):
    node, executor = ros_node
    topic = f"depth_{uuid.uuid4().hex[:8]}"
    pub_reports: list[str] = []
    sub_reports: list[str] = []
    pub_qos = publisher_qos(1)
    pub = node.create_publisher(
        Image,
        topic,
        pub_qos,
        event_callbacks=publisher_event_callbacks(node, topic, pub_qos, pub_reports.append),
    )
    # A best-effort (sensor-data) subscriber matches a reliable publisher: no report.
    ok_qos = qos_from_params("best_effort", 5)
    node.create_subscription(
        Image,
        topic,
        lambda _msg: None,
        ok_qos,
        event_callbacks=subscription_event_callbacks(node, topic, ok_qos, "depth", sub_reports.append),
    )
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(Image, topic, lambda _msg: None, latched)
    assert _spin_until(executor, lambda: bool(pub_reports)), "publisher incompatible-QoS event never fired"
    assert pub_reports[0].startswith(f"publisher '{topic}' offers RELIABLE/VOLATILE")
    assert "make the subscriber VOLATILE" in pub_reports[0]
    assert _spin_until(executor, lambda: pub.get_subscription_count() >= 1, 10.0)
    assert sub_reports == []


class _FakeNode:
    """Records warnings like rclpy's logger (for the per-topic rate limit)."""

    def __init__(self) -> None:
        self.logged: list[str] = []

    def get_logger(self):
        return self

    def warning(self, text: str) -> None:
        self.logged.append(text)


def test_reports_are_rate_limited_per_topic_not_per_call_site():
    from depth_nodes.ros.qos import _TopicWarner

    node, reports = _FakeNode(), []
    image, points = _TopicWarner(node, reports.append), _TopicWarner(node, reports.append)
    for _ in range(3):
        image("image clash")
        points("points clash")
    assert node.logged == ["image clash", "points clash"]  # each topic once, neither hides the other
    assert len(reports) == 6  # the caller's report sees every event
    image("image clash, new policy")
    assert node.logged[-1] == "image clash, new policy"


def test_publisher_reliability_clash_names_the_fix():
    text = publisher_incompatibility(
        "depth/points", qos_from_params("best_effort"), [], QoSPolicyKind.RELIABILITY
    )
    assert text == (
        "publisher 'depth/points' offers BEST_EFFORT/VOLATILE but a subscriber requests an incompatible "
        "RELIABILITY policy: make the subscriber BEST_EFFORT"
    )
