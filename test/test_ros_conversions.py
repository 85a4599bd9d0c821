"""Message <-> numpy conversions: round trips, hand-built messages (struct-packed), error paths."""

from __future__ import annotations

import array
import struct

import cv2
import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")

from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from depth_nodes.core.camera import CameraModel  # noqa: E402
from depth_nodes.errors import ConversionError, DepthNodesError  # noqa: E402
from depth_nodes.ros.conversions import (  # noqa: E402
    ENCODINGS,
    camera_info_to_model,
    compressed_to_rgb,
    image_to_depth,
    image_to_numpy,
    image_to_rgb,
    model_to_camera_info,
    ns_to_stamp,
    numpy_to_image,
    pointcloud2_to_arrays,
    pointcloud2_view,
    stamp_to_ns,
    unpack_rgb,
    xyzrgb_to_pointcloud2,
)

RNG = np.random.default_rng(7)
K = np.array([[721.5, 0.0, 609.5], [0.0, 721.5, 172.8], [0.0, 0.0, 1.0]])


def header(frame: str = "cam_optical", ns: int = 1_700_000_000_123_456_789) -> Header:
    return Header(frame_id=frame, stamp=ns_to_stamp(ns))


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


# ---------------------------------------------------------------------------------------------- clouds
F32, F64, U8, U16, U32, I16 = (
    PointField.FLOAT32,
    PointField.FLOAT64,
    PointField.UINT8,
    PointField.UINT16,
    PointField.UINT32,
    PointField.INT16,
)


def hand_cloud(
    points: list[tuple], layout: list[tuple[str, int, int, str]], point_step: int, **kw
) -> PointCloud2:
    """Pack ``points`` (tuples in ``layout`` order) with struct: layout = (name, offset, datatype, struct char)."""
    big = kw.pop("big", False)
    height = kw.pop("height", 1)
    width = len(points) // height
    row_pad = kw.pop("row_pad", 0)
    order = ">" if big else "<"
    rows = []
    for r in range(height):
        row = bytearray()
        for p in points[r * width : (r + 1) * width]:
            rec = bytearray(b"\xcd" * point_step)
            for (_, off, _, ch), v in zip(layout, p, strict=True):
                struct.pack_into(order + ch, rec, off, v)
            row += rec
        rows.append(bytes(row) + b"\xee" * row_pad)
    fields = [PointField(name=n, offset=o, datatype=d, count=1) for n, o, d, _ in layout]
    return PointCloud2(
        height=height,
        width=width,
        fields=fields,
        is_bigendian=big,
        point_step=point_step,
        row_step=width * point_step + row_pad,
        data=array.array("B", b"".join(rows)),
        **kw,
    )


# intensity first, z before x, ring, padding holes, float64 xyz, float64 time: a shuffled, padded layout.
SHUFFLED = [
    ("intensity", 0, U8, "B"),
    ("z", 4, F64, "d"),
    ("ring", 12, U16, "H"),
    ("x", 16, F64, "d"),
    ("time", 24, F64, "d"),
    ("y", 36, F64, "d"),
]
PTS = [  # (intensity, z, ring, x, time, y)
    (17, 3.5, 0, 1.0, 0.001, -2.0),
    (255, 10.25, 63, -4.5, 0.002, 0.5),
    (0, float("nan"), 5, float("nan"), 0.003, float("nan")),
    (99, 1e-3, 31, 123.0, 0.1, 7.0),
    (1, 2.0, 2, 3.0, 0.05, 4.0),
    (2, 5.0, 7, 6.0, 0.06, 8.0),
]


