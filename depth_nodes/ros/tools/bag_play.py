"""``depth-nodes play``: publish a rosbag2's messages with rclpy at recorded timing (no ROS CLI needed).

Messages are published as the stored CDR bytes (``Publisher.publish(bytes)`` publishes serialized data
unchanged), so playback never deserialises and is exact. Each topic's publisher gets the QoS it was
recorded with (``offered_qos_profiles`` in ``metadata.yaml``), sensor-data QoS when the bag has none, and
``/tf_static`` reliable + transient local. Topics whose message package is not installed (``tf2_msgs`` is
not on PyPI) are skipped with a warning that names them. ``--clock`` publishes ``/clock`` (bag time) for
nodes run with ``use_sim_time:=true``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from depth_nodes.data import rosbag_io as rb
from depth_nodes.errors import DataFormatError
from depth_nodes.ros.tools.rosbag_rclpy import (
    MessageTypeUnavailable,
    exit_without_teardown,
    init_context,
    message_class,
    qos_from_bag,
    stop_on_signals,
)


@dataclass
class PlayStats:
    """What a playback did: messages per topic, topics skipped (with why), loops done, interruption."""

    published: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    loops: int = 0
    interrupted: bool = False

    @property
    def total(self) -> int:
        return sum(self.published.values())


def _wait_for_subscribers(node, publishers: dict, timeout_s: float, stop: threading.Event, log) -> None:
    """Block until every publisher (except TF) has a subscriber, or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    pending = [t for t in publishers if not t.startswith("/tf")]
    while pending and time.monotonic() < deadline and not stop.is_set():
        pending = [t for t in pending if publishers[t].get_subscription_count() == 0]
        time.sleep(0.05)
    if pending:
        log(f"play: no subscriber after {timeout_s:.1f} s on {', '.join(pending)} (playing anyway)")


def play(
    bag: str | Path,
    rate: float = 1.0,
    loop: bool = False,
    clock_hz: float = 0.0,
    topics: list[str] | None = None,
    wait_for_subscribers_s: float = 0.0,
    stop: threading.Event | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
    ros_args: list[str] | None = None,
    on_publish: Callable[[str, int, bytes, int], None] | None = None,
    teardown: bool = True,
    skip: Callable[[str, bytes], bool] | None = None,
) -> PlayStats:
    """Play ``bag``; returns when it ends (after ``loop`` until ``stop`` is set) or when ``stop`` is set.

    ``on_publish(topic, log_time_ns, raw_cdr, wall_ns)`` is called after each message is published, with
    ``wall_ns`` = ``time.time_ns()`` taken just before the publish call (the demo times input -> output).
    ``teardown=False`` leaves the node and context for the process exit (see ``exit_without_teardown``).
    ``skip(topic, raw_cdr)`` True: that message is not published (the demo's LiDAR dropout).
    """
    if not rate > 0:
        raise DataFormatError(f"--rate must be > 0, got {rate}")
    bag = Path(bag)
    stop = stop or threading.Event()
    summary = rb.read_summary(bag)
    if summary.message_count == 0:
        raise rb.BagError(f"bag {bag} is empty (no messages)")
    wanted = list(summary.topics) if topics is None else topics
    for t in wanted:
        summary.require_topic(t)
    stats = PlayStats()
    classes = {}
    for t in wanted:
        try:
            classes[t] = message_class(summary.topics[t].msgtype)
        except MessageTypeUnavailable as exc:
            stats.skipped[t] = str(exc)
            log(f"play: skipping {t}: {exc}")
    if not classes:
        raise rb.BagError(
            f"bag {bag}: none of the topics can be published here ({'; '.join(stats.skipped.values())})"
        )

    context = init_context(ros_args)
    from rclpy.duration import Duration
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    node = Node("depth_nodes_player", context=context)
    try:
        pubs = {
            t: node.create_publisher(cls, t, qos_from_bag(summary.topics[t].qos, t))
            for t, cls in classes.items()
        }
        stats.published = dict.fromkeys(pubs, 0)
        clock_pub = None
        if clock_hz > 0:
            from rosgraph_msgs.msg import Clock

            clock_pub = node.create_publisher(
                Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            )
        if wait_for_subscribers_s > 0:
            _wait_for_subscribers(node, pubs, wait_for_subscribers_s, stop, log)
        count = sum(summary.topics[t].count for t in pubs)
        while not stop.is_set():
            _play_once(bag, pubs, rate, clock_pub, clock_hz, stop, stats, count, progress, on_publish, skip)
            if stop.is_set():
                break
            stats.loops += 1
            if not loop:
                break
        stats.interrupted = stop.is_set()
        for pub in pubs.values():  # let reliable subscribers receive the tail before the node goes
            pub.wait_for_all_acked(timeout=Duration(seconds=2.0))
    finally:
        if teardown:
            node.destroy_node()
            context.try_shutdown()
    return stats


def _play_once(
    bag, pubs, rate, clock_pub, clock_hz, stop, stats, count, progress, on_publish, skip=None
) -> None:
    clock_period = 1.0 / clock_hz if clock_pub is not None else 0.5
    t_first = None
    wall_start = 0.0

    def publish_clock(bag_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        clock_pub.publish(msg)

    with rb.open_bag(bag) as reader, tqdm(total=count, desc="play", unit="msg", disable=not progress) as bar:
        for topic, _type, t_ns, raw in rb.iter_messages(reader, bag, list(pubs)):
            if t_first is None:
                t_first, wall_start = t_ns, time.monotonic()
                if clock_pub is not None:
                    publish_clock(t_ns)
            target = wall_start + (t_ns - t_first) / 1e9 / rate
            while (now := time.monotonic()) < target and not stop.is_set():
                stop.wait(min(target - now, clock_period))
                if clock_pub is not None:
                    publish_clock(min(t_ns, t_first + int((time.monotonic() - wall_start) * rate * 1e9)))
            if stop.is_set():
                return
            if clock_pub is not None:
                publish_clock(t_ns)
            data = bytes(raw)
            if skip is not None and skip(topic, data):
                bar.update(1)
                continue
            wall_ns = time.time_ns()
            pubs[topic].publish(data)
            stats.published[topic] += 1
            if on_publish is not None:
                on_publish(topic, t_ns, data, wall_ns)
            bar.update(1)


# ---------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="rosbag2 directory (mcap or sqlite3), or a .mcap / .db3 file")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (2 = twice as fast)")
    parser.add_argument("--loop", action="store_true", help="play again from the start until Ctrl-C")
    parser.add_argument(
        "--clock",
        type=float,
        nargs="?",
        const=40.0,
        default=0.0,
        metavar="HZ",
        help="publish /clock with the bag time at HZ (default 40 Hz when given) for use_sim_time nodes",
    )
    parser.add_argument("--topics", nargs="+", default=None, help="play only these topics")
    parser.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds until every topic has a subscriber before starting",
    )


def run(args: argparse.Namespace) -> int:
    with stop_on_signals() as (stop, received):
        stats = play(
            args.bag,
            args.rate,
            args.loop,
            args.clock,
            args.topics,
            args.wait_for_subscribers,
            stop=stop,
            teardown=False,
        )
    state = f"stopped by {received[0]}" if received else "done"
    print(f"play {state}: {stats.total} messages in {stats.loops} full pass(es)")
    for topic, n in stats.published.items():
        print(f"  {topic:42s} {n:6d}")
    for topic in stats.skipped:
        print(f"  {topic:42s} skipped (message package not installed)")
    exit_without_teardown(0)
