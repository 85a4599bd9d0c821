"""CameraInfo <-> CameraModel and stamp <-> ns conversions: round trips, variants, error paths."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")

from builtin_interfaces.msg import Time  # noqa: E402
from ros_msg_builders import header  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402

from depth_nodes.core.camera import CameraModel  # noqa: E402
from depth_nodes.errors import ConversionError  # noqa: E402
from depth_nodes.msgs.camera_info import camera_info_to_model  # noqa: E402
from depth_nodes.msgs.stamp import stamp_to_ns  # noqa: E402
from depth_nodes.ros.builders.camera_info import model_to_camera_info  # noqa: E402
from depth_nodes.ros.builders.stamp import ns_to_stamp  # noqa: E402

RNG = np.random.default_rng(7)
K = np.array([[721.5, 0.0, 609.5], [0.0, 721.5, 172.8], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------------------------- camera info
@pytest.mark.parametrize(
    ("model", "D"),
    [
        ("plumb_bob", [0.1, -0.2, 0.001, 0.002, 0.05]),
        ("rational_polynomial", [0.1, -0.2, 0.001, 0.002, 0.05, 0.01, 0.02, 0.003]),
        ("equidistant", [0.05, -0.01, 0.002, -0.0005]),
        ("none", []),
    ],
)
def test_camera_info_round_trip(model, D):
    cam = CameraModel(1216, 352, K, np.array(D), model)
    msg = model_to_camera_info(cam, header())
    assert msg.header.frame_id == "cam_optical" and (msg.width, msg.height) == (1216, 352)
    np.testing.assert_array_equal(np.reshape(msg.p, (3, 4))[:, :3], K)
    np.testing.assert_array_equal(msg.r, np.eye(3).reshape(-1))
    back = camera_info_to_model(msg)
    assert back.same_as(cam)
    pts = np.array([[1.0, 0.5, 5.0], [-2.0, 0.3, 10.0]])
    np.testing.assert_allclose(np.stack(back.project(pts)), np.stack(cam.project(pts)), rtol=1e-6)


def info(**kw) -> CameraInfo:
    base = dict(width=640, height=480, distortion_model="plumb_bob", d=[0.0] * 5, k=K.reshape(-1).tolist())
    base.update(kw)
    return CameraInfo(**base)


def test_camera_info_variants():
    assert camera_info_to_model(info(d=[])).distortion_model == "none"
    assert camera_info_to_model(info(distortion_model="", d=[])).distortion_model == "none"
    assert camera_info_to_model(info(d=[0.1, 0.0, 0.0, 0.0])).D.tolist() == [0.1, 0, 0, 0, 0]
    fisheye = camera_info_to_model(info(distortion_model="fisheye", d=[0.1, 0.01, 0.0, 0.0]))
    assert fisheye.distortion_model == "equidistant"
    rp14 = camera_info_to_model(info(distortion_model="rational_polynomial", d=[0.1] * 8 + [0.0] * 6))
    assert rp14.D.size == 8
    binned = camera_info_to_model(info(binning_x=2, binning_y=2))
    assert (binned.width, binned.height) == (320, 240)
    np.testing.assert_allclose(binned.K[:2], K[:2] / 2)
    roi = info()
    roi.roi.x_offset, roi.roi.y_offset, roi.roi.width, roi.roi.height = 100, 50, 200, 100
    cropped = camera_info_to_model(roi)
    assert (cropped.width, cropped.height, cropped.cx, cropped.cy) == (200, 100, K[0, 2] - 100, K[1, 2] - 50)
    roi.roi.x_offset = 500
    with pytest.raises(ConversionError, match="roi/binning: crop .* exceeds"):
        camera_info_to_model(roi)


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (info(k=[0.0] * 9), "K is all zero"),
        (info(width=0), "zero image size 0x480"),
        (info(distortion_model="mei", d=[0.1] * 5), "unknown distortion_model 'mei'"),
        (info(distortion_model="rational_polynomial", d=[0.1] * 5), "rational_polynomial needs"),
        (info(k=[-1.0, 0.0, 0.0, 0.0, 700.0, 0.0, 0.0, 0.0, 1.0]), "focal lengths must be > 0"),
        (info(d=[float("nan")] * 5), "NaN or inf"),
    ],
)
def test_camera_info_errors(msg, match):
    with pytest.raises(ConversionError, match=match):
        camera_info_to_model(msg)


# ---------------------------------------------------------------------------------------------- stamps
@pytest.mark.parametrize(
    "ns", [0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_123_456_789, -1, -1_500_000_000]
)
def test_stamp_round_trip(ns):
    stamp = ns_to_stamp(ns)
    assert isinstance(stamp, Time) and 0 <= stamp.nanosec < 1_000_000_000
    assert stamp.sec * 1_000_000_000 + stamp.nanosec == ns
    assert stamp_to_ns(stamp) == ns


def test_stamp_other_types_and_errors():
    from rclpy.time import Time as RclpyTime

    assert stamp_to_ns(RclpyTime(seconds=3, nanoseconds=5)) == 3_000_000_005
    assert stamp_to_ns(Time(sec=2, nanosec=7)) == 2_000_000_007
    with pytest.raises(ConversionError, match="int32"):
        ns_to_stamp(2**31 * 1_000_000_000)
    with pytest.raises(ConversionError, match="not a time stamp"):
        stamp_to_ns(1.5)
