"""ROS-free numerics: camera model, rigid transforms, projection and back-projection."""

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import (
    OcclusionFilter,
    SparseDepth,
    depth_to_points,
    project_points,
    remove_occluded,
    scan_to_depth,
)
from depth_nodes.core.transforms import invert, quaternion_to_matrix, rigid, transform_points

__all__ = [
    "CameraModel",
    "OcclusionFilter",
    "SparseDepth",
    "depth_to_points",
    "invert",
    "project_points",
    "quaternion_to_matrix",
    "remove_occluded",
    "rigid",
    "scan_to_depth",
    "transform_points",
]
