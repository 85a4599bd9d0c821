"""``/diagnostics`` tells the truth: one test per mode and per image-rejection cause, and the latency figure.

Real node process, real DiagnosticArray messages (the node's level byte, message and key/values). The
level follows what was *published* in the last window (1 s with the test parameters), so every wait
keeps feeding inputs at 10 Hz until a full window of the new situation has passed.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from node_io import CAMERA_FRAME, feed_until, running_node
from std_msgs.msg import Header

from depth_nodes.ros.builders.stamp import ns_to_stamp

pytestmark = pytest.mark.ros

OK, WARN, ERROR = "0", "1", "2"


@pytest.fixture(scope="module")
def node():
    with running_node() as n:
        yield n


def settled(mode: str, level: str):
    """The window holds only frames of ``mode`` (no stale frames of the previous situation)."""
    return lambda d: d["mode"] == mode and d["level"] == level and "not published" not in d["message"]


def guided(client, sender) -> dict:
    return feed_until(client, sender.send, settled("guided", OK))


def test_guided_is_ok(node) -> None:
    _, client, sender = node
    d = guided(client, sender)
    assert d["message"] == "mode guided: camera and fresh LiDAR", d
    assert d["published_mode"] == "guided" and int(d["published_in_window"]) >= 1


def test_lidar_only_is_warn(node) -> None:
    _, client, sender = node
    guided(client, sender)
    d = feed_until(client, lambda: sender.send(image=False), settled("lidar_only", WARN))
    assert d["published_mode"] == "lidar_only", d
    assert "camera stale (no image for > max_image_age_s=0.5 s)" in d["message"], d
    assert float(d["image_age_s"]) > 0.5


def test_none_when_nothing_arrives_is_error(node) -> None:
    _, client, sender = node
    guided(client, sender)
    d = feed_until(client, None, lambda d: d["mode"] == "none")
    assert d["level"] == ERROR and "no camera image and no LiDAR scan arriving" in d["message"], d
    assert d["message"].startswith("no depth published"), d


def _bad_future(sender):
    return sender.image(ns_to_stamp(time.time_ns() + 10 * 10**9))  # max_future_stamp_s = 2 s


def _bad_size(sender):
    """An image of another size than the CameraInfo of its stamp."""
    stamp = ns_to_stamp(time.time_ns())
    return sender.info(stamp), sender.image(stamp, rgb=np.zeros((48, 160, 3), np.uint8))


def _bad_info_stamp(sender):
    """A driver stamping its CameraInfo 3 ms after the image (camera_info_stamp_tolerance_s: 0, exact)."""
    t = time.time_ns()
    return sender.info(ns_to_stamp(t + 3_000_000)), sender.image(ns_to_stamp(t))


def _bad_encoding(sender):
    msg = sender.image(ns_to_stamp(time.time_ns()))
    msg.encoding = "yuv_fancy"
    return msg


def _bad_no_frame(sender):
    """Image and CameraInfo both with an empty frame_id: the depth would have no frame to be in."""
    stamp = ns_to_stamp(time.time_ns())
    info, image = sender.info(stamp), sender.image(stamp)
    info.header.frame_id = image.header.frame_id = ""
    return info, image


@pytest.mark.parametrize(
    ("make_bad", "cause", "text"),
    [
        (_bad_future, "future_stamp", "future stamp: stamp is"),
        (_bad_size, "size_mismatch", "size mismatch: image is 160x48 but CameraInfo says 320x96"),
        (_bad_encoding, "undecodable", "undecodable:"),
        (_bad_no_frame, "no_frame_id", "no frame_id: empty frame_id on image and CameraInfo"),
        (_bad_info_stamp, "unmatched_camera_info", "unmatched camera_info: no CameraInfo stamped within"),
    ],
    ids=["future_stamp", "size_mismatch", "bad_encoding", "no_frame_id", "unmatched_camera_info"],
)
def test_rejected_images_leave_the_camera_stale_and_say_why(node, make_bad, cause, text) -> None:
    """Images keep arriving but are rejected: the camera is not fresh (lidar_only, WARN) and the message says why."""
    _, client, sender = node
    guided(client, sender)
    before = int(client.latest_diagnostics().get(f"images_rejected_{cause}", "0"))

    def feed() -> None:
        stamp = ns_to_stamp(time.time_ns())
        client.points_pub.publish(sender.cloud(stamp))
        bad = make_bad(sender)  # an Image, or a (CameraInfo, Image) pair when the CameraInfo is part of it
        info, image = bad if isinstance(bad, tuple) else (sender.info(stamp), bad)
        client.info_pub.publish(info)
        client.image_pub.publish(image)

    d = feed_until(
        client, feed, lambda d: settled("lidar_only", WARN)(d) and "camera images rejected" in d["message"]
    )
    assert f"camera images rejected: {text}" in d["message"], d
    if cause == "undecodable":
        assert "yuv_fancy" in d["message"], d
    assert "camera stale (images rejected:" in d["mode_reason"], d
    assert int(d[f"images_rejected_{cause}"]) > before and float(d["image_age_s"]) > 0.5, d
    assert float(d["image_received_rate_hz"]) > 5.0, d  # they do arrive


def test_images_before_any_camera_info_are_rejected_and_name_the_topic() -> None:
    """A node that never received a CameraInfo rejects every image ("no camera_info", naming the resolved
    topic it waits on), publishes no depth and says so. Its own node (the shared one has a camera), in its
    own namespace so that neither node hears the other's inputs or diagnostics."""
    with running_node(namespace="/no_info") as (proc, client, sender):

        def feed() -> None:
            stamp = ns_to_stamp(time.time_ns())
            client.points_pub.publish(sender.cloud(stamp))
            client.image_pub.publish(sender.image(stamp))

        d = feed_until(  # both at once: the first report naming the rejection can predate the rate window
            client,
            feed,
            lambda d: "camera images rejected" in d["message"] and float(d["image_received_rate_hz"]) > 5.0,
        )
        why = "no CameraInfo received yet on '/no_info/camera_info'"
        assert f"camera images rejected: no camera_info: {why}" in d["message"], d
        assert int(d["images_rejected_no_camera_info"]) >= 1 and float(d["image_received_rate_hz"]) > 5.0, d
        assert d["level"] == ERROR and d["camera"] == "none yet" and int(d["published_in_window"]) == 0, d
        assert why in proc.output(), proc.output()[-2000:]  # the rate-limited warning in the node's log


def test_header_of_published_camera_info_is_the_frames(node) -> None:
    """depth/camera_info carries the frame's stamp (a copy: the received CameraInfo is never modified)."""
    _, client, sender = node
    guided(client, sender)
    stamp_ns = sender.send()
    info = client.wait_stamp("depth/camera_info", stamp_ns)
    assert info.header.frame_id == CAMERA_FRAME and (info.width, info.height) == (320, 96)
    assert isinstance(info.header, Header)
