"""``depth-nodes bench node``: the depth node in its own process, fed a synthetic drive at fixed rates.

Frames of a synthetic KITTI-like drive are rendered first (``data.synthetic.generate_drive``, cropped to
the KITTI depth-completion size 1216x352 like ``val_selection_cropped``), turned into messages once, then
published with fresh stamps at each rate (camera at ``--rate``, LiDAR at ``min(rate, --lidar-rate)``)
into a node started per (transport, rate) run with the shipped ``depth_nodes.yaml`` + ``kitti.yaml``.
Measured per run: end-to-end latency (image stamp -> ``depth/image_rect`` received here, so it includes both
transports) p50/p90/p99, the node's own stamp -> publish latency and stage times (from /diagnostics),
frames sent / published / dropped (node mailbox) / lost (never published), CPU % and peak RSS of the
node process (psutil), and what the node's /diagnostics says about its inputs. Transports
(:data:`~depth_nodes.ros.tools.bench_node_run.TRANSPORTS`): ``udp`` (the shipped multi-host profile fastdds_udp.xml),
``shm`` (fastdds_shm.xml), ``udp_builtin`` (Fast DDS's built-in UDPv4 alone, OS-default socket buffers),
``default`` (Fast DDS built-ins), or any Fast DDS XML profile given by its path. One child process per
transport: Fast DDS reads its transport settings once per process.
"""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np

from depth_nodes.errors import DepthNodesError
from depth_nodes.ros.tools.bench_node_run import (
    TRANSPORTS,
    RunResult,
    make_frames,
    render_frames,
    run_once,
    transport_env,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, nargs="+", default=[10.0, 30.0], help="camera rates, Hz")
    parser.add_argument(
        "--lidar-rate", type=float, default=10.0, help="LiDAR rate cap, Hz (a spinning LiDAR)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds fed before measuring")
    parser.add_argument(
        "--transport",
        nargs="+",
        default=["udp", "shm"],
        metavar="TRANSPORT",
        help=f"DDS transports: {', '.join(TRANSPORTS)}, or a Fast DDS XML profile (path ending .xml)",
    )
    parser.add_argument("--frames", type=int, default=20, help="distinct synthetic frames (cycled)")
    parser.add_argument("--seed", type=int, default=3, help="synthetic drive seed")
    parser.add_argument("--width", type=int, default=1216, help="image width, px (bottom-centre crop)")
    parser.add_argument("--height", type=int, default=352, help="image height, px")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra node parameter (repeatable)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results table (markdown) here")
    parser.add_argument(
        "--best-effort",
        action="store_true",
        help="keep the node's default best-effort input QoS (default here: reliable inputs, like a bag player)",
    )
    # Internal: one child process per transport (Fast DDS reads its transport settings once per process).
    parser.add_argument("--frames-file", type=Path, default=None, help=argparse.SUPPRESS)


# ------------------------------------------------------------------------------------------ report
def markdown_table(results: list[RunResult], meta: dict) -> str:
    head = (
        f"Node bench: {meta['width']}x{meta['height']} synthetic drive, {meta['points_per_scan']} points/scan, "
        f"estimator `{results[0].estimator if results else '?'}`, cloud {meta['cloud']}; machine: {meta['machine']}\n\n"
        "| transport | camera Hz | LiDAR Hz | sent | published | node drops | lost | e2e p50 | e2e p90 | e2e p99 "
        "| cloud p50 | cloud p99 | node p50 | node p99 | CPU % | peak RSS MB |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {r.transport} | {r.rate_hz:g} | {r.lidar_rate_hz:g} | {r.frames_sent} | {r.depth_received} | "
        f"{r.node_drops} | {r.lost} | {r.latency_ms['p50']:.1f} | {r.latency_ms['p90']:.1f} | "
        f"{r.latency_ms['p99']:.1f} | {r.cloud_latency_ms['p50']:.1f} | {r.cloud_latency_ms['p99']:.1f} | "
        f"{r.node_latency_ms['p50']:.1f} | {r.node_latency_ms['p99']:.1f} | "
        f"{r.cpu_percent:.0f} | {r.peak_rss_mb:.0f} |"
        for r in results
    ]
    stages = "\n".join(
        f"- {r.transport} @ {r.rate_hz:g} Hz stage p50 (ms): "
        + ", ".join(f"{k} {v:.1f}" for k, v in r.stage_p50_ms.items())
        for r in results
    )
    return head + "\n".join(rows) + "\n\nLatencies in ms (e2e = image stamp -> depth/image_rect received by the bench " \
        "process; cloud = the same for depth/points; node = stamp -> depth/image_rect publish inside the node, last " \
        "300 frames incl. warm-up). 'lost' = frames never published (dropped in the " \
        "node's mailbox, in transport, or not paired).\n\n" + stages + "\n"  # fmt: skip


