"""Image and CompressedImage <-> numpy: every encoding, padded rows, byte order, colour orders, error paths."""

from __future__ import annotations

import array
import struct

import cv2
import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")

from ros_msg_builders import header  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from depth_nodes.errors import ConversionError, DepthNodesError  # noqa: E402
from depth_nodes.msgs.image import ENCODINGS, compressed_to_rgb, image_to_depth, image_to_numpy, image_to_rgb  # noqa: E402
from depth_nodes.ros.builders.image import numpy_to_image  # noqa: E402

RNG = np.random.default_rng(7)


def random_array(dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    if dtype.kind == "f":
        return RNG.normal(0, 100, shape).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)


def raw_image(
    encoding: str, width: int, height: int, step: int, rows: list[bytes], big: bool = False
) -> Image:
    """An Image whose rows are given as bytes; each row is padded with 0xAB garbage up to ``step``."""
    data = b"".join(r + b"\xab" * (step - len(r)) for r in rows)
    return Image(
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(big),
        step=step,
        data=array.array("B", data),
    )


# ---------------------------------------------------------------------------------------------- images
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_image_round_trip_every_encoding(encoding):
    dtype, channels = ENCODINGS[encoding]
    shape = (7, 11) if channels == 1 else (7, 11, channels)
    arr = random_array(dtype, shape)
    msg = numpy_to_image(arr, encoding, header())
    assert (msg.height, msg.width, msg.encoding) == (7, 11, encoding)
    assert msg.step == 11 * channels * dtype.itemsize
    assert len(msg.data) == msg.step * 7
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    assert msg.header.frame_id == "cam_optical"
    back = image_to_numpy(msg)
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_array_equal(back, arr)


def test_numpy_to_image_bytes_are_the_native_layout():
    arr = np.array([[1.5, -2.0], [np.nan, 3.25]], dtype=np.float32)
    msg = numpy_to_image(arr, "32FC1")
    assert bytes(msg.data) == struct.pack("=4f", 1.5, -2.0, float("nan"), 3.25)


