"""``depth-nodes bench KIND``: dispatches to the benchmark modules (each writes JSON and prints a table)."""

from __future__ import annotations

import argparse

BENCHES = {
    "completion": (
        "depth_nodes.eval.bench_completion",
        "completers' accuracy + latency on the same frames, projection timing",
    ),
    "deskew": (
        "depth_nodes.eval.bench_deskew",
        "a moving spinning LiDAR's sweep: error at object edges uncompensated vs deskewed",
    ),
    "runtime": (
        "depth_nodes.runtime.bench_runtime",
        "learned-model backends on the CPU (torch vs ONNX Runtime) at 1216x352: latency, parity",
    ),
    "mono": (
        "depth_nodes.mono.bench",
        "monocular fallback with the LiDAR cut for N frames: error vs frames since the last scan, vs guided",
    ),
    "dropout": (
        "depth_nodes.eval.bench_dropout",
        "the LiDAR dropped for 0.3/1/2/5 s on a real drive: LiDAR memory, memory+mono, mono, fresh guided",
    ),
    "node": (
        "depth_nodes.ros.tools.bench_node",
        "the depth node in its own process fed at 10/30 Hz: latency, drops, CPU, RSS",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from depth_nodes.cli import add_lazy_subcommands

    add_lazy_subcommands(
        parser.add_subparsers(dest="bench", metavar="KIND", required=True), BENCHES, "_bench"
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "_missing", None):
        print(f"depth-nodes bench: {args._missing}")
        return 2
    return int(args._bench(args) or 0)
