"""Report of the robustness suite: summary tables (mER / mRR / mCE per family), PNG degradation curves
(one plot per corruption, all estimators), an HTML page and the JSON behind them.

- ``mER`` (mean error ratio): mean over the family's corruptions and severities of RMSE(corrupted) /
  RMSE(clean) of the same estimator (1 = unaffected).
- ``mRR`` (mean resilience rate, RoboDepth's mRR with delta1 as the accuracy): mean of
  delta1(corrupted) / delta1(clean).
- ``mCE`` (mean corruption error, RoboDepth's mCE): mean over corruptions of sum_s RMSE(est, s) /
  sum_s RMSE(reference, s), reference ``ip_basic`` (the published classical baseline).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from depth_nodes.eval.robustness.image_corruptions import IMAGE_FAMILIES
from depth_nodes.eval.robustness.lidar_corruptions import LIDAR_FAMILIES
from depth_nodes.eval.robustness.misalignment import MISALIGNMENT_FAMILIES

REFERENCE = "ip_basic"
#: family -> (kind, corruptions); names repeat across kinds (image fog vs LiDAR fog).
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    **{f"image/{k}": ("image", v) for k, v in IMAGE_FAMILIES.items()},
    **{f"lidar/{k}": ("lidar", v) for k, v in LIDAR_FAMILIES.items()},
    **{f"misalignment/{k}": ("misalignment", v) for k, v in MISALIGNMENT_FAMILIES.items()},
}


def _index(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["estimator"], r["kind"], r["corruption"], r["severity"]): r for r in rows}


def summary(result: dict) -> list[dict]:
    """One row per (estimator, family): mER, mRR, mCE, clean RMSE, mean AUSE / random AUSE at severity 3."""
    idx = _index(result["rows"])
    estimators = list(dict.fromkeys(r["estimator"] for r in result["rows"]))
    out = []
    for est in estimators:
        clean = idx.get((est, "clean", "clean", 0))
        if clean is None:
            continue
        for fam, (kind, names) in FAMILIES.items():
            er, rr, ce, ause, ause_r = [], [], [], [], []
            for name in names:
                sev_rows = [idx.get((est, kind, name, s)) for s in range(1, 6)]
                sev_rows = [r for r in sev_rows if r is not None]
                if not sev_rows:
                    continue
                er += [r["rmse_mm"] / clean["rmse_mm"] for r in sev_rows]
                rr += [r["delta1"] / clean["delta1"] for r in sev_rows]
                # a reference that does not read this input keeps its clean error under the corruption
                ref_clean = idx.get((REFERENCE, "clean", "clean", 0))
                ref = [idx.get((REFERENCE, kind, name, r["severity"])) or ref_clean for r in sev_rows]
                if all(x is not None for x in ref):
                    ce.append(sum(r["rmse_mm"] for r in sev_rows) / sum(x["rmse_mm"] for x in ref))
                mid = idx.get((est, kind, name, 3))
                if mid is not None:
                    ause.append(mid["ause_rmse"])
                    ause_r.append(mid["ause_rmse_random"])
            if not er:
                out.append({"estimator": est, "family": fam, "immune": True})
                continue
            out.append(
                {
                    "estimator": est,
                    "family": fam,
                    "clean_rmse_mm": clean["rmse_mm"],
                    "mER": float(np.nanmean(er)),
                    "mRR": float(np.nanmean(rr)),
                    "mCE": float(np.nanmean(ce)) if ce else float("nan"),
                    "ause_s3": float(np.nanmean(ause)) if ause else float("nan"),
                    "ause_random_s3": float(np.nanmean(ause_r)) if ause_r else float("nan"),
                }
            )
    return out


def _fmt(v, f="{:.2f}") -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f.format(v)


def summary_markdown(rows: list[dict]) -> str:
    head = "| estimator | family | clean RMSE mm | mER | mRR | mCE vs ip_basic | AUSE s3 | AUSE random s3 |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("immune"):
            lines.append(
                f"| {r['estimator']} | {r['family']} | – | 1 (does not read this input) | 1 | – | – | – |"
            )
            continue
        lines.append(
            f"| {r['estimator']} | {r['family']} | {_fmt(r['clean_rmse_mm'], '{:.0f}')} | {_fmt(r['mER'])} | "
            f"{_fmt(r['mRR'])} | {_fmt(r['mCE'])} | {_fmt(r['ause_s3'], '{:.3f}')} | "
            f"{_fmt(r['ause_random_s3'], '{:.3f}')} |"
        )
    return "\n".join(lines)


def spoof_markdown(result: dict) -> str:
    lines = [
        "| estimator | injected returns | box pixels changed > 1 m | pixels changed outside box | max spread px | "
        "RMSE outside box mm (clean) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    from depth_nodes.eval.robustness.spoofing import SEVERITY_PARAMS

    for r in result.get("spoof", []):
        n = SEVERITY_PARAMS["lidar_spoof"][r["severity"] - 1]
        lines.append(
            f"| {r['estimator']} | {n} | {r['changed_inside_frac']:.0%} | {r['changed_outside_px']:.0f} | "
            f"{r['spread_max_px']:.1f} | {_fmt(r['rmse_mm_outside'], '{:.0f}')} ({_fmt(r['rmse_mm_outside_clean'], '{:.0f}')}) |"
        )
    return "\n".join(lines)


def defence_markdown(result: dict) -> str:
    rows = result.get("defences", [])
    idx = {(r["estimator"], r["case"], r["defence"]): r for r in rows}
    lines = [
        "| estimator | input | RMSE mm no defence | isolated-return rejection | LiDAR/estimate consistency |",
        "|---|---|---:|---:|---:|",
    ]
    for est, case in dict.fromkeys((r["estimator"], r["case"]) for r in rows):
        vals = [idx.get((est, case, d)) for d in ("none", "isolated_rejection", "consistency")]
        lines.append(
            f"| {est} | {case} | "
            + " | ".join(_fmt(v["rmse_mm"], "{:.0f}") if v else "–" for v in vals)
            + " |"
        )
    return "\n".join(lines)


def pgd_markdown(result: dict) -> str:
    if not result.get("pgd"):
        return "No registered estimator is differentiable (none exposes `torch_forward`): PGD not run."
    lines = ["| estimator | eps /255 | RMSE mm | MAE mm |", "|---|---:|---:|---:|"]
    for r in result["pgd"]:
        lines.append(f"| {r['estimator']} | {r['eps_255']} | {r['rmse_mm']:.0f} | {r['mae_mm']:.0f} |")
    return "\n".join(lines)


def write_plots(result: dict, out_dir: Path) -> list[Path]:
    """One PNG per corruption: RMSE ratio (corrupted / clean) vs severity, one line per estimator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir = out_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    idx = _index(result["rows"])
    estimators = list(dict.fromkeys(r["estimator"] for r in result["rows"]))
    corr = list(dict.fromkeys((r["kind"], r["corruption"]) for r in result["rows"] if r["kind"] != "clean"))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    paths = []
    for kind, name in corr:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
        for est, c in zip(estimators, colors * 3, strict=False):
            clean = idx.get((est, "clean", "clean", 0))
            pts = [(s, idx[(est, kind, name, s)]) for s in range(1, 6) if (est, kind, name, s) in idx]
            if clean is None or not pts:
                continue
            sev = [0] + [s for s, _ in pts]
            ax.plot(sev, [1.0] + [r["rmse_mm"] / clean["rmse_mm"] for _, r in pts], "o-", color=c, label=est)
            ax2.plot(sev, [clean["ause_rmse"]] + [r["ause_rmse"] for _, r in pts], "o-", color=c, label=est)
            ax2.plot(
                sev,
                [clean["ause_rmse_random"]] + [r["ause_rmse_random"] for _, r in pts],
                ":",
                color=c,
                lw=0.8,
            )
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, 0.9), max(hi, 1.1))  # noise around 1 must not look like a trend
        ax.set_title(f"{kind}: {name}", fontsize=10)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel("RMSE / clean RMSE")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax2.set_title("AUSE (RMSE); dotted = random confidence", fontsize=9)
        ax2.set_xlabel("severity (0 = clean)")
        ax2.set_ylabel("AUSE (lower = better ranking)")
        ax2.grid(alpha=0.3)
        path = plot_dir / f"{kind}_{name}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    if result.get("spoof"):
        fig, ax = plt.subplots(figsize=(5, 3.4), constrained_layout=True)
        from depth_nodes.eval.robustness.spoofing import SEVERITY_PARAMS

        for est, c in zip(estimators, colors * 3, strict=False):
            rs = sorted((r for r in result["spoof"] if r["estimator"] == est), key=lambda r: r["severity"])
            if rs:
                n = [SEVERITY_PARAMS["lidar_spoof"][r["severity"] - 1] for r in rs]
                ax.plot(n, [r["changed_outside_px"] for r in rs], "o-", color=c, label=est)
        ax.set_xscale("log")
        ax.set_xlabel("injected returns (48 x 48 px box)")
        ax.set_ylabel("pixels changed > 1 m outside the box")
        ax.set_title("LiDAR spoofing: spread", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        path = plot_dir / "attack_lidar_spoof.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths


def _md_to_html_table(md: str) -> str:
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    if len(lines) < 2:
        return f"<p>{html.escape(md)}</p>"
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells[2:])
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(result: dict, out_dir: str | Path) -> dict[str, Path]:
    """``robustness.json``, ``summary.md``, ``plots/*.png`` and ``index.html`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {**result, "summary": summary(result)}
    (out / "robustness.json").write_text(json.dumps(_finite(result), indent=1))
    sections = {
        "Summary per family": summary_markdown(result["summary"]),
        "LiDAR spoofing": spoof_markdown(result),
        "Defences": defence_markdown(result),
        "PGD on the image": pgd_markdown(result),
    }
    md = "\n\n".join(f"### {k}\n\n{v}" for k, v in sections.items())
    if result.get("notes"):
        md += "\n\nNotes:\n" + "\n".join(f"- {n}" for n in result["notes"])
    (out / "summary.md").write_text(md + "\n")
    plots = write_plots(result, out)
    cfg = html.escape(json.dumps(result.get("config", {})))
    body = "".join(f"<h2>{html.escape(k)}</h2>{_md_to_html_table(v)}" for k, v in sections.items())
    imgs = "".join(f'<img src="plots/{p.name}" alt="{p.stem}">' for p in plots)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.get("notes", []))
    (out / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>depth_nodes robustness</title><style>"
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{width:720px;margin:4px}</style>"
        f"</head><body><h1>depth_nodes robustness</h1><p><code>{cfg}</code></p>{body}"
        f"<h2>Degradation curves</h2>{imgs}<h2>Notes</h2><ul>{notes}</ul></body></html>"
    )
    return {"json": out / "robustness.json", "html": out / "index.html", "summary": out / "summary.md"}


def _finite(obj):
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _finite(obj.item())
    return obj