@pytest.mark.parametrize(
    ("encoding", "make"),
    [
        ("rgb8", lambda rgb: rgb),
        ("bgr8", lambda rgb: rgb[..., ::-1]),
        ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)])),
        ("bgra8", lambda rgb: np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 9, np.uint8)])),
    ],
)
def test_image_to_rgb_colour_orders(encoding, make):
    rgb = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    out = image_to_rgb(numpy_to_image(np.ascontiguousarray(make(rgb)), encoding))
    assert out.dtype == np.uint8 and out.shape == (5, 6, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_image_to_rgb_grey():
    grey = np.array([[0, 128, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(
        image_to_rgb(numpy_to_image(grey, "mono8")), np.repeat(grey[..., None], 3, 2)
    )


def test_image_to_rgb_does_not_alias_the_message():
    msg = numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8")
    out = image_to_rgb(msg)
    out[:] = 7
    assert bytes(msg.data) == bytes(12)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_image_to_rgb_bayer_constant_colour(pattern):
    colour = {"r": 200, "g": 120, "b": 40}
    mosaic = np.empty((8, 8), np.uint8)  # the pattern names the 2x2 cell row by row
    for i, ch in enumerate(pattern):
        mosaic[i // 2 :: 2, i % 2 :: 2] = colour[ch]
    out = image_to_rgb(numpy_to_image(mosaic, f"bayer_{pattern}8"))
    np.testing.assert_array_equal(out[2:-2, 2:-2].reshape(-1, 3), np.tile([200, 120, 40], (16, 1)))
    out16 = image_to_rgb(numpy_to_image(mosaic.astype(np.uint16) * 257, f"bayer_{pattern}16"))
    np.testing.assert_array_equal(out16[2:-2, 2:-2], out[2:-2, 2:-2])


def test_step_padding_rgb8_and_32fc1():
    # 3 x 2 rgb8 rows of 9 bytes padded to 12; values computed independently with bytes().
    rows = [bytes(range(10 * y, 10 * y + 9)) for y in range(2)]
    msg = raw_image("rgb8", 3, 2, 12, rows)
    out = image_to_rgb(msg)
    assert out[1].reshape(-1).tolist() == list(range(10, 19))
    assert out[0, 2].tolist() == [6, 7, 8]
    # 32FC1, 2 floats per row (8 bytes) padded to 13 bytes: step not a multiple of the item size.
    rows = [struct.pack("<2f", 1.25, 2.5), struct.pack("<2f", -3.0, float("nan"))]
    depth = image_to_depth(raw_image("32FC1", 2, 2, 13, rows))
    np.testing.assert_array_equal(depth, np.array([[1.25, 2.5], [-3.0, np.nan]], np.float32))


def test_big_endian_16uc1_and_32fc1():
    rows = [struct.pack(">3H", 1000, 0, 65535), struct.pack(">3H", 1, 2500, 7)]
    depth = image_to_depth(raw_image("16UC1", 3, 2, 8, rows, big=True))
    expected = np.array([[1.0, np.nan, 65.535], [0.001, 2.5, 0.007]], np.float32)
    np.testing.assert_allclose(depth, expected, rtol=1e-6)
    assert np.isnan(depth[0, 1])
    rows = [struct.pack(">2f", 12.5, -0.75)]
    np.testing.assert_array_equal(
        image_to_depth(raw_image("32FC1", 2, 1, 8, rows, big=True)), [[12.5, -0.75]]
    )
    little = image_to_depth(raw_image("32FC1", 2, 1, 8, [struct.pack("<2f", 12.5, -0.75)]))
    np.testing.assert_array_equal(little, [[12.5, -0.75]])
    mono16 = image_to_numpy(raw_image("mono16", 2, 1, 4, [struct.pack(">2H", 258, 4097)], big=True))
    assert mono16.dtype == np.uint16 and mono16.tolist() == [[258, 4097]]


def test_image_to_depth_units_and_copy():
    mm = np.array([[0, 1, 1500], [65535, 250, 0]], dtype=np.uint16)
    out = image_to_depth(numpy_to_image(mm, "16UC1"))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[mm > 0], mm[mm > 0] / 1000.0, rtol=1e-6)
    assert np.isnan(out[mm == 0]).all()
    m = np.array([[np.nan, 0.5], [80.0, np.inf]], dtype=np.float32)
    msg = numpy_to_image(m, "32FC1")
    out = image_to_depth(msg)
    np.testing.assert_array_equal(out, m)
    out[:] = 1
    np.testing.assert_array_equal(image_to_depth(msg), m)
    np.testing.assert_array_equal(image_to_depth(numpy_to_image(m.astype(np.float64), "64FC1")), m)


def test_numpy_to_image_casts_only_losslessly():
    assert numpy_to_image(np.ones((2, 2)), "32FC1").step == 8  # float64 -> float32
    assert image_to_numpy(numpy_to_image(np.array([[1, 65535]]), "16UC1")).tolist() == [[1, 65535]]
    with pytest.raises(ConversionError, match="outside"):
        numpy_to_image(np.array([[70000]]), "16UC1")
    with pytest.raises(ConversionError, match="cannot store"):
        numpy_to_image(np.ones((2, 2), np.float32), "mono8")
    with pytest.raises(ConversionError, match="H x W x 3"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ConversionError, match="zero size"):
        numpy_to_image(np.zeros((0, 2), np.float32), "32FC1")
    with pytest.raises(ConversionError, match="unknown"):
        numpy_to_image(np.zeros((2, 2), np.float32), "yuv_fancy")


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (
            Image(height=2, width=2, encoding="rgb9", step=6, data=bytes(12)),
            "unknown or unsupported encoding 'rgb9'",
        ),
        (Image(height=2, width=2, encoding="", step=6, data=bytes(12)), "unknown or unsupported encoding ''"),
        (Image(height=2, width=2, encoding="rgb8", step=5, data=bytes(12)), "step 5 is smaller than"),
        (
            Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(11)),
            "truncated data, 11 bytes < step",
        ),
        (Image(height=0, width=2, encoding="rgb8", step=6, data=b""), "zero size 2x0"),
        (Image(height=2, width=0, encoding="mono8", step=0, data=b""), "zero size 0x2"),
    ],
)
def test_image_errors(msg, match):
    for convert in (image_to_numpy, image_to_rgb):
        with pytest.raises(ConversionError, match=match):
            convert(msg)


def test_image_to_rgb_and_depth_reject_wrong_kinds():
    with pytest.raises(ConversionError, match="not a colour image"):
        image_to_rgb(numpy_to_image(np.zeros((2, 2), np.float32), "32FC1"))
    with pytest.raises(ConversionError, match="unsupported encoding 'rgb8'"):
        image_to_depth(numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8"))
    assert issubclass(ConversionError, DepthNodesError)


# ---------------------------------------------------------------------------------------------- compressed
def compressed(rgb_or_grey: np.ndarray, ext: str, fmt: str) -> CompressedImage:
    img = rgb_or_grey if rgb_or_grey.ndim == 2 else cv2.cvtColor(rgb_or_grey, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return CompressedImage(format=fmt, data=array.array("B", buf.tobytes()))


def test_compressed_png_is_exact_and_jpeg_close():
    rgb = RNG.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        compressed_to_rgb(compressed(rgb, ".png", "rgb8; png compressed bgr8")), rgb
    )
    smooth = np.dstack([np.tile(np.arange(24, dtype=np.uint8) * 10, (16, 1))] * 3)
    smooth[..., 1] //= 2
    out = compressed_to_rgb(compressed(smooth, ".jpg", "jpeg"))
    assert out.shape == smooth.shape and np.abs(out.astype(int) - smooth).mean() < 3.0
    grey = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    np.testing.assert_array_equal(compressed_to_rgb(compressed(grey, ".png", "png")), np.dstack([grey] * 3))
    g16 = np.array([[0, 256, 65535]], dtype=np.uint16)
    assert compressed_to_rgb(compressed(g16, ".png", "mono16; png compressed"))[0, :, 0].tolist() == [
        0,
        1,
        255,
    ]


def test_compressed_errors():
    with pytest.raises(ConversionError, match="empty data"):
        compressed_to_rgb(CompressedImage(format="jpeg"))
    with pytest.raises(ConversionError, match="cannot decode 5 bytes"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"abcde"))
    with pytest.raises(ConversionError, match="unsupported format 'theora'"):
        compressed_to_rgb(CompressedImage(format="theora", data=b"abcde"))
    with pytest.raises(ConversionError, match="compressed depth"):
        compressed_to_rgb(CompressedImage(format="16UC1; compressedDepth png", data=b"abcde"))


@pytest.mark.parametrize("encoding", ["bgr8", "bgra8", "rgba8", "bgr16", "rgba16", "mono8", "mono16"])
def test_padded_rows_every_colour_encoding(encoding):
    dtype, channels = ENCODINGS[encoding]
    rgb8 = RNG.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    order = [2, 1, 0] if encoding.startswith("bgr") else [0, 1, 2]
    pixels = rgb8[..., order].astype(dtype) * (257 if dtype.itemsize == 2 else 1)  # 16 bit: v * 257 >> 8 == v
    if channels == 4:
        pixels = np.dstack([pixels, np.full((3, 4), 5, dtype)])
    if channels == 1:
        pixels = pixels[..., 0]
    rows = [pixels[y].tobytes() for y in range(3)]
    out = image_to_rgb(raw_image(encoding, 4, 3, len(rows[0]) + 6, rows))
    expected = np.repeat(rgb8[..., :1], 3, axis=2) if channels == 1 else rgb8
    np.testing.assert_array_equal(out, expected)


def test_image_matches_cv_bridge_when_available():
    cv_bridge = pytest.importorskip("cv_bridge")
    bridge = cv_bridge.CvBridge()
    rows = [bytes(range(10 * y, 10 * y + 9)) for y in range(2)]
    msg = raw_image("bgr8", 3, 2, 12, rows)
    np.testing.assert_array_equal(image_to_rgb(msg), bridge.imgmsg_to_cv2(msg, "rgb8"))
    depth = numpy_to_image(RNG.uniform(0, 80, (4, 5)).astype(np.float32), "32FC1")
    np.testing.assert_array_equal(image_to_depth(depth), bridge.imgmsg_to_cv2(depth, "passthrough"))
