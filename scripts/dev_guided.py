#!/usr/bin/env python3
"""Development harness for the guided completer (not a test): accuracy, AUSE and timing vs IP-Basic.

Protocols (as on real KITTI): ``holdout`` hides a random 20 % of the LiDAR pixels and scores on them;
``thin`` keeps every ``--thin``-th ring as input (after occlusion filtering of the full scan) and scores
on the pixels of the other rings. Data sources:

- ``--nuscenes DIR``: the real nuScenes frame (32 beams; ``--scale`` resizes the camera),
- ``--synth SEEDS``: synthetic drives from ``depth_nodes.data.synth`` (once that branch is merged).

Prediction holes (NaN) are filled with the nearest estimate before scoring (as the KITTI devkit fills
holes), and the coverage is reported. Example::

    PYTHONPATH=. python scripts/dev_guided.py --nuscenes /work/shared/data/nuscenes_frame --scale 0.5
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from depth_nodes.completion import create
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import OcclusionFilter, scan_to_depth


@dataclass
class Case:
    """One scored input: sparse input, RGB image, ground-truth depth (0 = none)."""

    name: str
    sparse: np.ndarray
    image: np.ndarray
    gt: np.ndarray


def split_cases(
    name: str, image: np.ndarray, points: np.ndarray, rings: np.ndarray, T, cam, thin: int, seed: int, occ
) -> list[Case]:
    """The two protocols on one frame: random 20 % holdout, and ring thinning (``ring % thin == 0``)."""
    full = scan_to_depth(points, T, cam, occlusion=occ).depth
    rng = np.random.default_rng(seed)
    valid = full > 0
    hold = valid & (rng.random(full.shape) < 0.2)
    cases = [
        Case(f"{name}/holdout", np.where(hold, 0, full).astype(np.float32), image, np.where(hold, full, 0))
    ]
    keep = rings % thin == 0
    thin_raw = scan_to_depth(points[keep], T, cam, occlusion=None).depth
    thin_in = np.where((thin_raw == full) & valid, full, 0).astype(np.float32)
    gt = np.where(valid & (thin_in == 0), full, 0)
    cases.append(Case(f"{name}/thin{thin}", thin_in, image, gt))
    return cases


def nuscenes_cases(root: Path, scale: float, thin: int, cams: list[str]) -> Iterator[Case]:
    calib = json.loads((root / "calib.json").read_text())
    pts = np.fromfile(root / "lidar_top.bin", np.float32).reshape(-1, 5)
    for cam_name in cams:
        c = calib["cameras"][cam_name]
        w, h = round(c["width"] * scale), round(c["height"] * scale)
        K = np.array(c["K"], np.float64)
        K[:2] *= scale
        cam = CameraModel(w, h, K)
        img = cv2.cvtColor(cv2.imread(str(root / c["image"])), cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        occ = OcclusionFilter(vertical_px=max(7, round(30 * scale)), horizontal_px=4)
        yield from split_cases(
            f"nusc/{cam_name}",
            img,
            pts[:, :3],
            pts[:, 4].astype(int),
            np.array(c["T_cam_lidar"]),
            cam,
            thin,
            0,
            occ,
        )


def lidar_fov_mask(sparse: np.ndarray, window_px: int = 31) -> np.ndarray:
    """As the bench: at or below the highest return over a window of columns."""
    valid = sparse > 0
    h = valid.shape[0]
    top = np.where(valid.any(axis=0), np.argmax(valid, axis=0), h).astype(np.float32)
    top = cv2.erode(top[None, :], np.ones((1, window_px), np.uint8), borderType=cv2.BORDER_REPLICATE)[0]
    return np.arange(h)[:, None] >= top[None, :]


def synth_cases(seeds: list[int], n: int, thin: int = 4) -> Iterator[Case]:
    """Bench protocol: full / 16-beam input, dense KITTI-like GT (+ held-out rings for 16-beam)."""
    from depth_nodes.data.kitti_depth import crop_bottom_centre
    from depth_nodes.data.synthetic import generate_drive, lidar_visible_gt, synthetic_calib

    cam, T = synthetic_calib()
    x0, y0 = crop_bottom_centre(cam.shape)
    sl = (slice(y0, y0 + 352), slice(x0, x0 + 1216))
    for seed in seeds:
        for i, fr in enumerate(generate_drive(seed, n)):
            full = scan_to_depth(fr.points, T, cam).depth
            thin_raw = scan_to_depth(fr.points[fr.rings % thin == 0], T, cam, occlusion=None).depth
            same = (thin_raw > 0) & (full > 0) & (np.abs(thin_raw - full) <= 1e-5 * full)
            kept = np.where(same, full, 0).astype(np.float32)
            held = np.where((full > 0) & ~same, full, 0).astype(np.float32)
            dgt = np.asarray(fr.depth_gt, np.float32)
            gt = lidar_visible_gt(dgt, cam, T)  # as the bench: a surface inside the LiDAR's FOV and range
            img = np.ascontiguousarray(fr.image[sl])
            yield Case(f"s{seed}/{i}/full", np.ascontiguousarray(full[sl]), img, gt[sl])
            yield Case(f"s{seed}/{i}/16beam", np.ascontiguousarray(kept[sl]), img, gt[sl])
            yield Case(f"s{seed}/{i}/16held", np.ascontiguousarray(kept[sl]), img, held[sl])
            fc = full[sl]
            hold = (fc > 0) & (np.random.default_rng(i).random(fc.shape) < 0.2)
            yield Case(
                f"s{seed}/{i}/holdout", np.where(hold, 0, fc).astype(np.float32), img, np.where(hold, fc, 0)
            )


def fill_background(pred: np.ndarray) -> np.ndarray:
    """The KITTI devkit's hole fill (as ``depth_nodes.eval.metrics.fill_background``): per row
    min(left, right) valid neighbour, border runs take the nearest valid value, then empty rows
    copy the nearest filled row."""
    pred = np.asarray(pred, dtype=np.float64)
    h, w = pred.shape
    valid = np.isfinite(pred) & (pred > 0)
    out = np.where(valid, pred, -1.0)
    if not valid.any():
        return out
    cols = np.arange(w)
    left = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right = np.minimum.accumulate(np.where(valid, cols, w)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    d_left = out[rows, np.clip(left, 0, w - 1)]
    d_right = out[rows, np.clip(right, 0, w - 1)]
    hole = ~valid
    both = hole & (left >= 0) & (right < w)
    out[both] = np.minimum(d_left[both], d_right[both])
    m = hole & (left < 0) & (right < w)
    out[m] = d_right[m]
    m = hole & (left >= 0) & (right >= w)
    out[m] = d_left[m]
    ok_rows = np.flatnonzero(valid.any(axis=1))
    out[: ok_rows[0]] = out[ok_rows[0]]
    out[ok_rows[-1] + 1 :] = out[ok_rows[-1]]
    return out


def score(pred: np.ndarray, conf: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    m = gt > 0
    cover = float(np.isfinite(pred[m]).mean())
    filled = fill_background(pred)
    err = np.abs(filled[m] - gt[m])
    out = {"mae": float(err.mean()), "rmse": float(np.sqrt((err**2).mean())), "cover": cover}
    c = np.where(np.isfinite(pred[m]), conf[m], 0.0)
    out.update(ause(err, c))
    return out


def ause(err: np.ndarray, conf: np.ndarray, steps: int = 50) -> dict[str, float]:
    """AUSE (RMSE and MAE) of a confidence vs the oracle, and of a random confidence (expected: flat)."""
    n = err.size
    order = np.argsort(-conf, kind="stable")
    oracle = np.argsort(err)
    fr = np.linspace(0, 0.98, steps)
    res = {}
    for key, f in (("rmse", lambda e: np.sqrt(np.mean(e**2))), ("mae", np.mean)):
        cur, ora = [], []
        for q in fr:
            k = max(1, int(round(n * (1 - q))))
            cur.append(f(err[order[:k]]))
            ora.append(f(err[oracle[:k]]))
        cur, ora = np.array(cur), np.array(ora)
        full = f(err)
        res[f"ause_{key}"] = float(np.trapezoid(cur - ora, fr))
        res[f"ause_{key}_random"] = float(np.trapezoid(full - ora, fr))
    return res


def timing(methods: dict, cases: list[Case], reps: int) -> dict[str, float]:
    """Median time per method, interleaved (same load for all)."""
    times = {k: [] for k in methods}
    for _ in range(reps):
        for case in cases:
            for k, m in methods.items():
                t0 = time.perf_counter()
                m.complete(case.sparse, case.image)
                times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def pipeline_figure(path: Path, seed: int = 0, frame: int = 1) -> None:
    """Render the pipeline stages on a synthetic frame (no nuScenes pixels) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from depth_nodes.completion.guided_fill import envelopes, inverse_depth
    from depth_nodes.eval.metrics import fill_background

    cases = [c for c in synth_cases([seed], frame + 1) if c.name.startswith(f"s{seed}/{frame}/")]
    full = next(c for c in cases if c.name.endswith("/full"))
    beam16 = next(c for c in cases if c.name.endswith("/16beam"))
    g = create("guided")
    near, far, _ = envelopes(g.keys.encode(inverse_depth(full.sparse)), g.keys, g.hole_kernels_px)
    out16 = g.complete(beam16.sparse, beam16.image)
    outf = g.complete(full.sparse, full.image)
    ipf = create("ip_basic").complete(full.sparse, full.image)
    vmax = 60.0
    x0, x1 = 250, 850  # a central window, readable at page width
    panels = [
        ("camera image (synthetic)", full.image, None),
        ("1. near envelope (full input)", np.where(near > 0, 1 / np.maximum(near, 1e-6), 0), "turbo"),
        ("1. far envelope (full input)", np.where(far > 0, 1 / np.maximum(far, 1e-6), 0), "turbo"),
        ("2.-3. guided on the full 64-beam input (mean, top NaN)", outf.depth, "turbo"),
        ("guided on the 16-beam input", out16.depth, "turbo"),
        ("confidence (full input)", outf.confidence, "gray"),
        (
            "|error| guided, full input (0..3 m)",
            np.abs(fill_background(outf.depth) - full.gt) * (full.gt > 0),
            "magma",
        ),
        (
            "|error| ip_basic, full input (0..3 m)",
            np.abs(fill_background(ipf.depth) - full.gt) * (full.gt > 0),
            "magma",
        ),
    ]
    fig, axes = plt.subplots(4, 2, figsize=(13, 7.5))
    for ax, (title, img, cmap) in zip(axes.ravel(), panels, strict=True):
        img = img[90:, x0:x1]
        if cmap is None:
            ax.imshow(img)
        elif cmap == "turbo":
            ax.imshow(np.where(img > 0, img, np.nan), cmap="turbo", vmin=0, vmax=vmax)
        elif cmap == "gray":
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img, cmap=cmap, vmin=0, vmax=3)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle("guided completion, synthetic KITTI-like frame (depth colour 0..60 m, white = no estimate)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nuscenes", type=Path)
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument(
        "--cams", default="CAM_FRONT,CAM_FRONT_LEFT,CAM_FRONT_RIGHT,CAM_BACK,CAM_BACK_LEFT,CAM_BACK_RIGHT"
    )
    ap.add_argument("--synth", default="", help="comma-separated seeds")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--thin", type=int, default=2)
    ap.add_argument("--methods", default="ip_basic,lidar_only,guided")
    ap.add_argument("--params", default="{}", help="JSON kwargs for guided/lidar_only")
    ap.add_argument("--reps", type=int, default=0, help="timing repetitions (0 = skip)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--figure", type=Path, help="write the pipeline figure (synthetic frame) here and exit")
    args = ap.parse_args()
    if args.figure:
        pipeline_figure(args.figure)
        return 0
    params = json.loads(args.params)
    methods = {
        k: create(k, **(params if k in ("guided", "lidar_only") else {})) for k in args.methods.split(",")
    }
    cases: list[Case] = []
    if args.nuscenes:
        cases += list(nuscenes_cases(args.nuscenes, args.scale, args.thin, args.cams.split(",")))
    if args.synth:
        cases += list(synth_cases([int(s) for s in args.synth.split(",")], args.frames))
    agg: dict[tuple[str, str], list[dict]] = {}
    for case in tqdm(cases, desc="cases", unit="case", disable=not args.quiet):
        proto = case.name.rsplit("/", 1)[1]
        for k, m in methods.items():
            out = m.complete(case.sparse, case.image)
            s = score(out.depth, out.confidence, case.gt)
            agg.setdefault((proto, k), []).append(s)
            if not args.quiet:
                print(f"{case.name:32s} {k:12s} " + " ".join(f"{a}={b:.3f}" for a, b in s.items()))
    print("\nmean over cases (MAE/RMSE m; AUSE ratio = ause / ause_random):")
    for (proto, k), rows in sorted(agg.items()):
        mean = {a: float(np.mean([r[a] for r in rows])) for a in rows[0]}
        print(
            f"{proto:10s} {k:12s} MAE {mean['mae']:.3f} RMSE {mean['rmse']:.3f} cover {mean['cover']:.3f} "
            f"AUSE-rmse ratio {mean['ause_rmse'] / mean['ause_rmse_random']:.2f} "
            f"AUSE-mae ratio {mean['ause_mae'] / mean['ause_mae_random']:.2f}"
        )
    if args.reps:
        print("median ms:", timing(methods, cases, args.reps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
