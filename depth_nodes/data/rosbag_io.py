"""rosbag2 I/O shared by ``kitti2bag``, ``play``, ``record`` and ``demo``, over the ``rosbags`` library.

``rosbags`` reads and writes standard rosbag2 directories (``metadata.yaml`` + one ``.mcap`` or ``.db3``
file) without a ROS install, so the same bags open in ``ros2 bag``. This module adds what the tools need on
top of it:

- :class:`BagWriteSession`: writes into a staging directory and renames it to the final name only when the
  bag is closed cleanly, so a failed or killed run never leaves a bag that looks complete.
- :func:`open_bag` / :func:`read_summary` / :func:`verify_bag`: open a bag with errors that name the file
  (missing, not a bag, truncated or corrupt), list its topics and check that its ``metadata.yaml`` agrees
  with what the storage file really holds.
- Message builders for the KITTI topics (Image, CameraInfo, PointCloud2, TFMessage, Clock) as ``rosbags``
  message objects, and decoders for the few encodings the demo reads back.

Nothing here imports rclpy.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from depth_nodes.core.transforms import matrix_to_quaternion, validate_transform
from depth_nodes.errors import DataFormatError, DepthNodesError

#: storage name (CLI / metadata.yaml ``storage_identifier``) -> file suffix of the storage file.
STORAGE_SUFFIX = {"mcap": ".mcap", "sqlite3": ".db3"}

#: sensor_msgs/PointField datatype codes -> numpy dtype (little endian; big endian handled by the reader).
POINTFIELD_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
FLOAT32 = 7


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


# ---------------------------------------------------------------------------------------------- builders
def _header(stamp_ns: int, frame_id: str):
    ts = typestore().types
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return ts["std_msgs/msg/Header"](
        stamp=ts["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=frame_id
    )


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header_stamp_ns(raw: bytes | memoryview) -> int:
    """Stamp of a serialized message that starts with a ``std_msgs/Header`` (Image, PointCloud2, ...),
    read from the CDR bytes without decoding the rest (a 1.4 MB image costs nothing)."""
    if len(raw) < 12:
        raise BagError(f"serialized message of {len(raw)} bytes is too short for a header")
    little = raw[1] == 1  # CDR encapsulation: 0x0001 = little endian, 0x0000 = big endian
    sec, nsec = struct.unpack_from("<iI" if little else ">iI", raw, 4)
    return sec * 1_000_000_000 + nsec


def image_msg(image: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8"):
    """``sensor_msgs/Image`` from an H x W x 3 uint8 (``rgb8``/``bgr8``) or H x W float32 (``32FC1``) array."""
    image = np.ascontiguousarray(image)
    if image.ndim == 3:
        channels = image.shape[2]
    elif image.ndim == 2:
        channels = 1
    else:
        raise DataFormatError(f"image must be H x W or H x W x C, got shape {image.shape}")
    h, w = image.shape[:2]
    return msg_class("sensor_msgs/msg/Image")(
        header=_header(stamp_ns, frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * channels * image.dtype.itemsize,
        data=image.view(np.uint8).reshape(-1),
    )


def camera_info_msg(K: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str, P=None, R=None):
    """``sensor_msgs/CameraInfo`` of a rectified camera (no distortion: ``plumb_bob`` with D = 0).

    ``P`` defaults to ``[K | 0]`` and ``R`` to identity: the image is already rectified and the frame's pose
    (including any stereo baseline) is carried by TF, so consumers project with K alone.
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.hstack([K, np.zeros((3, 1))]) if P is None else np.asarray(P, np.float64).reshape(3, 4)
    R = np.eye(3) if R is None else np.asarray(R, np.float64).reshape(3, 3)
    ts = typestore().types
    return ts["sensor_msgs/msg/CameraInfo"](
        header=_header(stamp_ns, frame_id),
        height=int(height),
        width=int(width),
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=K.reshape(-1),
        r=R.reshape(-1),
        p=P.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=ts["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def pointcloud_msg(points: np.ndarray, stamp_ns: int, frame_id: str, names=("x", "y", "z", "intensity")):
    """Unorganized ``sensor_msgs/PointCloud2`` of N x len(names) float32 values (default x, y, z, intensity)."""
    pts = np.ascontiguousarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != len(names):
        raise DataFormatError(f"points must be N x {len(names)} float32, got shape {pts.shape}")
    Field = msg_class("sensor_msgs/msg/PointField")
    fields = [Field(name=n, offset=4 * i, datatype=FLOAT32, count=1) for i, n in enumerate(names)]
    step = 4 * len(names)
    return msg_class("sensor_msgs/msg/PointCloud2")(
        header=_header(stamp_ns, frame_id),
        height=1,
        width=pts.shape[0],
        fields=fields,
        is_bigendian=False,
        point_step=step,
        row_step=step * pts.shape[0],
        data=pts.view(np.uint8).reshape(-1),
        is_dense=bool(np.all(np.isfinite(pts))),
    )


def transform_stamped(T_parent_child: np.ndarray, stamp_ns: int, parent: str, child: str):
    """``geometry_msgs/TransformStamped`` for the 4x4 ``T_parent_child`` (maps child-frame points to parent)."""
    T = validate_transform(T_parent_child, f"{parent} <- {child}")
    q = matrix_to_quaternion(T[:3, :3])
    ts = typestore().types
    return ts["geometry_msgs/msg/TransformStamped"](
        header=_header(stamp_ns, parent),
        child_frame_id=child,
        transform=ts["geometry_msgs/msg/Transform"](
            translation=ts["geometry_msgs/msg/Vector3"](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
            rotation=ts["geometry_msgs/msg/Quaternion"](
                x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])
            ),
        ),
    )


def tf_message(transforms: list):
    return msg_class("tf2_msgs/msg/TFMessage")(transforms=transforms)


def clock_msg(stamp_ns: int):
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    ts = typestore().types
    return ts["rosgraph_msgs/msg/Clock"](clock=ts["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec))


# ---------------------------------------------------------------------------------------------- decoders
def transform_to_matrix(tf: Any) -> np.ndarray:
    """4x4 ``T_parent_child`` from a ``geometry_msgs/Transform``."""
    from depth_nodes.core.transforms import quaternion_to_matrix

    r, t = tf.rotation, tf.translation
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(np.array([r.x, r.y, r.z, r.w]))
    T[:3, 3] = (t.x, t.y, t.z)
    return T


def image_from_msg(msg: Any) -> np.ndarray:
    """H x W (x C) array of a rosbags Image in rgb8/bgr8 (-> RGB), mono8, 32FC1 or 16UC1 (-> metres)."""
    enc = msg.encoding.lower()
    layouts = {
        "rgb8": ("u1", 3),
        "bgr8": ("u1", 3),
        "mono8": ("u1", 1),
        "32fc1": ("f4", 1),
        "16uc1": ("u2", 1),
    }
    if enc not in layouts:
        raise DataFormatError(f"image encoding {msg.encoding!r} not supported here ({', '.join(layouts)})")
    kind, ch = layouts[enc]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    row = w * ch * dtype.itemsize
    if step < row or data.size < step * h:
        raise DataFormatError(f"image {w}x{h} {msg.encoding}: step {step} / {data.size} bytes too small")
    rows = data[: step * h].reshape(h, step)[:, :row]
    img = (
        np.ascontiguousarray(rows)
        .view(dtype)
        .reshape((h, w, ch) if ch > 1 else (h, w))
        .astype(dtype.newbyteorder("="))
    )
    if enc == "bgr8":
        img = img[..., ::-1]
    if enc == "16uc1":
        img = img.astype(np.float32) / 1000.0
    return np.ascontiguousarray(img)


def pointcloud_field_raw(msg: Any, name: str) -> np.ndarray:
    """One PointCloud2 field in its own dtype (native byte order), e.g. a packed float32 ``rgb``."""
    by_name = {f.name: f for f in msg.fields}
    if name not in by_name:
        raise DataFormatError(f"PointCloud2 lacks field {name!r}; has {sorted(by_name)}")
    f = by_name[name]
    dtype = np.dtype(POINTFIELD_DTYPES[f.datatype]).newbyteorder(">" if msg.is_bigendian else "<")
    n, step = int(msg.width) * int(msg.height), int(msg.point_step)
    data = np.asarray(msg.data, dtype=np.uint8)
    if data.size < n * step:
        raise DataFormatError(f"PointCloud2 data holds {data.size} bytes, needs {n * step}")
    rec = np.ndarray(
        (n,), dtype=dtype, buffer=np.ascontiguousarray(data[: n * step]), offset=f.offset, strides=(step,)
    )
    return rec.astype(dtype.newbyteorder("="))


def pointcloud_fields(msg: Any, names: Iterable[str]) -> np.ndarray:
    """N x len(names) float32 array of the named fields of a PointCloud2 (any order/offsets/padding/endianness)."""
    by_name = {f.name: f for f in msg.fields}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DataFormatError(f"PointCloud2 lacks field(s) {missing}; has {sorted(by_name)}")
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype(
        {
            "names": list(names),
            "formats": [order + POINTFIELD_DTYPES[by_name[n].datatype] for n in names],
            "offsets": [by_name[n].offset for n in names],
            "itemsize": int(msg.point_step),
        }
    )
    n = int(msg.width) * int(msg.height)
    data = np.asarray(msg.data, dtype=np.uint8)
    if data.size < n * int(msg.point_step):
        raise DataFormatError(f"PointCloud2 data holds {data.size} bytes, needs {n * int(msg.point_step)}")
    rec = np.frombuffer(data[: n * int(msg.point_step)].tobytes(), dtype=dtype, count=n)
    return np.stack([rec[name].astype(np.float32) for name in names], axis=1)


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