def expected_xyz(points):
    return np.array([(p[3], p[5], p[1]) for p in points], dtype=np.float32)


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize(("height", "row_pad"), [(1, 0), (2, 0), (2, 6), (3, 5)])
def test_cloud_shuffled_padded_float64_layout(big, height, row_pad):
    msg = hand_cloud(PTS, SHUFFLED, point_step=48, big=big, height=height, row_pad=row_pad)
    c = pointcloud2_to_arrays(msg)
    assert (c.height, c.width, c.organized, len(c)) == (height, 6 // height, height > 1, 6)
    np.testing.assert_array_equal(c.xyz, expected_xyz(PTS))  # NaN row kept, in place
    assert c.xyz.dtype == np.float32
    np.testing.assert_array_equal(c.intensity, np.float32([17, 255, 0, 99, 1, 2]))
    np.testing.assert_array_equal(c.ring, [0, 63, 5, 31, 2, 7])
    np.testing.assert_allclose(c.time, [0.001, 0.002, 0.003, 0.1, 0.05, 0.06])
    assert c.time_field == "time" and c.time.dtype == np.float64


def test_cloud_float32_int_fields_and_aliases():
    layout = [
        ("x", 0, F32, "f"),
        ("y", 4, F32, "f"),
        ("z", 8, F32, "f"),
        ("i", 12, I16, "h"),
        ("t", 16, U32, "I"),
    ]
    pts = [(1.5, 2.5, 3.5, -7, 100_000), (4.0, 5.0, 6.0, 300, 4_000_000_000)]
    c = pointcloud2_to_arrays(hand_cloud(pts, layout, point_step=24))
    np.testing.assert_array_equal(c.xyz, [[1.5, 2.5, 3.5], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(c.intensity, [-7.0, 300.0])
    assert c.ring is None and c.time_field == "t" and c.time.tolist() == [100_000.0, 4_000_000_000.0]


def test_cloud_matches_sensor_msgs_py_when_available():
    pc2 = pytest.importorskip("sensor_msgs_py.point_cloud2")
    msg = hand_cloud(PTS, SHUFFLED, point_step=48, height=2)
    ref = pc2.read_points(msg, field_names=("x", "y", "z"))
    ref_xyz = np.stack([ref["x"], ref["y"], ref["z"]], axis=-1).reshape(-1, 3).astype(np.float32)
    np.testing.assert_array_equal(pointcloud2_to_arrays(msg).xyz, ref_xyz)


def test_xyzrgb_organized_round_trip_with_nan():
    h, w = 4, 5
    xyz = RNG.normal(0, 10, (h, w, 3)).astype(np.float32)
    xyz[1, 2] = np.nan
    xyz[3, 0] = np.nan
    rgb = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    msg = xyzrgb_to_pointcloud2(xyz, rgb, header(), organized=True)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (h, w, 16, 16 * w)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, F32, 1),
        ("y", 4, F32, 1),
        ("z", 8, F32, 1),
        ("rgb", 12, F32, 1),
    ]
    assert not msg.is_dense and not msg.is_bigendian and msg.header.frame_id == "cam_optical"
    assert len(msg.data) == h * w * 16 and isinstance(msg.data, array.array)
    c = pointcloud2_to_arrays(msg)
    np.testing.assert_array_equal(c.xyz.reshape(h, w, 3), xyz)
    # packed rgb checked independently: unpack each record's 4th word with struct
    raw = bytes(msg.data)
    for idx in (0, 7, 19):
        x, y, z, packed = struct.unpack_from("<3fI", raw, 16 * idx)
        r, g, b = rgb.reshape(-1, 3)[idx].tolist()
        assert packed == (r << 16) | (g << 8) | b
    np.testing.assert_array_equal(unpack_rgb(pointcloud2_view(msg)["rgb"].reshape(-1)), rgb.reshape(-1, 3))


def test_xyzrgb_unorganized_drops_invalid_points():
    xyz = np.array([[1, 2, 3], [np.nan, 0, 1], [4, 5, np.inf], [7, 8, 9]], dtype=np.float32)
    rgb = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]], dtype=np.uint8)
    msg = xyzrgb_to_pointcloud2(xyz, rgb, header(), organized=False)
    assert (msg.height, msg.width, msg.is_dense) == (1, 2, True)
    c = pointcloud2_to_arrays(msg)
    np.testing.assert_array_equal(c.xyz, xyz[[0, 3]])
    np.testing.assert_array_equal(unpack_rgb(pointcloud2_view(msg)["rgb"].reshape(-1)), rgb[[0, 3]])
    flat = xyzrgb_to_pointcloud2(xyz.reshape(2, 2, 3), None, header(), organized=False)
    assert [f.name for f in flat.fields] == ["x", "y", "z"] and flat.point_step == 12 and flat.width == 2


def test_xyzrgb_input_errors():
    with pytest.raises(ConversionError, match="xyz must be"):
        xyzrgb_to_pointcloud2(np.zeros((4, 2)), None)
    with pytest.raises(ConversionError, match="does not match"):
        xyzrgb_to_pointcloud2(np.zeros((4, 3)), np.zeros((3, 3), np.uint8))
    with pytest.raises(ConversionError, match="must be uint8"):
        xyzrgb_to_pointcloud2(np.zeros((4, 3)), np.zeros((4, 3), np.float32))


