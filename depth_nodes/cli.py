"""The ``depth-nodes`` command. Units everywhere: depth in metres, time in seconds unless a name says _ms.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
modules are imported lazily so that ``depth-nodes synth`` never loads rclpy or torch.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from depth_nodes.errors import DepthNodesError

#: name -> (module, one-line help). Order is the order of ``--help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "depth_nodes.demo",
        "the main job: synthetic drive -> bag -> depth node -> recorded output -> report",
    ),
    "synth": (
        "depth_nodes.data.synth_cli",
        "generate a synthetic KITTI-like drive (raw + depth-completion layouts)",
    ),
    "make-gt": (
        "depth_nodes.data.make_gt",
        "KITTI-DC-style accumulated ground truth for a real drive (KITTI raw or PandaSet)",
    ),
    "complete": (
        "depth_nodes.completion.cli",
        "complete sparse depth PNGs (KITTI uint16, metres x 256) with a completer",
    ),
    "eval": (
        "depth_nodes.eval.cli",
        "evaluate a completer on a KITTI val_selection_cropped directory (mm, 1/km)",
    ),
    "bench": (
        "depth_nodes.bench",
        "benchmarks: completion accuracy/latency, projection, node latency (JSON out)",
    ),
    "train": ("depth_nodes.train", "train learned models (mono: the own monocular net)"),
    "model": (
        "depth_nodes.models.cli",
        "published checkpoints: `model import {enet,penet} CKPT -o DIR` (never executed), `model check DIR --fixture`",
    ),
    "export": ("depth_nodes.runtime.cli_export", "export a learned model to ONNX (named I/O, metadata, parity check)"),
    "build-engine": (
        "depth_nodes.runtime.cli_build_engine",
        "build (or find in the cache) a TensorRT engine from an ONNX (CUDA GPU + TensorRT)",
    ),
    "check-engine": (
        "depth_nodes.runtime.cli_check_engine",
        "compare a TensorRT engine with ONNX Runtime on frames; FPS per precision (CUDA GPU + TensorRT)",
    ),
    "robustness": (
        "depth_nodes.eval.robustness.cli",
        "robustness suite: image/LiDAR corruptions, misalignment, attacks, calibration (HTML + PNG + JSON)",
    ),
    "kitti2bag": ("depth_nodes.data.kitti2bag", "convert a KITTI raw drive to a rosbag2 (mcap or sqlite3)"),
    "play": ("depth_nodes.ros.tools.bag_play", "play a rosbag2 with rclpy (no ROS CLI needed)"),
    "record": (
        "depth_nodes.ros.tools.bag_record",
        "record topics to an mcap rosbag2 with rclpy (no ROS CLI needed)",
    ),
    "node": ("depth_nodes.ros.node_main", "run the depth node (same as `ros2 run depth_nodes depth_node`)"),
}


def add_lazy_subcommands(sub, commands: dict[str, tuple[str, str]], attr: str = "_run") -> None:
    """Add one subparser per ``name -> (module, help)``; the module supplies its arguments and ``run``.

    A module that is not in this build (an optional part missing) leaves a subcommand that says so.
    """
    for name, (module, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            p.set_defaults(_missing=f"'{name}' is not available in this build ({module} missing)")
            continue
        mod.add_arguments(p)
        p.set_defaults(**{attr: mod.run})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depth-nodes",
        description=(
            "Dense metric depth from camera + LiDAR. Depth is in metres (KITTI PNGs: uint16 = metres x 256, "
            "0 = no data; ROS images: 32FC1 metres, NaN = no estimate); errors in mm and 1/km like the KITTI devkit."
        ),
    )
    add_lazy_subcommands(parser.add_subparsers(dest="command", metavar="COMMAND"), COMMANDS)
    return parser


def main(argv: list[str] | None = None) -> int:
    from depth_nodes.core.memory import tune_malloc

    tune_malloc()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"depth-nodes: {args._missing}", file=sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except DepthNodesError as exc:
        print(f"depth-nodes {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"depth-nodes {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
