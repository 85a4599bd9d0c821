"""ROS 2 layer: the only package that imports rclpy or message types.

``conversions`` (messages <-> numpy), ``qos`` (profiles and incompatible-QoS reporting) and the nodes.
"""
