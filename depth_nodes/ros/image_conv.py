"""``sensor_msgs/Image`` and ``CompressedImage`` <-> numpy.

The numpy path below is what runs on a pip-installed rclpy (no cv_bridge). Where ``cv_bridge`` is importable
it decodes the standard encodings instead (``imgmsg_to_cv2(..., "passthrough")``) for messages whose byte
order is the host's; the post-processing (RGB order, 16 -> 8 bit, mm -> m) is shared, so results are equal.
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from depth_nodes.errors import ConversionError
from depth_nodes.ros.msg_buffer import data_view, set_data

try:  # guarded: not installable from PyPI; used when a full ROS 2 install provides it
    from cv_bridge import CvBridge as _CvBridge

    _BRIDGE = _CvBridge()
except ImportError:  # pragma: no cover - depends on the machine
    _BRIDGE = None

#: encoding -> (numpy dtype, channels), as in sensor_msgs/image_encodings.hpp.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "rgb16": (np.dtype(np.uint16), 3),
    "bgr16": (np.dtype(np.uint16), 3),
    "rgba16": (np.dtype(np.uint16), 4),
    "bgra16": (np.dtype(np.uint16), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
}
for _bayer in ("rggb", "bggr", "gbrg", "grbg"):
    ENCODINGS[f"bayer_{_bayer}8"] = (np.dtype(np.uint8), 1)
    ENCODINGS[f"bayer_{_bayer}16"] = (np.dtype(np.uint16), 1)
for _bits, _kind in ((8, "U"), (8, "S"), (16, "U"), (16, "S"), (32, "S"), (32, "F"), (64, "F")):
    _dtype = np.dtype({"U": "u", "S": "i", "F": "f"}[_kind] + str(_bits // 8))
    for _ch in (1, 2, 3, 4):
        ENCODINGS[f"{_bits}{_kind}C{_ch}"] = (_dtype, _ch)

#: ROS Bayer pattern -> OpenCV demosaicing code to RGB (OpenCV names the pattern by its 2nd row/col).
_BAYER_TO_RGB = {
    "rggb": cv2.COLOR_BayerBG2RGB,
    "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB,
    "grbg": cv2.COLOR_BayerGB2RGB,
}

#: Encodings image_to_depth accepts and their scale to metres (REP 118: 16-bit depth is millimetres).
DEPTH_SCALE = {"32FC1": 1.0, "64FC1": 1.0, "16UC1": 1e-3, "mono16": 1e-3}

_HOST_BIG_ENDIAN = sys.byteorder == "big"


def _layout(msg: Image) -> tuple[np.dtype, int]:
    encoding = msg.encoding
    if encoding not in ENCODINGS:
        raise ConversionError(f"image: unknown or unsupported encoding {encoding!r}")
    if msg.width <= 0 or msg.height <= 0:
        raise ConversionError(f"image: zero size {msg.width}x{msg.height} ({encoding})")
    dtype, channels = ENCODINGS[encoding]
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ConversionError(
            f"image: step {msg.step} is smaller than width*bytes_per_pixel = {msg.width}*"
            f"{channels * dtype.itemsize} = {row_bytes} ({encoding})"
        )
    return dtype, channels


def image_to_numpy(msg: Image) -> np.ndarray:
    """Raw H x W (x C) array in the encoding's dtype (native byte order), ``step`` padding removed.

    May share memory with ``msg.data`` (no copy when the rows are unpadded and the byte order is native).
    """
    dtype, channels = _layout(msg)
    data = data_view(msg)
    needed = msg.step * msg.height
    if len(data) < needed:
        raise ConversionError(
            f"image: truncated data, {len(data)} bytes < step*height = {msg.step}*{msg.height} = {needed}"
        )
    big = bool(msg.is_bigendian)
    if _BRIDGE is not None and big == _HOST_BIG_ENDIAN and msg.step % (dtype.itemsize * channels) == 0:
        # cv_bridge's own decoding (it slices the step padding as below); numpy path if it refuses.
        try:
            return np.asarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough"))
        except Exception:  # noqa: BLE001 - CvBridgeError, or numpy 2 API changes in older cv_bridge
            pass
    wire = dtype.newbyteorder(">" if big else "<") if dtype.itemsize > 1 else dtype
    row_items = msg.width * channels
    if msg.step % dtype.itemsize == 0:
        flat = np.frombuffer(data, dtype=wire, count=needed // dtype.itemsize)
        rows = flat.reshape(msg.height, msg.step // dtype.itemsize)[:, :row_items]
    else:  # odd step (rare): strided view over the rows
        rows = np.ndarray(
            (msg.height, row_items), dtype=wire, buffer=data, strides=(msg.step, dtype.itemsize)
        )
    if dtype.itemsize > 1 and big != _HOST_BIG_ENDIAN:
        rows = rows.astype(dtype)  # byte swap to native (copies)
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return rows.reshape(shape)


#: Colour encodings -> OpenCV conversion to RGB (None: already RGB).
_COLOUR_TO_RGB = {
    "rgb8": None,
    "rgb16": None,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "rgba16": cv2.COLOR_RGBA2RGB,
    "bgr8": cv2.COLOR_BGR2RGB,
    "bgr16": cv2.COLOR_BGR2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "bgra16": cv2.COLOR_BGRA2RGB,
}
for _grey in ("mono8", "mono16", "8UC1", "16UC1"):
    _COLOUR_TO_RGB[_grey] = cv2.COLOR_GRAY2RGB
for _bayer, _code in _BAYER_TO_RGB.items():
    _COLOUR_TO_RGB[f"bayer_{_bayer}8"] = _COLOUR_TO_RGB[f"bayer_{_bayer}16"] = _code


def image_to_rgb(msg: Image) -> np.ndarray:
    """H x W x 3 uint8 RGB (a new array) from rgb8, bgr8, rgba8, bgra8, mono8, mono16, 8UC1, 16UC1 or Bayer.

    16-bit data is scaled to 8 bit by keeping the high byte (v >> 8).
    """
    encoding = msg.encoding
    _layout(msg)  # unknown encoding / size errors first
    if encoding not in _COLOUR_TO_RGB:
        raise ConversionError(
            f"image: encoding {encoding!r} is not a colour image; use rgb8, bgr8, rgba8, bgra8, mono8 or mono16"
        )
    arr = image_to_numpy(msg)
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    code = _COLOUR_TO_RGB[encoding]
    if code is None:
        return np.array(arr, order="C")
    # OpenCV swizzles 50x faster than numpy's negative-stride copy (0.03 vs 1.4 ms at 1216x352) and
    # accepts the padded-row views image_to_numpy returns. Demosaicing wants contiguous input.
    return cv2.cvtColor(np.ascontiguousarray(arr) if encoding.startswith("bayer_") else arr, code)


def image_to_depth(msg: Image) -> np.ndarray:
    """H x W float32 metres (a new array) from 32FC1 / 64FC1 (m) or 16UC1 / mono16 (mm, 0 -> NaN, REP 118)."""
    if msg.encoding not in DEPTH_SCALE:
        raise ConversionError(
            f"depth image: unsupported encoding {msg.encoding!r}; expected one of {', '.join(DEPTH_SCALE)}"
        )
    arr = image_to_numpy(msg)
    if arr.dtype == np.uint16:
        depth = arr.astype(np.float32)
        depth *= np.float32(DEPTH_SCALE[msg.encoding])
        depth[arr == 0] = np.nan
        return depth
    with np.errstate(over="ignore"):  # 64FC1 beyond float32 range -> inf, like any far-out depth
        return arr.astype(np.float32, copy=True)


def numpy_to_image(arr: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An Image from an H x W (x C) array; ``step`` = W * bytes per pixel, native byte order.

    The array must have the encoding's channel count; its dtype is cast to the encoding's when the cast is
    lossless in kind (float -> float, int -> int within range); anything else is an error.
    """
    if encoding not in ENCODINGS:
        raise ConversionError(f"numpy_to_image: unknown or unsupported encoding {encoding!r}")
    dtype, channels = ENCODINGS[encoding]
    arr = np.asarray(arr)
    expected_ndim = 2 if channels == 1 else 3
    if arr.ndim == 3 and channels == 1 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != expected_ndim or (channels > 1 and arr.shape[2] != channels):
        want = "H x W" if channels == 1 else f"H x W x {channels}"
        raise ConversionError(f"numpy_to_image: {encoding} needs an {want} array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ConversionError(f"numpy_to_image: zero size array {arr.shape}")
    if arr.dtype != dtype:
        arr = _cast(arr, dtype, encoding)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_HOST_BIG_ENDIAN)
    msg.step = msg.width * channels * dtype.itemsize
    set_data(msg, arr)
    return msg


