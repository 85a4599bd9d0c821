"""Output of ``depth-nodes bench completion``: markdown tables, the docs sections, plots, machine info."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

import cv2
import numpy as np

REFERENCE_METHOD = "ip_basic"
WARMUP_CALLS = 2
DOCS_START = "<!-- bench-completion:start -->"
DOCS_END = "<!-- bench-completion:end -->"
DEFAULT_DOCS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def machine_info() -> dict[str, object]:
    """CPU model, cores, library versions and date, for the JSON and the docs table."""
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if m:
            cpu = m.group(1).strip()
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


COLUMNS = [
    ("method", "method", "{}"),
    ("input", "input", "{}"),
    ("gt", "GT", "{}"),
    ("mae_mm", "MAE mm", "{:.0f}"),
    ("rmse_mm", "RMSE mm", "{:.0f}"),
    ("imae_per_km", "iMAE 1/km", "{:.2f}"),
    ("irmse_per_km", "iRMSE 1/km", "{:.2f}"),
    ("absrel", "AbsRel", "{:.4f}"),
    ("delta1", "δ<1.25", "{:.4f}"),
    ("ause_rmse", "AUSE", "{:.3f}"),
    ("ause_rmse_random", "AUSE rand", "{:.3f}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p90_ms", "p90 ms", "{:.1f}"),
    ("p99_ms", "p99 ms", "{:.1f}"),
    (f"mae_mm_vs_{REFERENCE_METHOD}", "MAE/ip", "{:.2f}"),
    (f"rmse_mm_vs_{REFERENCE_METHOD}", "RMSE/ip", "{:.2f}"),
    (f"p50_ms_vs_{REFERENCE_METHOD}", "p50/ip", "{:.2f}"),
]


def _cell(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return fmt.format(v)


def markdown_table(rows: list[dict]) -> str:
    head = "| " + " | ".join(c[1] for c in COLUMNS) + " |"
    sep = "|" + "|".join("---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(_cell(r, k, f) for k, _, f in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def markdown_section(result: dict) -> str:
    """The docs block: command, machine, table, projection timing, notes."""
    m, c, p = result["machine"], result["config"], result["projection"]
    lines = [
        f"Command: `{c['command']}`  ",
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores of {m['cores']}; Python {m['python']}, "
        f"numpy {m['numpy']}, OpenCV {m['opencv']}; {m['date']}.  ",
        f"Data: {c['source']}, {c['frames']} frames at {c.get('size', '1216x352')}; ratios are method / `{REFERENCE_METHOD}` "
        "on the same input and GT; latency = `Completer.complete` wall time after "
        f"{WARMUP_CALLS} warm-up calls. MAE/RMSE in mm, iMAE/iRMSE in 1/km (devkit hole fill applied).",
        "",
        markdown_table(result["results"]),
        "",
    ]
    if p:
        lines.append(
            f"Projection of a {p['n_points']:,}-point scan to {p['width']}x{p['height']}: median "
            f"{p['median_ms_with_occlusion']:.2f} ms with the occlusion filter, "
            f"{p['median_ms_without_occlusion']:.2f} ms without (fastest of {p.get('repeats', 30)}: "
            f"{p['min_ms_with_occlusion']:.2f} / {p['min_ms_without_occlusion']:.2f} ms)."
        )
    if c["skipped"]:
        lines.append(f"\nSkipped (not registered in this build): {', '.join(c['skipped'])}.")
    return "\n".join(lines)


def write_plots(out_dir: Path, rows: list[dict]) -> list[Path]:
    """Sparsification curves per input/GT (all methods) and a latency chart, as PNGs in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    groups = sorted({(r["input"], r["gt"]) for r in rows})
    fig, axes = plt.subplots(
        1, len(groups), figsize=(5.2 * len(groups), 4), squeeze=False, constrained_layout=True
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (inp, gt) in zip(axes[0], groups, strict=True):
        for r, c in zip([r for r in rows if (r["input"], r["gt"]) == (inp, gt)], colors * 3, strict=False):
            sp = r.get("sparsification")
            if not sp:
                continue
            ax.plot(sp["fractions"], sp["curve"], color=c, label=f"{r['method']} ({r['ause_rmse']:.3f})")
            ax.plot(sp["fractions"], sp["oracle"], color=c, ls="--", lw=0.8)
            ax.plot(sp["fractions"], sp["random"], color=c, ls=":", lw=0.8)
        ax.set_title(f"input {inp}, GT {gt}", fontsize=10)
        ax.set_xlabel("fraction removed (least confident first)")
        ax.set_ylabel("RMSE remaining / RMSE all")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="AUSE; -- oracle, : random", title_fontsize=7)
    path = out_dir / "bench_sparsification.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    lat = {(r["method"], r["input"]): r for r in rows}
    labels = [f"{m}\n{i}" for m, i in lat]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels)), 4), constrained_layout=True)
    x = np.arange(len(labels))
    for k, (key, c) in enumerate(zip(("p50_ms", "p90_ms", "p99_ms"), colors, strict=False)):
        ax.bar(x + (k - 1) * 0.27, [r[key] for r in lat.values()], 0.27, color=c, label=key.split("_")[0])
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("completion latency (ms)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    path = out_dir / "bench_latency.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    return written


def docs_markers(key: str | None) -> tuple[str, str]:
    """Start/end markers of a docs block: the synthetic one (``key`` None) or a real data set's."""
    if key is None:
        return DOCS_START, DOCS_END
    return f"<!-- bench-completion:{key}:start -->", f"<!-- bench-completion:{key}:end -->"


def update_docs(path: Path, section: str, key: str | None = None, title: str = "") -> None:
    """Replace the block between the markers of ``key`` in ``path``. A missing synthetic block is
    appended under ``## Completion``; a missing real-data block goes *before* it (real rows lead), under
    ``## Completion on real data: <title>``."""
    start, end = docs_markers(key)
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        pre, rest = text.split(start, 1)
        text = pre + block + rest.split(end, 1)[1]
    elif key is None:
        text = text.rstrip() + "\n\n## Completion\n\n" + block + "\n"
    else:
        new = f"## Completion on real data: {title or key}\n\n{block}\n\n"
        anchor = text.find("\n## ")
        text = text + "\n" + new if anchor < 0 else text[: anchor + 1] + new + text[anchor + 1 :]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _finite(obj):
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
