"""Detection rate of the calibration-drift alarm (``pipeline.drift``) vs drift size.

Each trial feeds a fresh :class:`~depth_nodes.pipeline.drift.DriftMonitor` one window of consecutive frames
(default 10) whose scans are projected with a drifted ``T_cam_lidar`` (rotation about a seeded random axis
through the camera centre, or a translation in a seeded random direction); the alarm counts when the
monitor's level after the window is WARN or ERROR. Zero drift gives the false-alarm rate. Windows start at
every frame (sliding, overlapping), ``axes`` random axes per window and drift size.

``python3 -m depth_nodes.eval.robustness.drift_eval [--data KITTI_DRIVE] [--frames N] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from depth_nodes.eval.robustness.frames import RobustFrame
from depth_nodes.eval.robustness.misalignment import random_unit, rotation_drift, translation_drift
from depth_nodes.pipeline.drift import WARN, DriftMonitor

ROTATIONS_DEG = (0.0, 0.25, 0.5, 1.0, 2.0)
TRANSLATIONS_M = (0.05, 0.1, 0.2)


def detection_rates(
    frames: Sequence[RobustFrame],
    *,
    rotations_deg: Sequence[float] = ROTATIONS_DEG,
    translations_m: Sequence[float] = TRANSLATIONS_M,
    window: int = 10,
    axes: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """One row per (kind, size): windows, alarms, rate (WARN or ERROR after the window)."""
    rng = np.random.default_rng(seed)
    starts = range(0, len(frames) - window + 1)
    cases = [("rotation_deg", s) for s in rotations_deg] + [("translation_m", s) for s in translations_m]
    tally: dict[tuple[str, float], list[int]] = {c: [] for c in cases}
    for start in tqdm(starts, desc="drift alarm", unit="window", disable=not progress):
        win = frames[start : start + window]
        for kind, size in cases:
            for _ in range(1 if size == 0 else axes):
                axis = random_unit(rng)
                mon = DriftMonitor()
                for f in win:
                    T = (
                        rotation_drift(f.T_cam_lidar, size, axis)
                        if kind == "rotation_deg"
                        else translation_drift(f.T_cam_lidar, size * axis)
                    )
                    status = mon.update(f.image, f.sparse(f.all_points, T))
                tally[(kind, size)].append(int(status.level >= WARN))
    return [
        {
            "kind": k,
            "size": s,
            "windows": len(v),
            "alarms": int(sum(v)),
            "rate": float(np.mean(v)) if v else float("nan"),
        }
        for (k, s), v in tally.items()
    ]


def markdown(rows: list[dict]) -> str:
    lines = ["| drift | windows | alarms | alarm rate |", "|---|---:|---:|---:|"]
    for r in rows:
        unit = "deg rotation" if r["kind"] == "rotation_deg" else "m translation"
        label = "none (false alarms)" if r["size"] == 0 else f"{r['size']:g} {unit}"
        lines.append(f"| {label} | {r['windows']} | {r['alarms']} | {100 * r['rate']:.1f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from depth_nodes.eval.robustness.frames import kitti_frames, synthetic_frames

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="KITTI raw *_sync drive (default: synthetic drive)")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--axes", type=int, default=3, help="random drift axes per window and size")
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args(argv)
    frames = (
        kitti_frames(a.data, a.frames, a.seed) if a.data else list(synthetic_frames(a.seed, a.frames))
    )
    rows = detection_rates(frames, axes=a.axes, seed=a.seed)
    print(markdown(rows))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(
                {"source": a.data or f"synthetic seed {a.seed}", "frames": len(frames), "rows": rows},
                fh,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
