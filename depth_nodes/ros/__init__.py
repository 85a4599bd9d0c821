"""ROS 2 layer: the only package that imports rclpy or message types.

The node (``depth_node``, ``node_*``), its parameters, QoS, extrinsics and diagnostics; ``builders``
(numpy -> messages; the decoders live in :mod:`depth_nodes.msgs`); ``tools`` (bag play/record with rclpy,
the node bench, the node-process harness).
"""
