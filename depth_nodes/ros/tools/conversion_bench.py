"""Timing of the per-frame conversions the depth node does at 1216x352 (``python -m depth_nodes.ros.tools.conversion_bench``).

Each row times one direction for the 32FC1 depth image and the organized XYZRGB cloud: numpy -> message,
message -> numpy, and rclpy's (de)serialization (the copy into / out of the middleware that publishing and
receiving add). For the fill of ``msg.data`` the alternatives are timed side by side, which is how the
strategy in :mod:`depth_nodes.ros.builders.buffer` was chosen.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def measure(width: int = 1216, height: int = 352, repeats: int = 30) -> dict[str, float]:
    """Median milliseconds of each conversion step (see the module docstring)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image, PointCloud2
    from std_msgs.msg import Header

    from depth_nodes.msgs.cloud import pointcloud2_to_arrays
    from depth_nodes.msgs.image import image_to_depth, image_to_numpy
    from depth_nodes.ros.builders.buffer import to_byte_array
    from depth_nodes.ros.builders.cloud import xyzrgb_to_pointcloud2
    from depth_nodes.ros.builders.image import numpy_to_image

    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 80, (height, width)).astype(np.float32)
    depth[: height // 3] = np.nan
    xyz = rng.normal(0, 10, (height, width, 3)).astype(np.float32)
    xyz[: height // 3] = np.nan
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    hdr = Header(frame_id="cam")
    img = numpy_to_image(depth, "32FC1", hdr)
    cloud = xyzrgb_to_pointcloud2(xyz, rgb, hdr, organized=True)
    img_bytes, cloud_bytes = serialize_message(img), serialize_message(cloud)
    scratch = Image()

    def fill_tobytes():
        scratch.data = depth.tobytes()

    def fill_array_setter():
        scratch.data = to_byte_array(depth)

    return {
        "image_MB": len(img.data) / 1e6,
        "cloud_MB": len(cloud.data) / 1e6,
        "image_encode_ms": _median_ms(lambda: numpy_to_image(depth, "32FC1", hdr), repeats),
        "image_decode_view_ms": _median_ms(lambda: image_to_numpy(img), repeats),
        "image_decode_depth_copy_ms": _median_ms(lambda: image_to_depth(img), repeats),
        "image_serialize_ms": _median_ms(lambda: serialize_message(img), repeats),
        "image_deserialize_ms": _median_ms(lambda: deserialize_message(img_bytes, Image), repeats),
        "image_fill_tobytes_setter_ms": _median_ms(fill_tobytes, repeats),
        "image_fill_array_setter_ms": _median_ms(fill_array_setter, repeats),
        "cloud_encode_organized_ms": _median_ms(lambda: xyzrgb_to_pointcloud2(xyz, rgb, hdr, True), repeats),
        "cloud_encode_unorganized_ms": _median_ms(
            lambda: xyzrgb_to_pointcloud2(xyz, rgb, hdr, False), repeats
        ),
        "cloud_decode_ms": _median_ms(lambda: pointcloud2_to_arrays(cloud), repeats),
        "cloud_serialize_ms": _median_ms(lambda: serialize_message(cloud), repeats),
        "cloud_deserialize_ms": _median_ms(lambda: deserialize_message(cloud_bytes, PointCloud2), repeats),
    }


def main() -> int:
    from depth_nodes.core.memory import tune_malloc

    tuned = "--no-tune" not in sys.argv
    if tuned:
        tune_malloc()  # as every entry point does (see core/memory.py)
    print(f"malloc tuned: {tuned}")
    json.dump({k: round(v, 3) for k, v in measure().items()}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
