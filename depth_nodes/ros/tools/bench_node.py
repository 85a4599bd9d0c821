"""``depth-nodes bench node``: the depth node in its own process, fed a synthetic drive at fixed rates.

Frames of a synthetic KITTI-like drive are rendered first (``data.synthetic.generate_drive``, cropped to
the KITTI depth-completion size 1216x352 like ``val_selection_cropped``), turned into messages once, then
published with fresh stamps at each rate (camera at ``--rate``, LiDAR at ``min(rate, --lidar-rate)``)
into a node started per (transport, rate) run with the shipped ``depth_nodes.yaml`` + ``kitti.yaml``.
Measured per run: end-to-end latency (image stamp -> the depth image (``TOPICS['depth']``) received here, so it includes both
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
import os
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np

from depth_nodes.errors import DepthNodesError
from depth_nodes.ros.tools.bench_node_run import (
    CLOUD,
    DEPTH,
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
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the node worker's cProfile (CPU time) per run to DIR and print its top functions",
    )
    # Internal: one child process per transport (Fast DDS reads its transport settings once per process).
    parser.add_argument("--frames-file", type=Path, default=None, help=argparse.SUPPRESS)


# ------------------------------------------------------------------------------------------ report
def markdown_table(results: list[RunResult], meta: dict) -> str:
    head = (
        f"Node bench: {meta['width']}x{meta['height']} synthetic drive, {meta['points_per_scan']} points/scan, "
        f"estimator `{results[0].estimator if results else '?'}`, cloud {meta['cloud']}; machine: {meta['machine']}\n\n"
        "| transport | camera Hz | LiDAR Hz | sent | published | lost | mailbox drops | not published "
        "| lost in transport | e2e p50 | e2e p90 | e2e p99 | cloud p50 | cloud p99 | node p50 | node p99 "
        "| worker ms/frame | sustainable Hz | CPU ms/frame | CPU % | peak RSS MB |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {r.transport} | {r.rate_hz:g} | {r.lidar_rate_hz:g} | {r.frames_sent} | {r.depth_received} | "
        f"{r.lost} | {r.node_drops} | {r.node_not_published} | {r.lost_in_transport} | "
        f"{r.latency_ms['p50']:.1f} | {r.latency_ms['p90']:.1f} | "
        f"{r.latency_ms['p99']:.1f} | {r.cloud_latency_ms['p50']:.1f} | {r.cloud_latency_ms['p99']:.1f} | "
        f"{r.node_latency_ms['p50']:.1f} | {r.node_latency_ms['p99']:.1f} | "
        f"{r.worker_busy_ms.get('mean', float('nan')):.1f} | {r.sustainable_rate_hz:.0f} | "
        f"{r.cpu_ms_per_frame:.1f} | {r.cpu_percent:.0f} | {r.peak_rss_mb:.0f} |"
        for r in results
    ]
    return head + "\n".join(rows) + "\n\n" + LEGEND + "\n".join(breakdown(r) for r in results) + "\n"


LEGEND = (
    f"Latencies in ms (e2e = image stamp -> {DEPTH} received by the bench process; cloud = the same for "
    f"{CLOUD}; node = stamp -> {DEPTH} publish inside the node, last 300 frames incl. warm-up). "
    "lost = sent - published = mailbox drops (counted by the node) + not published (processed, e.g. no scan "
    "paired) + lost in transport (the rest). worker ms/frame = the node worker's mean time per frame, all "
    "stages incl. the calibration check (sustainable Hz = 1000 / it); CPU ms/frame = node process CPU time "
    "(all threads) / frames published, the figure least sensitive to other load. Where the e2e time goes "
    "(p50 per part; p50s of parts need not add up exactly to the p50 of the sum), then the worker's stages after "
    "the depth image is out:\n\n"
)


def breakdown(r: RunResult) -> str:
    """One line: the e2e parts' p50s, their sum against the e2e p50, and the per-frame work off the path."""
    parts = r.e2e_parts_p50_ms
    total = sum(v for v in parts.values() if v == v)
    st = r.stage_p50_ms
    nan = float("nan")
    return (
        f"- {r.transport} @ {r.rate_hz:g} Hz: "
        + " + ".join(f"{k} {v:.1f}" for k, v in parts.items())
        + f" = {total:.1f} ms (e2e p50 {r.latency_ms['p50']:.1f}); after the depth image: cloud "
        f"{st.get('cloud', nan):.1f} + publish_cloud {st.get('publish_cloud', nan):.1f} ms, drift check "
        f"{st.get('drift', nan):.1f} ms x {r.drift_checks} checks; worker p50/p99 "
        f"{r.worker_busy_ms.get('p50', nan):.1f}/{r.worker_busy_ms.get('p99', nan):.1f} ms"
    )


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
    if args.profile is not None:
        cmd += ["--profile", str(args.profile.resolve())]
    env = transport_env(transport)
    res = subprocess.run(cmd, env=env)
    if res.returncode != 0 or not out.is_file():
        raise DepthNodesError(f"bench child for transport {transport!r} failed (exit code {res.returncode})")
    return [RunResult(**r) for r in json.loads(out.read_text())["runs"]]


def run(args: argparse.Namespace) -> int:
    import tempfile

    from depth_nodes.core.memory import tune_malloc

    tune_malloc()
    # /diagnostics at 5 Hz: the run's counters are read at a pause after the warm-up, which must stay shorter
    # than max_image_age_s (a longer one makes the camera stale and the next scan drive a frame of its own)
    extra = {"diagnostics_period_s": 0.2, **parse_params(args.param)}
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
                f"published {r.depth_received}/{r.frames_sent} (lost {r.lost}: mailbox drops {r.node_drops}, "
                f"not published {r.node_not_published}, in transport {r.lost_in_transport}), "
                f"CPU {r.cpu_ms_per_frame:.1f} ms/frame ({r.cpu_percent:.0f} %), peak RSS {r.peak_rss_mb:.0f} MB\n"
                f"  {breakdown(r)}",
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
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],  # other work on the machine
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
