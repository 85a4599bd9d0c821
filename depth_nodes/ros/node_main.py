"""Entry points of the depth node: ``depth-nodes node``, the ``depth_node`` console script, ``ros2 run``.

Imports no rclpy at module level (``depth-nodes --help`` builds every subcommand's parser from here); the
node class in :mod:`depth_nodes.ros.depth_node` is imported only when the node is started.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depth_nodes import resources
from depth_nodes.errors import DepthNodesError

NODE_NAME = "depth_node"
#: Topic names (relative: remap them in launch files or with --ros-args -r).
TOPICS = {
    "image": "image",
    "image_compressed": "image/compressed",
    "camera_info": "camera_info",
    "points": "points",
    "depth": "depth/image_rect",  # depth in rectified geometry (D = 0 in depth/camera_info): the default
    "depth_raw": "depth/image_raw",  # raw-geometry depth of a raw camera, only with depth_geometry: raw
    "depth_camera_info": "depth/camera_info",
    "confidence": "depth/confidence",
    "colorized": "depth/colorized",
    "cloud": "depth/points",
    "diagnostics": "/diagnostics",
}


def shm_profile_path() -> Path | None:
    """The shipped Fast DDS shared-memory profile (package data, every install kind), if found."""
    try:
        return resources.fastdds_profile("shm")
    except resources.ConfigNotFoundError:
        return None


def use_shm_transport() -> Path:
    """Point Fast DDS at the shipped large-segment SHM profile (before rclpy.init); returns the profile."""
    return resources.use_fastdds_profile("shm")


def spin_node(args: list[str] | None) -> int:
    """Create the node and spin until Ctrl-C / SIGTERM; parameter errors -> message and exit code 1."""
    from depth_nodes.core.memory import tune_malloc

    tune_malloc()
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from depth_nodes.ros.depth_node import DepthNode

    rclpy.init(args=args)
    node = None
    try:
        node = DepthNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except DepthNodesError as exc:
        print(f"{NODE_NAME}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(args: list[str] | None = None) -> int:
    """Console script ``depth_node`` (and ``ros2 run depth_nodes depth_node``): ``--shm`` or
    ``--transport shm|udp`` (before ``--ros-args``) select a shipped Fast DDS profile."""
    argv = list(sys.argv if args is None else args)
    ros = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    own, rest = argv[:ros], argv[ros:]
    if "--shm" in own:
        own.remove("--shm")
        use_shm_transport()
    if "--transport" in own:
        i = own.index("--transport")
        if i + 1 >= len(own):
            print(
                f"{NODE_NAME}: error: --transport needs one of {sorted(resources.FASTDDS_PROFILES)}",
                file=sys.stderr,
            )
            return 1
        try:
            resources.use_fastdds_profile(own[i + 1])
        except resources.ConfigNotFoundError as exc:
            print(f"{NODE_NAME}: error: {exc}", file=sys.stderr)
            return 1
        del own[i : i + 2]
    return spin_node(own + rest)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the depth node. Inputs: image (or image/compressed), camera_info, points; outputs depth/image_rect "
        "(32FC1 metres, NaN = no estimate; rectified onto P; depth/image_raw instead with depth_geometry: raw), "
        "depth/camera_info, depth/confidence (0..1), depth/colorized "
        "(rgb8), depth/points, /diagnostics. ROS arguments go after --ros-args, e.g. "
        "`depth-nodes node --ros-args --params-file $(python3 -m depth_nodes.resources depth_nodes.yaml) -r image:=/cam/image_raw`."
    )
    parser.add_argument(
        "--shm",
        action="store_true",
        help="use the shipped Fast DDS profile with a 64 MB shared-memory segment (config/fastdds_shm.xml)",
    )
    parser.add_argument(
        "--transport",
        choices=sorted(resources.FASTDDS_PROFILES),
        default=None,
        help="shipped Fast DDS profile: shm (= --shm) for one host, udp (UDPv4, 32 MB socket buffers, fast "
        "reliable repair; needs the sysctl in docs/robot.md) for several hosts; default: Fast DDS's own",
    )
    parser.add_argument(
        "--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=[], help="passed to rclpy unchanged"
    )


def run(args: argparse.Namespace) -> int:
    if args.shm and args.transport not in (None, "shm"):
        raise DepthNodesError(f"--shm and --transport {args.transport} contradict each other")
    if args.shm:
        use_shm_transport()
    elif args.transport:
        resources.use_fastdds_profile(args.transport)
    return spin_node([NODE_NAME, "--ros-args", *args.ros_args] if args.ros_args else [NODE_NAME])


if __name__ == "__main__":
    sys.exit(main())
