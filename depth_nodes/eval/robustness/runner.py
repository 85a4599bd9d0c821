"""The robustness suite's loop: every registered estimator on every corruption, severity and frame.

Per (estimator, corruption, severity) the devkit metrics (MAE / RMSE mm, delta1), the AUSE of the
estimator's confidence and of a seeded random confidence (``eval.evaluator.score_frame``), and the mean
confidence over the scored pixels (does confidence fall where the error rises?), each the mean over
frames. Image corruptions are skipped for estimators that do not read the image (their output cannot
change), LiDAR and misalignment cases for estimators that read no LiDAR. Then, per frame: the LiDAR
spoofing attack and its spread, the defences on clean / spurious / crosstalk / spoofed input, and PGD on
the image for every differentiable estimator.
"""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from depth_nodes.completion.base import Completion
from depth_nodes.errors import DepthNodesError
from depth_nodes.eval.metrics import depth_metrics, fill_background
from depth_nodes.eval.robustness import adversarial, defences, spoofing
from depth_nodes.eval.robustness.frames import FRAME_PERIOD_S, RobustFrame
from depth_nodes.eval.robustness.image_corruptions import IMAGE_CORRUPTIONS, corrupt_image
from depth_nodes.eval.robustness.lidar_corruptions import LIDAR_CORRUPTIONS, NeedsRingsError, corrupt_scan
from depth_nodes.eval.robustness.misalignment import SEVERITY_PARAMS as MIS_PARAMS
from depth_nodes.eval.robustness.misalignment import (
    random_unit,
    rotation_drift,
    time_offset_points,
    translation_drift,
)
from depth_nodes.eval.sparsification import oracle_curve, random_confidence, sparsification

SEVERITIES = (1, 2, 3, 4, 5)
KINDS = {
    "image": tuple(IMAGE_CORRUPTIONS),
    "lidar": tuple(LIDAR_CORRUPTIONS),
    "misalignment": tuple(MIS_PARAMS),
}
DEFENCE_CASES = (("clean", 0), ("spurious_returns", 3), ("crosstalk", 3), ("lidar_spoof", 3))
METRICS = ("mae_mm", "rmse_mm", "delta1", "ause_rmse", "ause_rmse_random", "mean_confidence")


@dataclass
class EstimatorHandle:
    """One registered estimator behind a uniform ``run(image, sparse) -> Completion``."""

    name: str
    uses_image: bool
    uses_lidar: bool
    run: Callable[[np.ndarray, np.ndarray], Completion]
    torch_forward: Callable | None = None


def make_estimator(name: str) -> EstimatorHandle:
    """A completer from ``completion.registry`` or an estimator of the pipeline's estimator table."""
    from depth_nodes.pipeline.estimators import estimator_factory, estimator_names

    if name in estimator_names():
        from depth_nodes.core.projection import SparseDepth
        from depth_nodes.pipeline.estimators import FrameInputs

        factory, _ = estimator_factory(name)
        try:  # a model-backed estimator (the monocular fallback) loads now, not on a background thread
            est = factory(mono_background=False)
        except TypeError:
            est = factory()
        state: dict = {}
        # A scale-fitting fallback (mono: needs_lidar False, but it fits its metric scale to the LiDAR it is
        # given) gets the frame's scan as in `depth-nodes eval --method mono`: the fallback's best case.
        fits_scale = hasattr(est, "observe")

        def run_est(image, sparse):
            n = int(np.count_nonzero(sparse))
            give_lidar = est.needs_lidar or fits_scale
            inputs = FrameInputs(state["camera"], 0, "camera", image if est.needs_image else None,
                                 SparseDepth(sparse, n, n, 0) if give_lidar else None)  # fmt: skip
            return est.estimate(inputs)

        h = EstimatorHandle(
            name, est.needs_image, est.needs_lidar, run_est, adversarial.torch_forward_of(est)
        )
        h.state = state  # the runner sets the camera per frame
        return h
    from depth_nodes.completion.registry import create

    comp = create(name)
    return EstimatorHandle(
        name,
        comp.uses_image,
        True,
        # frame.sparse() projects with the node's filter: declared conditioned, as the node declares it
        lambda image, sparse: comp.complete(sparse, image, conditioned=True),
        adversarial.torch_forward_of(comp),
    )


def _rng(seed: int, frame: int, name: str, severity: int) -> np.random.Generator:
    return np.random.default_rng([seed, frame, zlib.crc32(name.encode()), severity])