def parse_params(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        if ":=" not in item:
            raise DepthNodesError(f"--param needs NAME:=VALUE, got {item!r}")
        k, v = item.split(":=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _child_runs(args, transport: str, frames_file: Path, workdir: Path) -> list[RunResult]:
    """Run one transport in a child process (fresh Fast DDS settings); returns its results."""
    import subprocess
    import sys

    out = workdir / f"{Path(transport).stem}.json"
    cmd = [sys.executable, "-m", "depth_nodes.cli", "bench", "node", "--transport", transport,
           "--frames-file", str(frames_file), "--json", str(out), "--seconds", str(args.seconds),
           "--warmup", str(args.warmup), "--lidar-rate", str(args.lidar_rate), "--rate", *map(str, args.rate)]  # fmt: skip
    cmd += [a for p in args.param for a in ("--param", p)]
    if args.best_effort:
        cmd.append("--best-effort")
    env = transport_env(transport)
    res = subprocess.run(cmd, env=env)
    if res.returncode != 0 or not out.is_file():
        raise DepthNodesError(f"bench child for transport {transport!r} failed (exit code {res.returncode})")
    return [RunResult(**r) for r in json.loads(out.read_text())["runs"]]


def run(args: argparse.Namespace) -> int:
    import tempfile

    from depth_nodes.core.memory import tune_malloc

    tune_malloc()
    extra = parse_params(args.param)
    if not args.best_effort:
        extra = {"image_qos_reliability": "reliable", "points_qos_reliability": "reliable", **extra}
    if not 0 < args.seconds <= 600 or any(r <= 0 for r in args.rate):
        raise DepthNodesError("--seconds must be in (0, 600] and rates > 0")
    results: list[RunResult] = []
    if args.frames_file is not None:  # child: one transport, frames rendered by the parent
        with np.load(args.frames_file) as data:
            arrays = {k: data[k] for k in data.files}
        frames = make_frames(arrays)
        for rate in args.rate:
            print(
                f"bench node: transport {args.transport[0]}, {rate:g} Hz for {args.seconds:g} s ...",
                flush=True,
            )
            r = run_once(frames, args.transport[0], rate, args, extra)
            print(
                f"  e2e p50/p90/p99 {r.latency_ms['p50']:.1f}/{r.latency_ms['p90']:.1f}/{r.latency_ms['p99']:.1f} ms, "
                f"published {r.depth_received}/{r.frames_sent}, node drops {r.node_drops}, "
                f"CPU {r.cpu_percent:.0f} %, RSS {r.peak_rss_mb:.0f} MB",
                flush=True,
            )
            results.append(r)
        points_per_scan = frames.n_points
    else:
        arrays = render_frames(args.frames, args.seed, args.width, args.height)
        points_per_scan = int(np.mean([v.shape[0] for k, v in arrays.items() if k.startswith("points_")]))
        with tempfile.TemporaryDirectory(prefix="bench_node_") as tmp:
            frames_file = Path(tmp) / "frames.npz"
            np.savez(frames_file, **arrays)
            for transport in args.transport:
                results += _child_runs(args, transport, frames_file, Path(tmp))
    import psutil

    cloud = "organized" if extra.get("cloud_organized") else f"decimated x{extra.get('cloud_decimation', 2)}"
    meta = {
        "width": args.width,
        "height": args.height,
        "points_per_scan": points_per_scan,
        "cloud": cloud,
        "machine": f"{platform.node()} {platform.machine()}, {psutil.cpu_count()} cores, Python {platform.python_version()}",
        "params": extra,
    }
    table = markdown_table(results, meta)
    if args.frames_file is None:
        print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in results]}, indent=2))
        print(f"wrote {args.json}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
        print(f"wrote {args.markdown}")
    return 0
