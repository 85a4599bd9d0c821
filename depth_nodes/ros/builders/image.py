"""``sensor_msgs/Image`` builder; the decoders live in :mod:`depth_nodes.msgs.image`."""

from __future__ import annotations

import sys

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from depth_nodes.errors import ConversionError
from depth_nodes.msgs.image import ENCODINGS
from depth_nodes.ros.builders.buffer import set_data

_HOST_BIG_ENDIAN = sys.byteorder == "big"


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