def case_input(frame: RobustFrame, kind: str, name: str, severity: int, seed: int):
    """``(image, sparse)`` of one corrupted case, or a string saying why it does not apply."""
    rng = _rng(seed, frame.index, name, severity)
    if kind == "image":
        return corrupt_image(frame.image, name, severity, rng), frame.sparse()
    if kind == "lidar":
        try:
            pts, _ = corrupt_scan(frame.points, frame.rings, name, severity, rng)
        except NeedsRingsError as exc:
            return str(exc)
        return frame.image, frame.sparse(pts)
    value = MIS_PARAMS[name][severity - 1]
    if name == "rotation_drift":
        return frame.image, frame.sparse(T=rotation_drift(frame.T_cam_lidar, value, random_unit(rng)))
    if name == "translation_drift":
        return frame.image, frame.sparse(T=translation_drift(frame.T_cam_lidar, value * random_unit(rng)))
    if frame.T_world_lidar is None or frame.T_world_lidar_next is None:
        return "no ego poses for this frame"
    pts = time_offset_points(
        frame.points, frame.T_world_lidar, frame.T_world_lidar_next, FRAME_PERIOD_S, value
    )
    return frame.image, frame.sparse(pts)


#: Pixels per frame the sparsification curves use (a seeded subset of the GT pixels): the AUSE of 20k
#: pixels differs from the full set's by < 0.01 and costs a tenth of the time.
AUSE_PIXELS = 20_000


def _score(out: Completion, gt: np.ndarray, seed: int) -> dict[str, float]:
    """Devkit metrics on every GT pixel; AUSE (method and random confidence) on a seeded subset."""
    filled = fill_background(out.depth)
    m = depth_metrics(out.depth, gt, filled=filled)
    row = {k: m[k] for k in ("mae_mm", "rmse_mm", "delta1")}
    flat = np.flatnonzero(np.isfinite(gt) & (gt > 0))
    if flat.size > AUSE_PIXELS:
        flat = np.sort(np.random.default_rng(seed).choice(flat, AUSE_PIXELS, replace=False))
    if flat.size == 0:
        return {
            **row,
            "ause_rmse": float("nan"),
            "ause_rmse_random": float("nan"),
            "mean_confidence": float("nan"),
        }
    err = np.abs(filled.ravel()[flat] - gt.ravel()[flat])
    conf = np.nan_to_num(np.asarray(out.confidence, np.float32).ravel()[flat], nan=0.0)
    oracle = oracle_curve(err)
    row["ause_rmse"] = sparsification(err, conf, oracle=oracle, seed=seed).ause
    row["ause_rmse_random"] = sparsification(
        err, random_confidence(err.shape, seed + 1), oracle=oracle, seed=seed
    ).ause
    row["mean_confidence"] = float(conf.mean())
    return row


def _applies(h: EstimatorHandle, kind: str) -> bool:
    return h.uses_image if kind == "image" else (h.uses_lidar if kind in ("lidar", "misalignment") else True)


def run_suite(
    frames: Iterable[RobustFrame],
    estimators: Sequence[str | EstimatorHandle],
    *,
    seed: int = 0,
    n_frames: int | None = None,
    kinds: dict[str, tuple[str, ...]] | None = None,
    severities: Sequence[int] = SEVERITIES,
    attacks: bool = True,
    progress: bool = True,
) -> dict:
    """Run everything; returns the JSON-ready result (``rows``, ``spoof``, ``defences``, ``pgd``, ``notes``)."""
    kinds = KINDS if kinds is None else kinds
    handles = [n if isinstance(n, EstimatorHandle) else make_estimator(n) for n in estimators]
    acc: dict[tuple, list[dict]] = {}
    spoof_acc: dict[tuple, list[dict]] = {}
    def_acc: dict[tuple, list[dict]] = {}
    pgd_acc: dict[tuple, list[dict]] = {}
    notes: set[str] = set()
    t0 = time.perf_counter()
    n_done = 0
    for frame in tqdm(frames, total=n_frames, desc="robustness", unit="frame", disable=not progress):
        n_done += 1
        for h in handles:
            if hasattr(h, "state"):
                h.state["camera"] = frame.camera
        fseed = seed * 100_003 + frame.index
        clean_sparse = frame.sparse()
        clean_out = {}
        for h in list(handles):
            try:
                clean_out[h.name] = h.run(frame.image, clean_sparse)
            except DepthNodesError as exc:
                if n_done > 1:
                    raise
                # An estimator unusable from its first frame (a model without weights, loaded lazily) is
                # dropped with the reason, so the others are still measured.
                handles.remove(h)
                notes.add(f"{h.name}: dropped, unusable on the first frame ({exc})")
                print(f"note: {h.name}: dropped, unusable on the first frame ({exc})", file=sys.stderr)
                continue
            acc.setdefault((h.name, "clean", "clean", 0), []).append(
                _score(clean_out[h.name], frame.gt, fseed)
            )
        for kind, names in kinds.items():
            users = [h for h in handles if _applies(h, kind)]
            if not users:
                continue
            for name in names:
                for sev in severities:
                    inp = case_input(frame, kind, name, sev, seed)
                    if isinstance(inp, str):
                        notes.add(f"{name}: skipped ({inp})")
                        continue
                    image, sparse = inp
                    for h in users:
                        acc.setdefault((h.name, kind, name, sev), []).append(
                            _score(h.run(image, sparse), frame.gt, fseed)
                        )
        if attacks:
            _attacks(frame, handles, clean_out, clean_sparse, seed, fseed, spoof_acc, def_acc, pgd_acc, notes)
    for h in handles:
        if h.torch_forward is None:
            notes.add(f"{h.name}: not differentiable (no torch_forward): PGD not applicable")
    return {
        "rows": _aggregate(acc, ("estimator", "kind", "corruption", "severity")),
        "spoof": _aggregate(spoof_acc, ("estimator", "severity")),
        "defences": _aggregate(def_acc, ("estimator", "case", "severity", "defence")),
        "pgd": _aggregate(pgd_acc, ("estimator", "eps_255")),
        "notes": sorted(notes),
        "frames": n_done,
        "seconds": time.perf_counter() - t0,
    }