def _cast(arr: np.ndarray, dtype: np.dtype, encoding: str) -> np.ndarray:
    if arr.dtype.kind == "f" and dtype.kind == "f":
        return arr.astype(dtype)
    if arr.dtype.kind in "biu" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if arr.size == 0 or (arr.min() >= info.min and arr.max() <= info.max):
            return arr.astype(dtype)
        raise ConversionError(f"numpy_to_image: values outside the {encoding} range [{info.min}, {info.max}]")
    raise ConversionError(f"numpy_to_image: cannot store a {arr.dtype} array as {encoding} ({dtype})")


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """H x W x 3 uint8 RGB from a jpeg / png CompressedImage (16-bit png scaled to 8 bit)."""
    fmt = (msg.format or "").lower()
    if fmt and "jpeg" not in fmt and "jpg" not in fmt and "png" not in fmt:
        raise ConversionError(f"compressed image: unsupported format {msg.format!r} (jpeg or png)")
    if "compresseddepth" in fmt:
        raise ConversionError(f"compressed image: {msg.format!r} is a compressed depth image, not colour")
    buf = np.frombuffer(data_view(msg), dtype=np.uint8)
    if buf.size == 0:
        raise ConversionError("compressed image: empty data")
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ConversionError(
            f"compressed image: cannot decode {buf.size} bytes as {msg.format or 'an image'}"
        )
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
    # "rgb8; jpeg compressed bgr8" (image_transport) means the JPEG holds BGR data, the OpenCV default.
    return cv2.cvtColor(img, code)
