"""Diagnostics logic and the node's bookkeeping without a middleware: levels, bounds, thread safety."""

from __future__ import annotations

import threading

import pytest

from depth_nodes import pipeline as pl
from depth_nodes.ros.diagnostics import ERROR, OK, WARN, RateLimitedLog, assess
from depth_nodes.ros.node_stats import NodeStats


@pytest.mark.parametrize(
    ("published", "not_published", "level", "text"),
    [
        ({"guided": 10}, 0, OK, "mode guided: fine"),
        ({"lidar_only": 10}, 0, WARN, "mode guided: fine"),
        ({"guided": 5, "lidar_only": 5}, 0, WARN, "mode guided: fine"),
        ({"guided": 8}, 2, WARN, "2 of 10 frames in the last 1 s not published; why"),
        ({}, 7, ERROR, "no depth published in the last 1 s: mode guided: fine; why"),
        ({}, 0, ERROR, "no depth published in the last 1 s"),
    ],
)
def test_level_follows_what_was_published(published, not_published, level, text) -> None:
    got_level, message = assess("guided", "fine", published, 1.0, not_published, "why")
    assert got_level == level and text in message, message


def test_rejected_camera_images_are_named() -> None:
    level, message = assess(
        "lidar_only", "camera stale", {"lidar_only": 3}, 1.0, camera_problem="size mismatch: 10x10"
    )
    assert level == WARN and message.endswith("camera images rejected: size mismatch: 10x10")


def test_rate_limited_log_keeps_a_bounded_number_of_kinds() -> None:
    lines = []
    log = RateLimitedLog(lines.append, period_s=60.0, max_keys=8)
    for i in range(1000):
        log(f"points: frame_id 'junk{i}' is not lidar_frame", "bad frame")
    assert len(log.counts) == 8 and log.total == 1000
    assert list(log.counts)[-1] == "points: frame_id 'junk999' is not lidar_frame"  # newest kinds kept
    assert not log("points: frame_id 'junk999' is not lidar_frame", "again")  # still rate-limited


def test_mode_history_is_bounded() -> None:
    modes = pl.ModeMachine(hysteresis=1)
    for i in range(1000):
        modes.propose(pl.GUIDED if i % 2 else pl.LIDAR_ONLY, "flip")
    assert len(modes.history) == pl.modes.HISTORY_SIZE and modes.n_transitions == 1000


def test_stats_snapshot_while_the_worker_adds_stages() -> None:
    """The old node iterated its stage dict in the diagnostics timer while the worker added keys."""
    stats = NodeStats()
    stop = threading.Event()
    errors = []

    def worker() -> None:
        i = 0
        while not stop.is_set():
            stats.published("guided", {f"stage{i % 50}": 1.0, "project": 2.0}, 5.0, 7.0)
            stats.not_published("monocular", "no LiDAR")
            i += 1

    t = threading.Thread(target=worker)
    t.start()
    try:
        for _ in range(300):
            snap = stats.snapshot(1.0)
            assert sum(snap.published_by_mode.values()) <= snap.frames_published  # one consistent copy
    except Exception as exc:  # noqa: BLE001 - reported below
        errors.append(exc)
    finally:
        stop.set()
        t.join()
    assert not errors
    snap = stats.snapshot(60.0)
    assert len(snap.stage_p50_ms) <= 32 and snap.stage_p50_ms["project"] == 2.0
    assert snap.not_published_in_window > 0 and snap.last_not_published == "no LiDAR"


def test_image_rejections_have_fixed_causes() -> None:
    stats = NodeStats()
    stats.image_rejected("size mismatch", "image is 10x10 but CameraInfo says 20x20")
    snap = stats.snapshot(5.0)
    assert snap.image_rejections == {"size mismatch": 1}
    assert snap.recent_image_rejection == "size mismatch: image is 10x10 but CameraInfo says 20x20"
    with pytest.raises(ValueError, match="unknown image rejection cause"):
        stats.image_rejected("made up", "x")


def test_guarded_callback_logs_instead_of_raising() -> None:
    """An executor callback that raises ends spin() and the node: guarded() turns any exception into a warning."""
    pytest.importorskip("rclpy")
    from depth_nodes.ros.node_inputs import guarded

    lines = []

    class Node:
        warn = RateLimitedLog(lines.append, period_s=60.0)

    def callback(msg):
        raise KeyError(msg)

    assert guarded(Node(), "image", callback)("boom") is None
    assert lines == ["image: unexpected KeyError: 'boom'"] and Node.warn.total == 1
