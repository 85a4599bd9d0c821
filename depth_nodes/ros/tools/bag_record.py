"""``depth-nodes record -o OUT TOPICS...``: record topics to a rosbag2 (mcap) with rclpy + rosbags.

Topics are subscribed as soon as a publisher for them is discovered (like ``ros2 bag record``), with
``raw=True`` so the serialized CDR bytes are written unchanged, and a QoS that connects to every
publisher found (best effort unless all are reliable). Log time is the recorder node's clock at reception
(``use_sim_time`` honoured via ``--ros-args -p use_sim_time:=true``).

Shutdown: SIGINT (Ctrl-C) and SIGTERM stop the recording cleanly: the bag is closed (index + summary +
``metadata.yaml``) and renamed from ``OUT.partial`` to ``OUT``, and the tool says it was interrupted. A
hard kill leaves only ``OUT.partial``, which is never mistaken for a bag.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from depth_nodes.data import rosbag_io as rb
from depth_nodes.errors import DataFormatError
from depth_nodes.ros.tools.rosbag_rclpy import (
    MessageTypeUnavailable,
    bag_qos_from_endpoint,
    exit_without_teardown,
    init_context,
    message_class,
    stop_on_signals,
    subscription_qos,
)


@dataclass
class RecordStats:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    stopped_by: str = ""


class Recorder:
    """Subscribes to ``topics`` (as they appear) and writes every message into a :class:`BagWriteSession`."""

    def __init__(self, node, bag: rb.BagWriteSession, topics: list[str], log: Callable[[str], None]) -> None:
        self.node, self.bag, self.log = node, bag, log
        self.topics = [node.resolve_topic_name(t) for t in topics]
        self.subscriptions: dict[str, object] = {}
        self.unavailable: set[str] = set()
        self.first_message = threading.Event()

    def discover(self) -> None:
        """Subscribe to every wanted topic that now has a publisher."""
        known = dict(self.node.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self.subscriptions or topic in self.unavailable or topic not in known:
                continue
            types = known[topic]
            if len(types) != 1:
                self.log(f"record: {topic} is published with several types {types}; not recording it")
                self.unavailable.add(topic)
                continue
            msgtype = types[0]
            try:
                cls = message_class(msgtype)
                rb.msg_class(msgtype)
            except (MessageTypeUnavailable, rb.BagError) as exc:
                self.log(f"record: cannot record {topic}: {exc}")
                self.unavailable.add(topic)
                continue
            endpoints = [e.qos_profile for e in self.node.get_publishers_info_by_topic(topic)]
            self.bag.add_topic(topic, msgtype, [bag_qos_from_endpoint(q) for q in endpoints])
            self.subscriptions[topic] = self.node.create_subscription(
                cls, topic, self._callback(topic), subscription_qos(endpoints), raw=True
            )
            self.log(f"record: subscribed to {topic} [{msgtype}]")

    def _callback(self, topic: str):
        clock = self.node.get_clock()

        def on_message(raw: bytes) -> None:
            self.bag.write_raw(topic, clock.now().nanoseconds, raw)
            self.first_message.set()

        return on_message


def record(
    out: str | Path,
    topics: list[str],
    storage: str = "mcap",
    duration_s: float | None = None,
    max_messages: int | None = None,
    stop: threading.Event | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
    ros_args: list[str] | None = None,
    ready: threading.Event | None = None,
    teardown: bool = True,
) -> RecordStats:
    """Record until ``stop`` is set, ``duration_s`` passed or every topic has ``max_messages`` messages.

    ``ready`` is set once every topic is subscribed. Returns the counts; the bag at ``out`` is closed.
    """
    if not topics:
        raise DataFormatError("record: give at least one topic")
    stop = stop or threading.Event()
    context = init_context(ros_args)
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    node = Node("depth_nodes_recorder", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    bag = rb.BagWriteSession(out, storage=storage)
    try:
        recorder = Recorder(node, bag, topics, log)
        t_end = None if duration_s is None else time.monotonic() + duration_s
        next_discovery = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_discovery and len(recorder.subscriptions) + len(recorder.unavailable) < len(
                recorder.topics
            ):
                recorder.discover()
                next_discovery = now + 0.2
                if ready is not None and len(recorder.subscriptions) == len(recorder.topics):
                    ready.set()
            executor.spin_once(timeout_sec=0.05)
            if t_end is not None and now >= t_end:
                break
            if max_messages is not None and all(
                bag.counts.get(t, 0) >= max_messages for t in recorder.topics
            ):
                break
        # Drain what is already on its way so that a stop right after the last publish loses nothing:
        # spin until nothing arrived for 0.3 s (at most 3 s).
        drain_end = time.monotonic() + 3.0
        idle_since, last_total = time.monotonic(), sum(bag.counts.values())
        while time.monotonic() < drain_end and time.monotonic() - idle_since < 0.3:
            executor.spin_once(timeout_sec=0.02)
            total = sum(bag.counts.values())
            if total != last_total:
                idle_since, last_total = time.monotonic(), total
        stats = RecordStats(
            Path(out), dict(bag.counts), [t for t in recorder.topics if t not in recorder.subscriptions]
        )
    except BaseException:
        bag.abort()
        raise
    finally:
        if teardown:  # else left for the process exit (see exit_without_teardown)
            executor.shutdown()
            node.destroy_node()
            context.try_shutdown()
    bag.close()
    return stats


# ---------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topics", nargs="+", help="topics to record (subscribed when they appear)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output bag directory (must not exist)"
    )
    parser.add_argument(
        "--storage", choices=sorted(rb.STORAGE_SUFFIX), default="mcap", help="rosbag2 storage (default mcap)"
    )
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    parser.add_argument(
        "--max-messages", type=int, default=None, metavar="N", help="stop once every topic has N messages"
    )


def run(args: argparse.Namespace) -> int:
    with stop_on_signals() as (stop, received):
        stats = record(
            args.output,
            args.topics,
            args.storage,
            args.duration,
            args.max_messages,
            stop=stop,
            teardown=False,
        )
    if sum(stats.counts.values()) == 0:
        shutil.rmtree(stats.path, ignore_errors=True)  # nothing recorded: leave no bag that looks useful
        raise rb.BagError(
            f"record: no message arrived on {', '.join(args.topics)}; no bag written "
            "(check the topic names, ROS_DOMAIN_ID and that the publishers run)"
        )
    how = f"interrupted by {received[0]}: recording stopped, " if received else ""
    print(f"record: {how}bag closed and complete: {stats.path} ({sum(stats.counts.values())} messages)")
    for topic, n in stats.counts.items():
        print(f"  {topic:42s} {n:6d}")
    for topic in stats.missing:
        print(f"  {topic:42s} never published: not in the bag")
    exit_without_teardown(0)
