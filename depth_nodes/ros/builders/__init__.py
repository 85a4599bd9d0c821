"""Message builders (numpy / :class:`~depth_nodes.core.camera.CameraModel` -> rclpy messages), one module per
message kind, mirroring the ROS-free decoders of :mod:`depth_nodes.msgs` (message -> numpy): ``image``,
``cloud``, ``camera_info``, ``stamp``, ``buffer`` (filling ``uint8[] data``). Builders need the rclpy message
classes, so they live under ``ros/``; decoders only read attributes, so they live in ``msgs/`` and the node,
the bag tools and the tests import them from there. Every failure raises
:class:`depth_nodes.errors.ConversionError`."""
