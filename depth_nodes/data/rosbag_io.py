"""rosbag2 I/O shared by ``kitti2bag``, ``play``, ``record`` and ``demo``, over the ``rosbags`` library.

``rosbags`` reads and writes standard rosbag2 directories (``metadata.yaml`` + one ``.mcap`` or ``.db3``
file) without a ROS install, so the same bags open in ``ros2 bag``. This module adds what the tools need on
top of it:

- :class:`BagWriteSession`: writes into a staging directory and renames it to the final name only when the
  bag is closed cleanly, so a failed or killed run never leaves a bag that looks complete.
- :func:`open_bag` / :func:`read_summary` / :func:`verify_bag`: open a bag with errors that name the file
  (missing, not a bag, truncated or corrupt), list its topics and check that its ``metadata.yaml`` agrees
  with what the storage file really holds.
- Static TF read from ``/tf_static`` and chained (:func:`read_static_transforms`, :func:`lookup_transform`).

It is also the bag tools' one import point: the type store and QoS profiles (:mod:`bag_types`) and the
message builders (:mod:`bag_messages`) are re-exported here. Messages read from a bag are decoded with the
node's own decoders (:mod:`depth_nodes.msgs`: images, clouds, CameraInfo), never a second set.

Nothing here imports rclpy.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_nodes.data.bag_messages import (  # noqa: F401 - re-exported for the bag tools
    camera_info_msg,
    clock_msg,
    image_msg,
    pointcloud_msg,
    tf_message,
    transform_stamped,
    transform_to_matrix,
)
from depth_nodes.data.bag_types import (  # noqa: F401 - re-exported for the bag tools
    BagError,
    TopicTypeError,
    deserialize,
    header_stamp_ns,
    msg_class,
    reliable_qos,
    sensor_data_qos,
    serialize,
    typestore,
)
from depth_nodes.errors import DepthNodesError
from depth_nodes.msgs.stamp import stamp_to_ns  # noqa: F401 - re-exported for the bag tools

#: storage name (CLI / metadata.yaml ``storage_identifier``) -> file suffix of the storage file.
STORAGE_SUFFIX = {"mcap": ".mcap", "sqlite3": ".db3"}


# ---------------------------------------------------------------------------------------------- writing
class BagWriteSession:
    """Write a rosbag2 so that only a cleanly closed bag ever carries the final name.

    The bag is written to ``<out>.partial/<out.name>`` (so the storage file already has its final name)
    and moved to ``out`` by :meth:`close`. :meth:`abort` (or an exception inside ``with``) deletes the
    staging directory. A hard kill leaves only ``<out>.partial``, which no reader mistakes for a bag.
    """

    def __init__(self, out: str | Path, storage: str = "mcap", overwrite: bool = False) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGE_SUFFIX:
            raise BagError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGE_SUFFIX)}")
        self.out = Path(out)
        self.storage = storage
        if self.out.exists():
            if not overwrite:
                raise BagError(f"output {self.out} exists already (remove it or choose another -o)")
            if not (self.out / "metadata.yaml").is_file():
                raise BagError(f"refusing to overwrite {self.out}: it exists and is not a rosbag2 directory")
            shutil.rmtree(self.out)
        self.staging = self.out.with_name(self.out.name + ".partial")
        if self.staging.exists():
            shutil.rmtree(self.staging)  # left over from a killed run: never a complete bag
        self.staging.mkdir(parents=True)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.staging / self.out.name, version=9, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

    def add_topic(
        self, topic: str, msgtype: str, qos: Iterable[Any] = (), msgdef: tuple[str, str] | None = None
    ):
        """Register a topic; ``qos``: rosbags ``Qos`` profiles offered when recorded; ``msgdef``: optional
        ``(definition text, RIHS01 hash)`` for types outside the Jazzy type store."""
        if topic in self._connections:
            return self._connections[topic]
        kwargs: dict[str, Any] = {"offered_qos_profiles": list(qos)}
        if msgdef is None:
            kwargs["typestore"] = typestore()
            msg_class(msgtype)  # clear error for unknown types
        else:
            kwargs["msgdef"], kwargs["rihs01"] = msgdef
        conn = self._writer.add_connection(topic, msgtype, **kwargs)
        self._connections[topic] = conn
        self.counts[topic] = 0
        return conn

    def write_raw(self, topic: str, stamp_ns: int, raw: bytes | memoryview) -> None:
        """Write already serialized CDR bytes on a registered topic at receive/log time ``stamp_ns``."""
        try:
            conn = self._connections[topic]
        except KeyError as exc:
            raise BagError(f"topic {topic} was not added to the bag") from exc
        self._writer.write(conn, int(stamp_ns), raw)
        self.counts[topic] += 1

    def write(self, topic: str, stamp_ns: int, msg: Any) -> None:
        """Serialize a rosbags message object and write it."""
        self.write_raw(topic, stamp_ns, serialize(msg, self._connections[topic].msgtype))

    def close(self) -> Path:
        """Finish the storage file + metadata.yaml and give the bag its final name; returns the path."""
        if self.closed:
            return self.out
        self._writer.close()
        (self.staging / self.out.name).rename(self.out)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.closed = True
        return self.out

    def abort(self) -> None:
        """Drop everything written so far (nothing is left at ``out`` or ``out.partial``)."""
        if self.closed:
            return
        with contextlib.suppress(Exception):
            self._writer.abort()
        shutil.rmtree(self.staging, ignore_errors=True)
        self.closed = True

    def __enter__(self) -> BagWriteSession:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class TopicSummary:
    name: str
    msgtype: str
    count: int
    qos: list = field(default_factory=list)


@dataclass
class BagSummary:
    """What ``metadata.yaml`` (or the storage index) says about a bag."""

    path: Path
    storage: str
    start_ns: int
    duration_ns: int
    message_count: int
    topics: dict[str, TopicSummary]

    def require_topic(self, topic: str, msgtype: str | None = None) -> TopicSummary:
        """The topic's summary; :class:`BagError` if absent, :class:`TopicTypeError` if of another type."""
        info = self.topics.get(topic)
        if info is None:
            have = ", ".join(sorted(self.topics)) or "none"
            raise BagError(f"{self.path}: topic {topic} not in the bag (topics: {have})")
        if msgtype is not None and info.msgtype != msgtype:
            raise TopicTypeError(f"{self.path}: topic {topic} has type {info.msgtype}, expected {msgtype}")
        return info


