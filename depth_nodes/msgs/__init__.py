"""ROS-free, duck-typed message decoders: one decoder per message kind, for the node and the bag tools.

They read only attributes (``msg.encoding``, ``msg.fields``, ``msg.k`` ...), so rclpy messages, ``rosbags``
message objects and hand-built namespaces decode the same. Nothing here imports rclpy or a message package;
``depth_nodes.ros`` re-exports these next to the message builders (which need the rclpy message classes).

Images: :mod:`image`; point clouds: :mod:`cloud`; CameraInfo: :mod:`camera_info`; stamps: :mod:`stamp`.
Every failure raises :class:`depth_nodes.errors.ConversionError`.
"""
