"""Play a KITTI rosbag2 (from `depth-nodes kitti2bag`), run the depth node on it and show it in RViz.

    ros2 launch depth_nodes kitti_playback.launch.py bag:=/data/kitti_2011_09_26_drive_0005 rate:=1.0

Topics are kitti2bag's: /kitti/camera_color_left/image_raw, /kitti/camera_color_left/camera_info,
/kitti/velo/pointcloud and /tf_static (velo_link -> camera_color_left). The bag is played with --clock
and the node follows it (use_sim_time). Arguments: bag (required), rate, loop, rviz, transport (shm | udp | default: the Fast DDS profile of every
process started here, see depth_nodes.launch.py).
"""

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    IncludeLaunchDescription,
)
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depth_nodes"
IMAGE = "/kitti/camera_color_left/image_raw"
CAMERA_INFO = "/kitti/camera_color_left/camera_info"
POINTS = "/kitti/velo/pointcloud"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    bag = LaunchConfiguration("bag")
    rate = LaunchConfiguration("rate")
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
    ]
    # The Fast DDS profile is set by the included depth_nodes.launch.py (SetEnvironmentVariable from the
    # `transport` forwarded to it). An IncludeLaunchDescription is not scoped: the variable it sets stays in
    # the launch context for the actions after it, so the include must come before the player and RViz.
    transport = LaunchConfiguration("transport")
    play_cmd = ["ros2", "bag", "play", bag, "--clock", "--rate", rate]
    play = ExecuteProcess(
        cmd=play_cmd, output="screen", condition=UnlessCondition(LaunchConfiguration("loop"))
    )
    play_loop = ExecuteProcess(
        cmd=[*play_cmd, "--loop"], output="screen", condition=IfCondition(LaunchConfiguration("loop"))
    )
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
    return LaunchDescription([*args, depth, play, play_loop, rviz])  # depth first: see above