def test_empty_cloud_is_valid():
    msg = PointCloud2(
        height=1,
        width=0,
        fields=[PointField(name=n, offset=4 * i, datatype=F32, count=1) for i, n in enumerate("xyz")],
        point_step=12,
        row_step=0,
    )
    c = pointcloud2_to_arrays(msg)
    assert c.xyz.shape == (0, 3) and c.intensity is None


XYZ = [("x", 0, F32, "f"), ("y", 4, F32, "f"), ("z", 8, F32, "f")]


def test_cloud_errors():
    good = hand_cloud([(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)], XYZ, point_step=16)
    pointcloud2_to_arrays(good)

    def variant(**changes) -> PointCloud2:
        m = hand_cloud([(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)], XYZ, point_step=16)
        for k, v in changes.items():
            setattr(m, k, v)
        return m

    no_z = variant(fields=[f for f in good.fields if f.name != "z"])
    with pytest.raises(ConversionError, match=r"missing field\(s\) z"):
        pointcloud2_to_arrays(no_z)
    bad_type = variant(fields=[*good.fields[:2], PointField(name="z", offset=8, datatype=9, count=1)])
    with pytest.raises(ConversionError, match="unknown PointField datatype 9"):
        pointcloud2_to_arrays(bad_type)
    with pytest.raises(ConversionError, match="data has 31 bytes, expected"):
        pointcloud2_to_arrays(variant(data=array.array("B", bytes(good.data)[:31])))
    with pytest.raises(ConversionError, match="data has 33 bytes"):
        pointcloud2_to_arrays(variant(data=array.array("B", bytes(good.data) + b"\0")))
    with pytest.raises(ConversionError, match="expected row_step"):
        pointcloud2_to_arrays(variant(width=3, row_step=48))
    with pytest.raises(ConversionError, match="row_step 20 is smaller"):
        pointcloud2_to_arrays(variant(row_step=20))
    with pytest.raises(ConversionError, match="beyond point_step 16"):
        pointcloud2_to_arrays(
            variant(fields=[*good.fields[:2], PointField(name="z", offset=14, datatype=F32)])
        )
    with pytest.raises(ConversionError, match="appears twice"):
        pointcloud2_to_arrays(variant(fields=[*good.fields, PointField(name="x", offset=12, datatype=F32)]))
    with pytest.raises(ConversionError, match="point_step is 0"):
        pointcloud2_to_arrays(variant(point_step=0))


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


# ---------------------------------------------------------------------------------------------- fuzz
def _mutated_image(rng: np.random.Generator) -> Image:
    enc = rng.choice([*ENCODINGS, "rgb9", "", "jpeg", "32FC9"])
    w, h = (int(v) for v in rng.integers(0, 6, 2))
    bpp = ENCODINGS[enc][0].itemsize * ENCODINGS[enc][1] if enc in ENCODINGS else 3
    step = max(w * bpp + int(rng.integers(-3, 4)), 0)
    n = max(step * h + int(rng.integers(-4, 3)), 0)
    return Image(
        width=w,
        height=h,
        encoding=str(enc),
        step=step,
        is_bigendian=int(rng.integers(0, 2)),
        data=rng.bytes(n),
    )


def _mutated_cloud(rng: np.random.Generator) -> PointCloud2:
    """A valid x, y, z, intensity cloud with 0-2 random defects (field, layout or size)."""
    w, h = (int(v) for v in rng.integers(1, 5, 2))
    layout = [*XYZ, ("intensity", 12, F32, "f")]
    msg = hand_cloud([tuple(rng.normal(size=4)) for _ in range(w * h)], layout, point_step=16, height=h)
    fields = list(msg.fields)
    for _ in range(int(rng.integers(0, 3))):
        kind = int(rng.integers(0, 8))
        f = fields[int(rng.integers(0, len(fields)))] if fields else None
        if kind == 0 and fields:
            fields.remove(f)
        elif kind == 1 and f is not None:
            f.datatype = int(rng.integers(0, 10))
        elif kind == 2 and f is not None:
            f.offset = int(rng.integers(0, 24))
        elif kind == 3 and f is not None:
            f.count = int(rng.integers(0, 4))
        elif kind == 4:
            msg.point_step = int(rng.integers(0, 24))
        elif kind == 5:
            msg.row_step = max(int(msg.row_step) + int(rng.integers(-20, 20)), 0)
        elif kind == 6:
            msg.data = array.array("B", bytes(msg.data)[: int(rng.integers(0, len(msg.data) + 8))])
        else:
            msg.is_bigendian = not msg.is_bigendian
    msg.fields = fields
    return msg


