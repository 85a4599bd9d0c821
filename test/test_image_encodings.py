"""What real cameras send: 16-bit data scaled by its real bit depth, YUV 4:2:2 and Bayer through OpenCV."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from depth_nodes.errors import ConversionError
from depth_nodes.msgs.image import compressed_to_rgb, detect_bit_depth, image_to_rgb


def image(arr: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    """A duck-typed Image (native byte order), rows padded with ``pad`` garbage bytes."""
    h, w = arr.shape[:2]
    rows = np.ascontiguousarray(arr).view(np.uint8).reshape(h, -1)
    data = np.hstack([rows, np.full((h, pad), 0xAB, np.uint8)])
    return SimpleNamespace(
        height=h, width=w, encoding=encoding, is_bigendian=0, step=data.shape[1], data=data.reshape(-1)
    )


@pytest.mark.parametrize("bits", [10, 12, 14, 16])
def test_16_bit_grey_is_scaled_by_its_detected_bit_depth(bits):
    top = (1 << bits) - 1
    grey = np.array([[0, top // 4, top // 2, top]], np.uint16)
    assert detect_bit_depth(grey) == bits
    out = image_to_rgb(image(grey, "mono16", pad=2))
    np.testing.assert_array_equal(out[0, :, 0], np.round(grey[0] * 255.0 / top).astype(np.uint8))
    assert out[0, -1, 0] == 255  # a 12-bit camera's white is white, not 15 (v >> 8)


def test_explicit_bit_depth_overrides_detection_and_saturates():
    grey = np.array([[0, 1023, 4095, 8000]], np.uint16)  # 8000: out of range for 12 bits -> 255
    out = image_to_rgb(image(grey, "16UC1"), bit_depth=12)
    np.testing.assert_array_equal(out[0, :, 1], [0, 64, 255, 255])
    with pytest.raises(ConversionError, match="bit depth must be 8..16"):
        image_to_rgb(image(grey, "mono16"), bit_depth=20)


@pytest.mark.parametrize("encoding", ["rgb16", "bgr16"])
def test_16_bit_colour_keeps_channel_order_and_scale(encoding):
    rgb12 = np.array([[[4095, 2048, 0], [0, 1024, 4095]]], np.uint16)
    arr = rgb12 if encoding == "rgb16" else rgb12[..., ::-1]
    out = image_to_rgb(image(arr, encoding), bit_depth=12)
    np.testing.assert_array_equal(out, np.round(rgb12 * 255.0 / 4095).astype(np.uint8))


def test_16_bit_png_is_scaled_like_raw_16_bit():
    grey = np.array([[0, 500, 1000, 1023]], np.uint16)
    ok, png = cv2.imencode(".png", grey)
    assert ok
    msg = SimpleNamespace(format="png", data=png.reshape(-1))
    np.testing.assert_array_equal(
        compressed_to_rgb(msg)[0, :, 0], image_to_rgb(image(grey, "mono16"))[0, :, 0]
    )


def _yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """Pack an RGB image as 4:2:2, BT.601 limited range (Y 16..235), what cameras send and OpenCV decodes."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    cb = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    cr = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u = (cb[:, 0::2] + cb[:, 1::2]) / 2
    v = (cr[:, 0::2] + cr[:, 1::2]) / 2
    out = np.empty(rgb.shape[:2] + (2,), np.float32)
    if order == "uyvy":
        out[:, 0::2, 0], out[:, 1::2, 0], out[:, 0::2, 1], out[:, 1::2, 1] = u, v, y[:, 0::2], y[:, 1::2]
    else:  # yuyv
        out[:, 0::2, 1], out[:, 1::2, 1], out[:, 0::2, 0], out[:, 1::2, 0] = u, v, y[:, 0::2], y[:, 1::2]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("encoding", "order"), [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv")]
)
def test_yuv422_encodings_decode_to_the_right_colours(encoding, order):
    # colour bars, constant over each pixel pair so that chroma subsampling loses nothing
    bars = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [20, 120, 220], [128, 128, 128]])
    rgb = np.repeat(np.repeat(bars[None].astype(np.uint8), 2, axis=1), 4, axis=0)  # 4 x 12 x 3
    out = image_to_rgb(image(_yuv422(rgb, order), encoding, pad=4))
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb).max() <= 3  # 8-bit YUV rounding
    # the other byte order gives wrong colours: the order really matters
    other = {"uyvy": "yuyv", "yuyv": "uyvy"}[order]
    assert np.abs(image_to_rgb(image(_yuv422(rgb, other), encoding)).astype(int) - rgb).max() > 50


def test_yuv422_odd_width_is_an_error():
    with pytest.raises(ConversionError, match="even width"):
        image_to_rgb(image(np.zeros((2, 3, 2), np.uint8), "yuyv"))


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_two_colour_scene_demosaics_to_its_colours(pattern):
    """Left half orange, right half teal, sampled through the ROS-named pattern (row by row from (0, 0))."""
    scene = np.zeros((12, 16, 3), np.uint16)
    scene[:, :8] = (230, 140, 30)
    scene[:, 8:] = (20, 160, 200)
    mosaic = np.empty((12, 16), np.uint16)
    for i, ch in enumerate(pattern):
        mosaic[i // 2 :: 2, i % 2 :: 2] = scene[i // 2 :: 2, i % 2 :: 2, "rgb".index(ch)]
    for bits, enc in ((8, f"bayer_{pattern}8"), (16, f"bayer_{pattern}16")):
        data = mosaic.astype(np.uint8) if bits == 8 else mosaic * 257
        out = image_to_rgb(image(data, enc))
        np.testing.assert_array_equal(out[2:-2, 2:6].reshape(-1, 3), np.tile([230, 140, 30], (32, 1)))
        np.testing.assert_array_equal(out[2:-2, 10:14].reshape(-1, 3), np.tile([20, 160, 200], (32, 1)))


def test_bit_depth_tracker_only_grows_and_a_setting_wins():
    from depth_nodes.msgs.image import BitDepthTracker

    tracker = BitDepthTracker()
    bright12, dark = np.array([[4000]], np.uint16), np.array([[900]], np.uint16)
    assert tracker.bit_depth(image(dark, "mono16")) == 10
    assert tracker.bit_depth(image(bright12, "mono16")) == 12
    assert tracker.bit_depth(image(dark, "mono16")) == 12  # a dark frame after a bright one keeps 12 bits
    assert tracker.bit_depth(image(dark, "mono16"), setting=14) == 14
    assert tracker.bit_depth(image(np.zeros((1, 1, 3), np.uint8), "rgb8")) is None
