"""Play a KITTI rosbag2 (from `depth-nodes kitti2bag`), run the depth node on it and show it in RViz.

    ros2 launch depth_nodes kitti_playback.launch.py bag:=/data/kitti_2011_09_26_drive_0005 rate:=1.0

Topics are kitti2bag's: /kitti/camera_color_left/image_raw, /kitti/camera_color_left/camera_info,
/kitti/velo/pointcloud and /tf_static (velo_link -> camera_color_left). The bag is played with --clock
and the node follows it (use_sim_time). Arguments: bag (required), rate, loop, rviz, transport (shm | udp |
default: the Fast DDS profile of every process started here, see depth_nodes.launch.py), player (ros2 =
`ros2 bag play`, needs rosbag2 (a full ROS install); depth_nodes = this package's `depth-nodes play`, rclpy
only, for pip installs without the ros2 CLI; it starts once the node has subscribed, waiting up to
player_wait_s).
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, OpaqueFunction
from launch.conditions import IfCondition, evaluate_condition_expression
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import ExecutableInPackage, FindPackageShare

PACKAGE = "depth_nodes"
IMAGE = "/kitti/camera_color_left/image_raw"
CAMERA_INFO = "/kitti/camera_color_left/camera_info"
POINTS = "/kitti/velo/pointcloud"
ROS2_BAG_PLAY = ["ros2", "bag", "play"]


def _player(context: LaunchContext) -> list[ExecuteProcess]:
    """The bag player the `player` argument names, with --clock, the rate and (if asked) --loop."""
    args = [LaunchConfiguration("bag"), "--clock", "--rate", LaunchConfiguration("rate")]
    if evaluate_condition_expression(context, [LaunchConfiguration("loop")]):
        args.append("--loop")
    if LaunchConfiguration("player").perform(context) == "depth_nodes":
        wait = ["--wait-for-subscribers", LaunchConfiguration("player_wait_s")]
        cmd = [ExecutableInPackage("depth-nodes", PACKAGE), "play", *args, *wait]
    else:
        cmd = [*ROS2_BAG_PLAY, *args]
    return [ExecuteProcess(cmd=cmd, name="bag_player", output="screen")]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    args = [
        DeclareLaunchArgument("bag", description="rosbag2 directory written by `depth-nodes kitti2bag`"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate factor"),
        DeclareLaunchArgument("loop", default_value="false", description="replay the bag forever"),
        DeclareLaunchArgument(
            "rviz", default_value="true", description="start rviz2 with config/depth_nodes.rviz"
        ),
        DeclareLaunchArgument(
            "transport",
            default_value="shm",
            choices=["shm", "udp", "default"],
            description="Fast DDS profile",
        ),
        DeclareLaunchArgument(
            "player",
            default_value="ros2",
            choices=["ros2", "depth_nodes"],
            description="ros2: `ros2 bag play` (rosbag2) | depth_nodes: `depth-nodes play` (rclpy only)",
        ),
        DeclareLaunchArgument(
            "player_wait_s",
            default_value="30",
            description="player depth_nodes: wait up to this long for the node to subscribe before playing",
        ),
    ]
    # The Fast DDS profile is set by the included depth_nodes.launch.py (SetEnvironmentVariable from the
    # `transport` forwarded to it). An IncludeLaunchDescription is not scoped: the variable it sets stays in
    # the launch context for the actions after it, so the include must come before the player and RViz.
    transport = LaunchConfiguration("transport")
    depth = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "depth_nodes.launch.py"])),
        launch_arguments={
            "image": IMAGE,
            "camera_info": CAMERA_INFO,
            "points": POINTS,
            "extra_params_file": PathJoinSubstitution([share, "config", "kitti.yaml"]),
            "camera_model": "rectified",  # KITTI's images are rectified (P_rect_02)
            "use_sim_time": "true",
            "transport": transport,
        }.items(),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "config", "depth_nodes.rviz"])],
        parameters=[{"use_sim_time": True}],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription([*args, depth, OpaqueFunction(function=_player), rviz])  # depth first: see above
