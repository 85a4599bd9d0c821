"""depth_nodes: dense metric depth and point clouds from camera + LiDAR.

The core (``core``, ``completion``, ``data``, ``eval``, ``pipeline``) is ROS-free; only ``depth_nodes.ros``
imports rclpy and message types.
"""

__version__ = "0.1.0"
