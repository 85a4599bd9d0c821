"""Latency in ``/diagnostics``: stamp -> publish only when the stamps are on the node's clock (or sim time).

Each test starts its own node (the stamps must be the only ones it has seen).
"""

from __future__ import annotations

import math
import time

import pytest
from node_io import feed_until, start_node, stop_node

from depth_nodes.ros.builders.stamp import ns_to_stamp

pytestmark = pytest.mark.ros

OK = "0"


def test_latency_of_a_replayed_bag_without_sim_time_is_not_a_clock_difference() -> None:
    """Stamps from 3 days ago (a bag played without use_sim_time): no stamp latency, processing time instead."""
    proc, client, sender = start_node({"max_lidar_age_s": 0.15})
    try:
        t0 = time.time_ns() - 3 * 86400 * 10**9
        i = [0]

        def feed() -> None:
            i[0] += 1
            sender.send(stamp_ns=t0 + i[0] * 100_000_000)

        d = feed_until(client, feed, lambda d: int(d.get("frames_published", "0")) >= 5 and d["level"] == OK)
        assert d["mode"] == "guided" and d["level"] == OK, d
        assert d["latency_stamp_to_publish_p50_ms"] == "nan", d
        assert "not on the node clock" in d["latency_clock"] and int(d["frames_off_clock"]) >= 5, d
        assert 0 < float(d["processing_p50_ms"]) < 5000, d
    finally:
        stop_node(proc, client)


def test_latency_with_sim_time_follows_clock() -> None:
    """use_sim_time + /clock at the bag's time: stamp -> publish latency is measured on the sim clock."""
    from rclpy.qos import QoSProfile
    from rosgraph_msgs.msg import Clock

    proc, client, sender = start_node({"use_sim_time": True, "max_future_stamp_s": 2.0})
    try:
        clock_pub = client.node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        t0 = time.time_ns() - 3 * 86400 * 10**9
        i = [0]

        def feed() -> None:
            i[0] += 1
            stamp_ns = t0 + i[0] * 100_000_000
            clock_pub.publish(Clock(clock=ns_to_stamp(stamp_ns)))
            sender.send(stamp_ns=stamp_ns)

        d = feed_until(client, feed, lambda d: int(d.get("frames_published", "0")) >= 5, timeout=15.0)
        assert d["latency_clock"] == "sim time (/clock)", d
        lat = float(d["latency_stamp_to_publish_p50_ms"])
        assert math.isfinite(lat) and -200 < lat < 2000, d  # sim clock ticks at 10 Hz: within a few periods
    finally:
        stop_node(proc, client)
