"""Figures of a ``depth-nodes demo`` report: latency histogram, mode timeline, point-cloud renders, per frame.

Each function draws one PNG with matplotlib (Agg backend, no display needed) from what
:mod:`depth_nodes.eval.demo_bags` read back from the bags.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from depth_nodes.eval.demo_bags import MODES, DemoResults  # noqa: E402


def latency_figure(path: Path, latency_ms: np.ndarray, node_p50: tuple[str, float] | None) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 3.6), constrained_layout=True)
    if latency_ms.size:
        ax.hist(latency_ms, bins=max(5, min(40, latency_ms.size)), color="#4477aa", edgecolor="white")
        for q, ls in ((50, "-"), (90, "--"), (99, ":")):
            v = np.percentile(latency_ms, q)
            ax.axvline(v, color="k", ls=ls, lw=1, label=f"p{q} {v:.0f} ms")
    if node_p50 is not None and np.isfinite(node_p50[1]):
        ax.axvline(node_p50[1], color="#cc6677", lw=1.5, label=f"{node_p50[0]} {node_p50[1]:.0f} ms")
    ax.set_xlabel("image published -> depth received (ms)")
    ax.set_ylabel("frames")
    ax.set_title("end-to-end latency (player -> node -> recorder, 3 processes)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def timeline_figure(path: Path, res: DemoResults) -> None:
    fig, ax = plt.subplots(figsize=(8, 2.8), constrained_layout=True)
    levels = {m: i for i, m in enumerate(MODES)}
    if res.timeline:
        t = [x for x, _ in res.timeline]
        y = [levels.get(m, len(MODES)) for _, m in res.timeline]
        ax.step(t, y, where="post", color="#228833", lw=2, label="mode (/diagnostics)")
    ax.plot(res.publish_s, [-0.6] * len(res.publish_s), "|", color="#4477aa", ms=10, label="image published")
    ax.plot(res.output_s, [-0.9] * len(res.output_s), "|", color="#ee6677", ms=10, label="depth received")
    ax.set_yticks(list(levels.values()) + [len(MODES)])
    ax.set_yticklabels(list(MODES) + ["?"])
    ax.set_ylim(-1.2, len(MODES) + 0.5)
    ax.set_xlabel("time since the first image (s)")
    ax.set_title("mode timeline")
    ax.legend(fontsize=7, loc="upper right", ncol=3)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def render_cloud(
    xyz: np.ndarray,
    rgb: np.ndarray | None,
    width: int = 960,
    height: int = 480,
    back_m: float = 9.0,
    up_m: float = 5.0,
    pitch_deg: float = 18.0,
) -> np.ndarray:
    """Render a camera-frame cloud (z forward, y down) from a virtual camera behind and above the real one.

    Z-buffered point splats (2 x 2 px): points are drawn far to near, so a nearer point overwrites a
    farther one at the same pixel (numpy fancy assignment keeps the last write). Returns H x W x 3 uint8.
    """
    ok = np.all(np.isfinite(xyz), axis=1)
    xyz = xyz[ok].astype(np.float64)
    colors = rgb[ok] if rgb is not None else None
    a = np.deg2rad(pitch_deg)
    R = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])  # pitch down
    p = (xyz - np.array([0.0, -up_m, -back_m])) @ R.T
    f = 0.8 * width
    front = p[:, 2] > 0.5
    p = p[front]
    u = np.round(f * p[:, 0] / p[:, 2] + width / 2).astype(np.int64)
    v = np.round(f * p[:, 1] / p[:, 2] + 0.62 * height).astype(np.int64)
    if colors is None:
        z = xyz[front, 2]
        colors = (
            plt.get_cmap("turbo")(np.clip(z / max(np.percentile(z, 98), 1e-3), 0, 1))[:, :3] * 255
        ).astype(np.uint8)
    else:
        colors = colors[front]
    order = np.argsort(-p[:, 2])  # far first, near last (last write wins)
    img = np.full((height, width, 3), 24, np.uint8)
    for du in (0, 1):
        for dv in (0, 1):
            uu, vv = u[order] + du, v[order] + dv
            inside = (uu >= 0) & (uu < width) & (vv >= 0) & (vv < height)
            img[vv[inside], uu[inside]] = colors[order][inside]
    return img


def cloud_figure(path: Path, xyz: np.ndarray, rgb: np.ndarray | None) -> None:
    """The published cloud rendered from 9 m behind / 5 m above the camera, plus a bird's-eye view."""
    ok = np.all(np.isfinite(xyz), axis=1)
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [2, 1]}, constrained_layout=True
    )
    ax1.imshow(render_cloud(xyz, rgb))
    ax1.set_title("/depth/points seen from 9 m behind, 5 m above the camera", fontsize=9)
    ax1.axis("off")
    pts = xyz[ok]
    c = rgb[ok] / 255.0 if rgb is not None else None
    ax2.scatter(pts[:, 0], pts[:, 2], c=c, s=0.3, linewidths=0)
    ax2.set_xlabel("x right (m)")
    ax2.set_ylabel("z forward (m)")
    ax2.set_aspect("equal")
    if len(pts):
        ax2.set_ylim(0, min(80.0, float(np.percentile(pts[:, 2], 99))))
    ax2.set_title(f"bird's-eye view ({len(pts)} points)", fontsize=9)
    ax2.set_facecolor("#181818")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def per_frame_figure(path: Path, frames: list[dict]) -> None:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 4.6), sharex=True, constrained_layout=True)
    idx = np.arange(len(frames))
    if any("mae_mm" in f for f in frames):
        for key in ("mae_mm", "rmse_mm"):
            ax1.plot(idx, [f.get(key, np.nan) for f in frames], marker="o", ms=3, label=key)
        ax1.set_ylabel("mm")
        ax1.legend(fontsize=8)
    else:
        ax1.plot(idx, [f["valid_fraction"] for f in frames], marker="o", ms=3, label="valid fraction")
        ax1.set_ylabel("fraction of pixels with depth")
    ax1.grid(alpha=0.3)
    ax2.bar(idx, [f.get("latency_ms", np.nan) for f in frames], color="gray")
    ax2.set_ylabel("latency (ms)")
    ax2.set_xlabel("published frame")
    ax2.grid(alpha=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)