def test_fuzzed_messages_convert_or_raise_conversion_error_only():
    """Malformed messages never raise anything but ConversionError (what the node catches)."""
    rng = np.random.default_rng(2024)
    outcomes = {"ok": 0, "error": 0}
    clouds = {"ok": 0, "error": 0}
    for _ in range(1500):
        img, cloud = _mutated_image(rng), _mutated_cloud(rng)
        for convert, msg in ((image_to_numpy, img), (image_to_rgb, img), (image_to_depth, img)):
            try:
                out = convert(msg)
                assert out.shape[:2] == (msg.height, msg.width)
                outcomes["ok"] += 1
            except ConversionError:
                outcomes["error"] += 1
        try:
            c = pointcloud2_to_arrays(cloud)
            assert c.xyz.shape == (cloud.height * cloud.width, 3)
            clouds["ok"] += 1
        except ConversionError:
            clouds["error"] += 1
    assert outcomes["ok"] > 200 and outcomes["error"] > 200, outcomes
    assert clouds["ok"] > 200 and clouds["error"] > 200, clouds


def test_duck_typed_messages_with_other_data_containers():
    """rosbags messages carry numpy data, hand-made ones lists or bytes: all decode the same."""
    from types import SimpleNamespace

    for data in (
        np.arange(8, dtype=np.uint8)[:4],
        list(range(4)),
        bytes(range(4)),
        np.arange(8, dtype=np.uint8)[::2] // 2,
    ):
        msg = SimpleNamespace(height=2, width=2, encoding="mono8", step=2, is_bigendian=0, data=data)
        assert image_to_numpy(msg).tolist() == [[0, 1], [2, 3]]
    for bad in ([300, 1, 2, 3], "abcd"):
        msg = SimpleNamespace(height=2, width=2, encoding="mono8", step=2, is_bigendian=0, data=bad)
        with pytest.raises(ConversionError, match="not a byte sequence"):
            image_to_numpy(msg)
    cloud = hand_cloud([(1.0, 2.0, 3.0)], XYZ, point_step=12)
    rosbags_like = SimpleNamespace(
        **{
            k: getattr(cloud, k)
            for k in ("height", "width", "fields", "point_step", "row_step", "is_bigendian")
        },
        data=np.frombuffer(bytes(cloud.data), np.uint8),
    )
    np.testing.assert_array_equal(pointcloud2_to_arrays(rosbags_like).xyz, [[1.0, 2.0, 3.0]])


def test_filled_messages_survive_rclpy_serialization():
    """The middleware reads what set_data stored (the path publish() takes), and decodes back equal."""
    from rclpy.serialization import deserialize_message, serialize_message

    depth = RNG.uniform(0.5, 80, (6, 9)).astype(np.float32)
    depth[0, :3] = np.nan
    img = deserialize_message(serialize_message(numpy_to_image(depth, "32FC1", header())), Image)
    assert img.header.frame_id == "cam_optical" and stamp_to_ns(img.header.stamp) == 1_700_000_000_123_456_789
    np.testing.assert_array_equal(image_to_depth(img), depth)
    xyz = RNG.normal(0, 5, (3, 4, 3)).astype(np.float32)
    xyz[1, 1] = np.nan
    rgb = RNG.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    cloud = deserialize_message(serialize_message(xyzrgb_to_pointcloud2(xyz, rgb, header())), PointCloud2)
    np.testing.assert_array_equal(pointcloud2_to_arrays(cloud).xyz, xyz.reshape(-1, 3))
    np.testing.assert_array_equal(unpack_rgb(pointcloud2_view(cloud)["rgb"].reshape(-1)), rgb.reshape(-1, 3))
    # the field checks path (ROS_PYTHON_CHECK_FIELDS=1) stores the array as is
    checked = Image(check_fields=True)
    from depth_nodes.ros.msg_buffer import set_data

    set_data(checked, depth)
    assert bytes(checked.data) == depth.tobytes()
