"""The node never dies on bad input: >= 1,000 malformed messages of >= 12 kinds interleaved with good frames."""

from __future__ import annotations

import itertools
import re
import time

import node_scene as scene
import numpy as np
import pytest
from node_io import CAMERA_FRAME, depth_array, start_node, stop_node
from sensor_msgs.msg import PointField
from std_msgs.msg import Header

from depth_nodes.ros.builders.image import numpy_to_image
from depth_nodes.ros.builders.stamp import ns_to_stamp

pytestmark = pytest.mark.ros

WARNING_PERIOD_S = 5.0
N_GOOD = 40
BAD_PER_GAP = 26  # 40 x 26 = 1,040 malformed messages


def _stamp(offset_s: float = 0.0):
    return ns_to_stamp(time.time_ns() + int(offset_s * 1e9))


class Malformed:
    """Factories of malformed messages; each returns ``(publisher_name, message)``."""

    def __init__(self, sender) -> None:
        self.s = sender
        self.cam = scene.camera()
        self.good_stamp_ns = time.time_ns()  # the last good frame's stamp (the test loop sets it)

    def _image(self, **changes):
        msg = self.s.image(_stamp())
        for k, v in changes.items():
            setattr(msg, k, v)
        return "image", msg

    def unknown_encoding(self):
        return self._image(encoding="yuv_fancy")

    def depth_on_image_topic(self):
        msg = numpy_to_image(scene.dense_depth(), "32FC1", Header(stamp=_stamp(), frame_id=CAMERA_FRAME))
        return "image", msg

    def step_too_small(self):
        return self._image(step=scene.WIDTH * 3 - 7)

    def truncated_image(self):
        name, msg = self._image()
        msg.data = msg.data[: len(msg.data) // 2]
        return name, msg

    def zero_size_image(self):
        return self._image(width=0, height=0, step=0)

    def image_size_mismatch(self):
        # Stamped like the last good frame: paired with its CameraInfo (by stamp), then the size check rejects it.
        small = np.zeros((48, 160, 3), np.uint8)
        stamp = ns_to_stamp(self.good_stamp_ns)
        return "image", numpy_to_image(small, "rgb8", Header(stamp=stamp, frame_id=CAMERA_FRAME))

    def future_image(self):
        return "image", self.s.image(_stamp(+30.0))

    def _cloud(self, **changes):
        msg = self.s.cloud(_stamp())
        for k, v in changes.items():
            setattr(msg, k, v)
        return "points", msg

    def nan_inf_points(self):
        pts = np.full((500, 3), np.nan, np.float32)
        pts[::2] = np.inf
        return "points", self.s.cloud(_stamp(), pts)

    def missing_xyz(self):
        return self._cloud(
            fields=[PointField(name="intensity", offset=0, datatype=PointField.FLOAT32, count=1)]
        )

    def unknown_datatype(self):
        name, msg = self._cloud()
        msg.fields = [PointField(name=f.name, offset=f.offset, datatype=42, count=1) for f in msg.fields]
        return name, msg

    def truncated_cloud(self):
        name, msg = self._cloud()
        msg.data = msg.data[: len(msg.data) - 5]
        return name, msg

    def big_endian_garbage_cloud(self):
        # Little-endian float64 bytes flagged big-endian: decodes to meaningless values (old stamp).
        pts = np.random.default_rng(1).normal(0, 5, (300, 3))
        msg = self.s.cloud(_stamp(-20.0))
        msg.fields = [
            PointField(name=n, offset=8 * i, datatype=PointField.FLOAT64, count=1)
            for i, n in enumerate("xyz")
        ]
        msg.point_step, msg.width, msg.height, msg.row_step = 24, 300, 1, 24 * 300
        msg.is_bigendian = True
        msg.data = pts.astype("<f8").tobytes()
        return "points", msg

    def unknown_frame(self):
        return "points", self.s.cloud(_stamp(), frame_id="not_the_lidar")

    def empty_frame(self):
        return "points", self.s.cloud(_stamp(), frame_id="")

    def old_scan(self):
        return "points", self.s.cloud(_stamp(-10.0))  # older than max_lidar_age_s: must never pair

    def future_scan(self):
        return "points", self.s.cloud(_stamp(+30.0))

    def zero_k(self):
        msg = self.s.info(_stamp())
        msg.k = [0.0] * 9
        return "camera_info", msg

    def bad_distortion(self):
        msg = self.s.info(_stamp())
        msg.distortion_model = "plumb_bob"
        msg.d = [0.1, 0.2]
        return "camera_info", msg

    KINDS = (
        "unknown_encoding", "depth_on_image_topic", "step_too_small", "truncated_image", "zero_size_image",
        "image_size_mismatch", "future_image", "nan_inf_points", "missing_xyz", "unknown_datatype",
        "truncated_cloud", "big_endian_garbage_cloud", "unknown_frame", "empty_frame", "old_scan",
        "future_scan", "zero_k", "bad_distortion",
    )  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_node():
    deep = {f"{t}_qos_depth": 100 for t in ("image", "points", "camera_info")}  # every bad message arrives
    proc, client, sender = start_node(
        # input_timeout_s: the checks after the last frame must not see the node go idle into `none`.
        {"warning_period_s": WARNING_PERIOD_S, "cloud_decimation": 4, "input_timeout_s": 60.0, **deep},
        input_depth=100,
    )
    try:
        yield proc, client, sender
    finally:
        stop_node(proc, client)


def test_node_survives_malformed_input_and_publishes_every_good_frame(fuzz_node) -> None:
    proc, client, sender = fuzz_node
    bad = Malformed(sender)
    pubs = {"image": client.image_pub, "points": client.points_pub, "camera_info": client.info_pub}
    t0 = time.monotonic()

    # Images before any CameraInfo: dropped with a warning, never a crash.
    for _ in range(20):
        client.image_pub.publish(sender.image(_stamp()))
    n_bad = 20
    client.wait_for(
        lambda: int(client.latest_diagnostics().get("rejected_messages", 0)) >= 20,
        10.0,
        "early images rejected",
    )
    kinds_sent = {"image_before_camera_info"}
    legal = 0  # old scans and (meaningless but well-formed) big-endian clouds are accepted, never paired

    cycle = itertools.cycle(Malformed.KINDS)
    missing = []
    for i in range(N_GOOD):
        stamp = sender.send()
        bad.good_stamp_ns = stamp
        try:
            msg = client.wait_stamp("depth/image_rect", stamp, timeout=10.0)
        except TimeoutError:
            missing.append(i)
            continue
        if i % 10 == 0:  # spot-check content of good frames between the garbage
            depth = depth_array(msg)
            hit = sender.sparse > 0
            assert np.abs(depth[hit] - sender.sparse[hit]).max() < 0.01
        for _ in range(BAD_PER_GAP):
            kind = next(cycle)
            topic, m = getattr(bad, kind)()
            pubs[topic].publish(m)
            kinds_sent.add(kind)
            n_bad += 1
            legal += kind in ("old_scan", "big_endian_garbage_cloud")
        assert proc.alive(), proc.output()[-3000:]
    duration = time.monotonic() - t0

    assert n_bad >= 1000 and len(kinds_sent) >= 12
    assert not missing, f"good frames not published: {missing}\n{proc.output()[-3000:]}"
    assert proc.alive()

    # Every malformed kind was noticed and logged rate-limited: one line per kind per warning period,
    # not one per message (the counts in /diagnostics show how many were seen).
    client.wait_mode("guided", 5.0)
    out = proc.output()
    warn_lines = [line for line in out.splitlines() if "[WARN]" in line]
    problem_lines = [line for line in warn_lines if "dropped" in line or "keeping the previous" in line]
    n_keys = len(Malformed.KINDS) + 1
    bound = n_keys * (int(duration / WARNING_PERIOD_S) + 1)
    assert 12 <= len(problem_lines) <= bound, (len(problem_lines), bound, duration)
    assert len(problem_lines) < n_bad / 20
    for pattern in (
        r"encoding 'yuv_fancy'",
        r"no CameraInfo received yet",
        r"in the future",
        r"not lidar_frame",
        r"no finite points",
        r"CameraInfo says",
        r"camera_info: .*keeping the previous",
    ):
        assert re.search(pattern, out), (pattern, out[:3000])
    expected = n_bad - legal
    try:
        client.wait_for(
            lambda: int(client.latest_diagnostics().get("rejected_messages", 0)) >= expected,
            10.0,
            "rejections",
        )
    except TimeoutError:
        pass  # on a loaded machine a few reliable samples may still be in repair; checked below
    rejected = int(client.latest_diagnostics()["rejected_messages"])
    # Every rejection is a malformed message (nothing else is counted); nearly all of them arrived.
    assert 0.95 * expected <= rejected <= expected, (rejected, expected)
    client.wait_for(
        lambda: int(client.latest_diagnostics().get("frames_published", 0)) >= N_GOOD, 10.0, "published count"
    )
    assert client.latest_diagnostics()["mode"] == "guided"