def _attacks(frame, handles, clean_out, clean_sparse, seed, fseed, spoof_acc, def_acc, pgd_acc, notes):
    rng = _rng(seed, frame.index, "lidar_spoof", 0)
    region = spoofing.choose_region(clean_sparse, rng)
    spoofed: dict[int, np.ndarray] = {}
    if region is None:
        notes.add("lidar_spoof: a frame without a box of >= 20 returns was skipped")
    else:
        for sev, n in enumerate(spoofing.SEVERITY_PARAMS["lidar_spoof"], 1):
            pts = spoofing.inject(
                frame.points,
                region,
                n,
                frame.camera,
                frame.T_cam_lidar,
                _rng(seed, frame.index, "inject", sev),
            )
            spoofed[sev] = frame.sparse(pts)
        outside = ~region.mask(frame.gt.shape)
        for h in handles:
            if not h.uses_lidar:
                continue
            for sev, sparse in spoofed.items():
                out = h.run(frame.image, sparse)
                row = spoofing.spread(clean_out[h.name].depth, out.depth, region)
                row.update({f"{k}_outside": v for k, v in _score(out, np.where(outside, frame.gt, 0), fseed).items()
                            if k in ("mae_mm", "rmse_mm")})  # fmt: skip
                clean_outside = _score(clean_out[h.name], np.where(outside, frame.gt, 0), fseed)
                row["rmse_mm_outside_clean"] = clean_outside["rmse_mm"]
                spoof_acc.setdefault((h.name, sev), []).append(row)
    for case, sev in DEFENCE_CASES:
        if case == "clean":
            sparse = clean_sparse
        elif case == "lidar_spoof":
            if sev not in spoofed:
                continue
            sparse = spoofed[sev]
        else:
            inp = case_input(frame, "lidar", case, sev, seed)
            if isinstance(inp, str):
                continue
            sparse = inp[1]
        for h in handles:
            if not h.uses_lidar:
                continue
            run = h.run
            img = frame.image
            variants = {
                "none": sparse,
                "isolated_rejection": defences.reject_isolated_returns(sparse),
                "consistency": defences.consistency_filter(
                    sparse, lambda s, run=run, img=img: run(img, s).depth
                )[0],
            }
            for dname, s in variants.items():
                def_acc.setdefault((h.name, case, sev, dname), []).append(
                    _score(run(img, s), frame.gt, fseed)
                )
    for h in handles:
        if h.torch_forward is None or not h.uses_image:
            continue
        for eps in adversarial.BUDGETS_255:
            adv = adversarial.pgd_attack(
                h.torch_forward, frame.image, clean_sparse, eps, target=frame.gt, seed=fseed
            )
            pgd_acc.setdefault((h.name, eps), []).append(_score(h.run(adv, clean_sparse), frame.gt, fseed))


def _aggregate(acc: dict[tuple, list[dict]], keys: tuple[str, ...]) -> list[dict]:
    rows = []
    for key, per_frame in acc.items():
        row = dict(zip(keys, key, strict=True))
        for m in per_frame[0]:
            vals = np.array([p[m] for p in per_frame], np.float64)
            vals = vals[np.isfinite(vals)]
            row[m] = float(vals.mean()) if vals.size else float("nan")
        row["n_frames"] = len(per_frame)
        rows.append(row)
    return rows
