"""``depth-nodes train KIND``: training tools (torch imported only by the chosen one).

Each kind is a module with ``add_arguments(parser)`` and ``run(args) -> int``; add yours to :data:`KINDS`.
"""

from __future__ import annotations

import argparse

#: kind -> (module, one-line help)
KINDS: dict[str, tuple[str, str]] = {
    "mono": (
        "depth_nodes.train.mono",
        "train the own monocular net: synthetic drives + real drives distilled from their LiDAR",
    ),
    "completion": (
        "depth_nodes.train.cli",
        "train a depth-completion model (depth_nodes.models): weighted sources, self-supervision, DDP",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from depth_nodes.cli import add_lazy_subcommands

    add_lazy_subcommands(parser.add_subparsers(dest="kind", metavar="KIND", required=True), KINDS, attr="_train")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "_missing", None):
        from depth_nodes.errors import DepthNodesError

        raise DepthNodesError(args._missing)
    return args._train(args)
