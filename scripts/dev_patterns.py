#!/usr/bin/env python3
"""Ring-free check on synthetic scan patterns (``data.synthetic_lidar.PATTERNS``): devkit MAE / RMSE of
completers on a few frames of each pattern, dense LiDAR-visible GT, KITTI crop. Not a test::

    PYTHONPATH=. python scripts/dev_patterns.py --frames 3 --seed 7
"""

from __future__ import annotations

import argparse

import numpy as np

from depth_nodes.completion import create
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.data.kitti_depth import crop_bottom_centre
from depth_nodes.data.synthetic import generate_drive, lidar_visible_gt, synthetic_calib
from depth_nodes.data.synthetic_lidar import PATTERNS
from depth_nodes.eval.metrics import depth_metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--patterns", default=",".join(PATTERNS))
    p.add_argument("--methods", default="nearest,ip_basic,guided,guided:extrapolate")
    args = p.parse_args()
    cam, T = synthetic_calib()
    x0, y0 = crop_bottom_centre(cam.shape)
    sl = (slice(y0, y0 + 352), slice(x0, x0 + 1216))
    methods = {}
    for spec in args.methods.split(","):
        name, _, opt = spec.partition(":")
        methods[spec] = create(name, **({opt: True} if opt else {}))
    for pattern in args.patterns.split(","):
        res: dict[str, list] = {k: [] for k in methods}
        for f in generate_drive(args.seed, args.frames, pattern=pattern):
            sparse = np.ascontiguousarray(scan_to_depth(f.points, T, cam, on_nonfinite="drop").depth[sl])
            gt = lidar_visible_gt(np.asarray(f.depth_gt, np.float32), cam, T)[sl]
            image = np.ascontiguousarray(f.image[sl])
            for k, m in methods.items():
                r = depth_metrics(m.complete(sparse, image).depth, gt)
                res[k].append((r["mae_mm"], r["rmse_mm"]))
        cells = ", ".join(
            f"{k} {np.mean([a for a, _ in v]):.0f}/{np.mean([b for _, b in v]):.0f}" for k, v in res.items()
        )
        print(f"{pattern}: {cells}")


if __name__ == "__main__":
    main()
