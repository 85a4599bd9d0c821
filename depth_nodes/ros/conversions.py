"""Message <-> numpy conversions of the ROS layer (one import point for the nodes and tools).

Decoders are the ROS-free ones of :mod:`depth_nodes.msgs` (shared with the bag tools); builders, which need
the rclpy message classes, live here: images :mod:`image_conv`, point clouds :mod:`cloud_conv`, CameraInfo
:mod:`camera_info_conv`, stamps :mod:`time_conv`. Every failure raises :class:`depth_nodes.errors.ConversionError`.
"""

from depth_nodes.errors import ConversionError
from depth_nodes.msgs.image import (
    ENCODINGS,
    BitDepthTracker,
    compressed_to_rgb,
    detect_bit_depth,
    image_to_depth,
    image_to_numpy,
    image_to_rgb,
)
from depth_nodes.ros.camera_info_conv import (
    CAMERA_MODELS,
    CameraGeometry,
    camera_geometry,
    camera_info_to_model,
    depth_camera_info,
    model_to_camera_info,
    resolve_camera_model,
)
from depth_nodes.ros.cloud_conv import (
    CloudArrays,
    pointcloud2_to_arrays,
    pointcloud2_view,
    unpack_rgb,
    xyzrgb_to_pointcloud2,
)
from depth_nodes.ros.image_conv import numpy_to_image
from depth_nodes.ros.time_conv import ns_to_stamp, stamp_to_ns

__all__ = [
    "CAMERA_MODELS",
    "BitDepthTracker",
    "CameraGeometry",
    "ENCODINGS",
    "CloudArrays",
    "ConversionError",
    "camera_geometry",
    "camera_info_to_model",
    "compressed_to_rgb",
    "depth_camera_info",
    "detect_bit_depth",
    "image_to_depth",
    "image_to_numpy",
    "image_to_rgb",
    "model_to_camera_info",
    "ns_to_stamp",
    "numpy_to_image",
    "pointcloud2_to_arrays",
    "pointcloud2_view",
    "resolve_camera_model",
    "stamp_to_ns",
    "unpack_rgb",
    "xyzrgb_to_pointcloud2",
]
