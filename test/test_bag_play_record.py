"""play / record with real rclpy processes (Fast DDS on loopback, ROS_DOMAIN_ID 44)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from _bag_fixtures import make_raw_drive

from depth_nodes.cli import main
from depth_nodes.data import kitti2bag as k2b
from depth_nodes.data import rosbag_io as rb
from depth_nodes.msgs.image import image_to_rgb

rclpy = pytest.importorskip("rclpy")
DOMAIN = 44
REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(DOMAIN)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "depth_nodes.cli", *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class TestNode:
    """An rclpy node in a private context, spun in a background thread."""

    __test__ = False

    def __init__(self, name: str) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down mid-spin
                return

    def close(self) -> None:
        self.context.try_shutdown()
        self.thread.join(timeout=2)


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _raw_messages(bag: Path) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    with rb.open_bag(bag) as reader:
        for topic, _, _, raw in rb.iter_messages(reader, bag):
            out.setdefault(topic, []).append(bytes(raw))
    return out


@pytest.fixture
def test_node():
    node = TestNode("bag_test_node")
    yield node
    node.close()


# ---------------------------------------------------------------------------------------------- record
@pytest.mark.ros
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_record_writes_every_message_and_closes_cleanly_on_signal(tmp_path, test_node, sig):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    out = tmp_path / "rec"
    proc = _cli("record", "-o", str(out), "/bagtest/text", "/bagtest/image")
    try:
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        pub_s = test_node.node.create_publisher(String, "/bagtest/text", qos)
        pub_i = test_node.node.create_publisher(Image, "/bagtest/image", qos)
        _wait(
            lambda: pub_s.get_subscription_count() and pub_i.get_subscription_count(),
            20,
            "recorder subscriptions",
        )
        rng = np.random.default_rng(1)
        images = [rng.integers(0, 255, (6, 8, 3), dtype=np.uint8) for _ in range(15)]
        for i, img in enumerate(images):
            pub_s.publish(String(data=f"message {i}"))
            msg = Image(height=6, width=8, encoding="rgb8", step=24)
            msg.header.frame_id = "cam"
            msg.header.stamp.sec = 100 + i
            msg.data = img.tobytes()
            pub_i.publish(msg)
            time.sleep(0.01)
        from rclpy.duration import Duration

        assert pub_s.wait_for_all_acked(Duration(seconds=5)) and pub_i.wait_for_all_acked(Duration(seconds=5))
        assert not (out / "metadata.yaml").exists()  # still recording: no complete-looking bag yet
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert f"interrupted by {sig.name}" in stdout and "bag closed and complete" in stdout
    assert not (tmp_path / "rec.partial").exists()
    summary = rb.verify_bag(out)
    assert summary.storage == "mcap"
    assert {t: (s.msgtype, s.count) for t, s in summary.topics.items()} == {
        "/bagtest/text": ("std_msgs/msg/String", 15),
        "/bagtest/image": ("sensor_msgs/msg/Image", 15),
    }
    assert summary.topics["/bagtest/text"].qos[0].reliability.name == "RELIABLE"
    raw = _raw_messages(out)
    texts = [rb.deserialize(r, "std_msgs/msg/String").data for r in raw["/bagtest/text"]]
    assert texts == [f"message {i}" for i in range(15)]
    for i, r in enumerate(raw["/bagtest/image"]):
        msg = rb.deserialize(r, "sensor_msgs/msg/Image")
        assert msg.header.stamp.sec == 100 + i
        np.testing.assert_array_equal(image_to_rgb(msg), images[i])


# ---------------------------------------------------------------------------------------------- play
@pytest.fixture(scope="module")
def timed_bag(tmp_path_factory) -> Path:
    """10 strings 100 ms apart (bag time), one image, and /tf_static."""
    out = tmp_path_factory.mktemp("play") / "timed"
    t0 = 1_700_000_000_000_000_000
    with rb.BagWriteSession(out) as bag:
        bag.add_topic("/bagtest/text", "std_msgs/msg/String", [rb.reliable_qos(10)])
        bag.add_topic("/bagtest/image", "sensor_msgs/msg/Image")
        bag.add_topic("/tf_static", "tf2_msgs/msg/TFMessage", [rb.reliable_qos(1, transient_local=True)])
        bag.write("/tf_static", t0, rb.tf_message([rb.transform_stamped(np.eye(4), t0, "a", "b")]))
        for i in range(10):
            bag.write(
                "/bagtest/text", t0 + i * 100_000_000, rb.msg_class("std_msgs/msg/String")(data=f"m{i}")
            )
        bag.write("/bagtest/image", t0 + 5, rb.image_msg(np.full((4, 4, 3), 7, np.uint8), t0 + 5, "cam"))
    return out


@pytest.mark.ros
def test_play_publishes_recorded_bytes_at_recorded_timing_with_clock(timed_bag, test_node):
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    got: list[tuple[float, str]] = []
    clock: list[int] = []
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    test_node.node.create_subscription(
        String, "/bagtest/text", lambda m: got.append((time.monotonic(), m.data)), qos
    )
    images = []
    test_node.node.create_subscription(Image, "/bagtest/image", images.append, qos_profile_sensor_data)
    test_node.node.create_subscription(
        Clock, "/clock", lambda m: clock.append(m.clock.sec * 10**9 + m.clock.nanosec), 50
    )
    proc = _cli("play", str(timed_bag), "--rate", "2", "--clock", "50", "--wait-for-subscribers", "20")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    _wait(lambda: len(got) == 10, 5, "10 strings")
    assert [d for _, d in got] == [f"m{i}" for i in range(10)]
    _wait(lambda: len(images) == 1, 5, "the image")
    assert images[0].encoding == "rgb8" and bytes(images[0].data) == bytes([7] * 48)
    gaps = np.diff([t for t, _ in got])
    assert np.median(gaps) == pytest.approx(0.05, abs=0.02)  # 100 ms of bag time at --rate 2
    assert (got[-1][0] - got[0][0]) == pytest.approx(0.45, abs=0.15)
    t0 = 1_700_000_000_000_000_000
    assert clock and all(t0 <= c <= t0 + 900_000_000 for c in clock)
    assert np.all(np.diff(clock) >= 0) and len(clock) >= 10  # 50 Hz over ~0.45 s
    assert "/bagtest/text" in stdout and "10" in stdout
    try:
        import tf2_msgs  # noqa: F401
    except ModuleNotFoundError:
        assert "skipping /tf_static" in stderr and "tf2_msgs" in stderr


@pytest.mark.ros
def test_play_loop_repeats_until_sigint(timed_bag, test_node):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    got: list[str] = []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    test_node.node.create_subscription(String, "/bagtest/text", lambda m: got.append(m.data), qos)
    proc = _cli(
        "play",
        str(timed_bag),
        "--topics",
        "/bagtest/text",
        "--loop",
        "--rate",
        "20",
        "--wait-for-subscribers",
        "20",
    )
    try:
        _wait(lambda: len(got) >= 25, 30, "two and a half passes of the bag")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "stopped by SIGINT" in stdout
    assert got[:20] == [f"m{i}" for i in range(10)] * 2  # each pass replays the bag from its start


@pytest.mark.ros
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_kitti_bag_play_to_record_is_byte_identical(tmp_path, storage):
    drive = make_raw_drive(tmp_path / "raw", n=4)
    src = k2b.convert(k2b.load_drive(drive), tmp_path / "src", storage, progress=False)
    topics = [k2b.IMAGE_TOPIC, k2b.INFO_TOPIC, k2b.POINTS_TOPIC]
    out = tmp_path / "rec"
    rec = _cli("record", "-o", str(out), "--storage", storage, "--max-messages", "4", *topics)
    try:
        # The recorder subscribes once it discovers the player's publishers: the player waits for that.
        player = _cli("play", str(src), "--topics", *topics, "--wait-for-subscribers", "20", "--rate", "2")
        _, perr = player.communicate(timeout=60)
        assert player.returncode == 0, perr
        rout, rerr = rec.communicate(timeout=30)
    finally:
        for p in (rec,):
            if p.poll() is None:
                p.kill()
    assert rec.returncode == 0, rerr
    assert "interrupted" not in rout
    summary = rb.verify_bag(out)
    assert summary.storage == storage
    original, recorded = _raw_messages(src), _raw_messages(out)
    for topic in topics:
        assert len(recorded[topic]) == len(original[topic]) == 4, topic
        for rec_raw, orig_raw in zip(recorded[topic], original[topic], strict=True):
            # Same CDR bytes; the middleware pads the payload with zeros to a multiple of 4 bytes.
            assert rec_raw[: len(orig_raw)] == orig_raw, topic
            assert len(rec_raw) - len(orig_raw) < 4 and not any(rec_raw[len(orig_raw) :]), topic


# ---------------------------------------------------------------------------------------------- bad input
def test_play_bad_bags_fail_clearly(tmp_path, timed_bag, capsys):
    assert main(["play", str(tmp_path / "missing")]) == 1
    assert "bag not found" in capsys.readouterr().err
    with rb.BagWriteSession(tmp_path / "empty") as bag:
        bag.add_topic("/x", "std_msgs/msg/String")
    assert main(["play", str(tmp_path / "empty")]) == 1
    assert "empty" in capsys.readouterr().err
    assert main(["play", str(timed_bag), "--topics", "/nope"]) == 1
    assert "/nope not in the bag" in capsys.readouterr().err
    assert main(["play", str(timed_bag), "--rate", "0"]) == 1
    assert "--rate" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.yaml").write_text((timed_bag / "metadata.yaml").read_text())
    (broken / "timed.mcap").write_bytes((timed_bag / "timed.mcap").read_bytes()[:100])
    assert main(["play", str(broken)]) == 1
    assert "broken" in capsys.readouterr().err


def test_record_refuses_existing_output(tmp_path, capsys):
    (tmp_path / "rec").mkdir()
    assert main(["record", "-o", str(tmp_path / "rec"), "/x"]) == 1
    assert "exists already" in capsys.readouterr().err


@pytest.mark.ros
def test_record_with_no_publisher_writes_no_bag(tmp_path):
    proc = _cli("record", "-o", str(tmp_path / "rec"), "/bagtest/nobody", "--duration", "1.5")
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "no message arrived on /bagtest/nobody" in stderr
    assert list(tmp_path.iterdir()) == []