#: What rosbags and the storage back ends raise on broken files.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    AssertionError,
)


def _reader_errors() -> tuple[type[BaseException], ...]:
    from rosbags.rosbag2 import ReaderError

    return (ReaderError, *_READ_ERRORS)


@contextlib.contextmanager
def open_bag(path: str | Path) -> Iterator[Any]:
    """Open a rosbag2 directory (or a bare ``.mcap`` / ``.db3``) as a rosbags ``Reader``.

    Raises :class:`BagError` naming the path for a missing, non-bag, truncated or corrupt input.
    """
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(f"{path} is not a rosbag2 directory (no metadata.yaml)")
    try:
        reader = Reader(path)
        reader.open()
    except DepthNodesError:
        raise
    except _reader_errors() as exc:
        raise BagError(f"cannot open bag {path}: truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    try:
        yield reader
    finally:
        with contextlib.suppress(Exception):
            reader.close()


def summarize(reader: Any, path: Path) -> BagSummary:
    """:class:`BagSummary` of an open reader."""
    topics: dict[str, TopicSummary] = {}
    for conn in reader.connections:
        qos = list(getattr(conn.ext, "offered_qos_profiles", []) or [])
        if conn.topic in topics:
            topics[conn.topic].count += conn.msgcount
        else:
            topics[conn.topic] = TopicSummary(conn.topic, conn.msgtype, conn.msgcount, qos)
    storage = "sqlite3" if path.suffix == ".db3" else "mcap"
    if path.is_dir():
        import yaml

        info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        storage = str(info.get("storage_identifier", storage))
    count = reader.message_count
    return BagSummary(
        path=path,
        storage=storage,
        start_ns=reader.start_time if count else 0,
        duration_ns=max(0, reader.duration - 1) if count else 0,
        message_count=count,
        topics=topics,
    )


def read_summary(path: str | Path) -> BagSummary:
    """Open, summarise and close a bag."""
    with open_bag(path) as reader:
        return summarize(reader, Path(path))


def iter_messages(
    reader: Any, path: Path, topics: Iterable[str] | None = None
) -> Iterator[tuple[str, str, int, bytes]]:
    """Yield ``(topic, msgtype, log_time_ns, raw_cdr)`` in log-time order; corrupt data -> :class:`BagError`."""
    wanted = set(topics) if topics is not None else None
    conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
    if not conns:
        return
    try:
        for conn, t_ns, raw in reader.messages(connections=conns):
            yield conn.topic, conn.msgtype, t_ns, raw
    except DepthNodesError:
        raise
    except _reader_errors() as exc:
        raise BagError(
            f"bag {path} is truncated or corrupt while reading: {type(exc).__name__}: {exc}"
        ) from exc


def verify_bag(path: str | Path, decode: bool = True) -> BagSummary:
    """Read every message of a bag and check it against its metadata.

    Checks: the bag has messages; each topic's count and the start time / duration agree with what the
    storage file really holds; with ``decode``, every message deserialises as its declared type.
    Returns the summary; raises :class:`BagError` naming the first disagreement.
    """
    path = Path(path)
    with open_bag(path) as reader:
        summary = summarize(reader, path)
        if summary.message_count == 0:
            raise BagError(f"bag {path} is empty (no messages)")
        seen: dict[str, int] = dict.fromkeys(summary.topics, 0)
        t_min, t_max = None, None
        for topic, msgtype, t_ns, raw in iter_messages(reader, path):
            seen[topic] += 1
            t_min = t_ns if t_min is None else min(t_min, t_ns)
            t_max = t_ns if t_max is None else max(t_max, t_ns)
            if decode:
                deserialize(raw, msgtype)
    for topic, info in summary.topics.items():
        if seen[topic] != info.count:
            raise BagError(
                f"bag {path}: metadata says {info.count} messages on {topic}, storage holds {seen[topic]}"
            )
    if t_min != summary.start_ns or (t_max - t_min) != summary.duration_ns:
        raise BagError(
            f"bag {path}: metadata start/duration {summary.start_ns}/{summary.duration_ns} ns disagree with "
            f"the messages ({t_min}/{t_max - t_min} ns)"
        )
    return summary


# ---------------------------------------------------------------------------------------------- TF
def read_static_transforms(
    reader: Any, path: Path, topic: str = "/tf_static"
) -> dict[tuple[str, str], np.ndarray]:
    """``{(parent, child): T_parent_child}`` of every transform on ``/tf_static`` in an open bag."""
    out: dict[tuple[str, str], np.ndarray] = {}
    for _, msgtype, _, raw in iter_messages(reader, path, [topic]):
        if msgtype != "tf2_msgs/msg/TFMessage":
            raise TopicTypeError(f"{path}: topic {topic} has type {msgtype}, expected tf2_msgs/msg/TFMessage")
        for tf in deserialize(raw, msgtype).transforms:
            out[(tf.header.frame_id.lstrip("/"), tf.child_frame_id.lstrip("/"))] = transform_to_matrix(
                tf.transform
            )
    return out


def lookup_transform(transforms: dict[tuple[str, str], np.ndarray], target: str, source: str) -> np.ndarray:
    """``T_target_source`` through a chain of static transforms (breadth-first over both directions)."""
    from depth_nodes.core.transforms import invert

    target, source = target.lstrip("/"), source.lstrip("/")
    edges: dict[str, list[tuple[str, np.ndarray]]] = {}
    for (parent, child), T in transforms.items():
        edges.setdefault(child, []).append((parent, T))  # child -> parent: T_parent_child
        edges.setdefault(parent, []).append((child, invert(T)))
    # Walk from source towards target accumulating T_frame_source.
    frontier, seen = [(source, np.eye(4))], {source}
    while frontier:
        frame, T = frontier.pop(0)
        if frame == target:
            return T
        for nxt, T_step in edges.get(frame, []):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append((nxt, T_step @ T))
    known = sorted({f for pair in transforms for f in pair})
    raise BagError(f"no static transform chain from {source!r} to {target!r} (frames on /tf_static: {known})")
