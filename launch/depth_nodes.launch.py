"""Launch the depth node with its parameter files and topic remaps.

    ros2 launch depth_nodes depth_nodes.launch.py image:=/cam/image_raw camera_info:=/cam/camera_info \
        points:=/lidar/points extra_params_file:=$(ros2 pkg prefix depth_nodes)/share/depth_nodes/config/kitti.yaml

Arguments: image, camera_info, points (input topics), camera_model (how camera_info describes the image:
raw = K + D, rectified = P; default auto = rectified when D is all zero or the image topic names a rectified
image such as image_rect_color, else raw; overrides the parameter files), params_file (defaults: config/depth_nodes.yaml),
extra_params_file (loaded after it, e.g. config/kitti.yaml), namespace, node_name, use_sim_time,
transport (Fast DDS profile: shm = 64 MB shared-memory segment + UDPv4, config/fastdds_shm.xml, for one
host; udp = UDPv4 with 32 MB socket buffers and fast reliable repair, config/fastdds_udp.xml, for several
hosts, needs the sysctl in docs/robot.md; default = Fast DDS's built-ins), log_level.
Outputs (relative to the namespace): depth/image_rect (a raw camera's image rectified onto P first;
depth/image_raw instead only with the parameter depth_geometry: raw), depth/camera_info, depth/confidence,
depth/colorized, depth/points; and /diagnostics.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depth_nodes"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    default_params = PathJoinSubstitution([share, "config", "depth_nodes.yaml"])
    args = [
        DeclareLaunchArgument("image", default_value="image", description="input sensor_msgs/Image topic"),
        DeclareLaunchArgument(
            "camera_info", default_value="camera_info", description="input CameraInfo topic"
        ),
        DeclareLaunchArgument("points", default_value="points", description="input LiDAR PointCloud2 topic"),
        DeclareLaunchArgument(
            "params_file", default_value=default_params, description="node parameters (YAML)"
        ),
        DeclareLaunchArgument(
            "extra_params_file",
            default_value=default_params,
            description="parameters loaded after params_file, e.g. config/kitti.yaml",
        ),
        DeclareLaunchArgument(
            "camera_model",
            default_value="auto",
            description="raw (K + D) | rectified (P, no distortion) | auto (D all zero or topic image_rect*)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and outputs"),
        DeclareLaunchArgument("node_name", default_value="depth_node", description="node name"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="follow /clock (bag playback)"
        ),
        DeclareLaunchArgument(
            "transport",
            default_value="shm",
            choices=["shm", "udp", "default"],
            description="Fast DDS profile: shm (one host, large messages) | udp (several hosts) | default",
        ),
        DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error"),
    ]
    transport = LaunchConfiguration("transport")
    profiles = [
        SetEnvironmentVariable(
            "FASTRTPS_DEFAULT_PROFILES_FILE",
            PathJoinSubstitution([share, "config", "fastdds_shm.xml"]),
            condition=IfCondition(PythonExpression(["'", transport, "' == 'shm'"])),
        ),
        SetEnvironmentVariable(
            "FASTRTPS_DEFAULT_PROFILES_FILE",
            PathJoinSubstitution([share, "config", "fastdds_udp.xml"]),
            condition=IfCondition(PythonExpression(["'", transport, "' == 'udp'"])),
        ),
    ]
    node = Node(
        package=PACKAGE,
        executable="depth_node",
        name=LaunchConfiguration("node_name"),
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            LaunchConfiguration("extra_params_file"),
            {
                "use_sim_time": LaunchConfiguration("use_sim_time"),
                "camera_model": LaunchConfiguration("camera_model"),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("camera_info", LaunchConfiguration("camera_info")),
            ("points", LaunchConfiguration("points")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    return LaunchDescription([*args, *profiles, node])
