"""``depth-nodes bench KIND``: dispatches to the benchmark modules (each writes JSON and prints a table)."""

from __future__ import annotations

import argparse
from importlib import import_module

BENCHES = {
    "completion": (
        "depth_nodes.eval.bench_completion",
        "completers' accuracy + latency on the same frames, projection timing",
    ),
    "node": (
        "depth_nodes.ros.bench_node",
        "the depth node in its own process fed at 10/30 Hz: latency, drops, CPU, RSS",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="KIND", required=True)
    for name, (module, help_text) in BENCHES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            p.set_defaults(_run=lambda a, m=module: print(f"bench not available ({m} missing)") or 2)
            continue
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)


def run(args: argparse.Namespace) -> int:
    return int(args._run(args) or 0)
