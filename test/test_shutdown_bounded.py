"""A middleware shutdown that hangs must not hang the tools: it is bounded and reported."""

from __future__ import annotations

import threading
import time

from depth_nodes.ros import rosbag_rclpy


def test_hanging_shutdown_step_is_abandoned_after_the_timeout():
    release = threading.Event()
    calls: list[str] = []
    messages: list[str] = []
    rosbag_rclpy.shutdown_hung.clear()
    t0 = time.monotonic()
    ok = rosbag_rclpy.shutdown_bounded(
        lambda: calls.append("first"), lambda: release.wait(30), timeout_s=0.3, log=messages.append
    )
    assert not ok and time.monotonic() - t0 < 5
    assert calls == ["first"]
    assert rosbag_rclpy.shutdown_hung.is_set()
    assert "did not finish within" in messages[0]
    release.set()
    rosbag_rclpy.shutdown_hung.clear()
    assert rosbag_rclpy.exit_if_shutdown_hung(3) == 3  # no hang: plain return


def test_quick_shutdown_returns_true():
    rosbag_rclpy.shutdown_hung.clear()
    assert rosbag_rclpy.shutdown_bounded(lambda: None, timeout_s=2.0)
    assert not rosbag_rclpy.shutdown_hung.is_set()
