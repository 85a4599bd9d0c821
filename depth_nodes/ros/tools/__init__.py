"""rclpy tools around the node (not the node itself): rosbag2 play/record with rclpy, the node bench
(``depth-nodes bench node``), the message-conversion bench, the node-process harness (tests, bench, demo)
and the ``/diagnostics`` monitor of ``depth-nodes demo``."""
