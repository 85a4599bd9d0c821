"""``python3 scripts/dev_mono_held_out.py GT_DIR [OUT.json]``: the shipped own mono net on a KITTI DC layout without
accumulated GT (e.g. make-gt of the nuScenes frame): held-out protocol (input 80 % of the returns,
scale fitted on them; scored on the other 20 %), next to guided on the same input."""

import json
import sys

import numpy as np

from depth_nodes import completion
from depth_nodes.data.kitti_depth import list_frames
from depth_nodes.eval.metrics import depth_metrics, mean_metrics
from depth_nodes.mono.completer import MonoCompleter

frames = list_frames(sys.argv[1])
mono = MonoCompleter("mono", max_depth_m=80.0)
g = completion.create("guided")
rows = {"mono": [], "guided": []}
for i, f in enumerate(frames):
    d = f.load()
    sp = d["sparse"]
    rng = np.random.default_rng(i)
    ys, xs = np.nonzero(sp > 0)
    hold = rng.random(len(ys)) < 0.2
    inp = sp.copy()
    inp[ys[hold], xs[hold]] = 0
    gt = np.zeros_like(sp)
    gt[ys[hold], xs[hold]] = sp[ys[hold], xs[hold]]
    gt[gt > 80] = 0
    mono.set_intrinsics(d["K"])
    rows["mono"].append({"frame": f.name, **depth_metrics(mono.complete(inp, d["image"]).depth, gt)})
    rows["guided"].append({"frame": f.name, **depth_metrics(g.complete(inp, d["image"]).depth, gt)})
    print(f.name, {k: round(rows[k][-1]["absrel"], 3) for k in rows}, flush=True)
res = {k: mean_metrics(v) for k, v in rows.items()}
print(json.dumps({k: {m: round(v[m], 4) for m in ("absrel", "mae_mm", "rmse_mm", "delta1")} for k, v in res.items()}))
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as fh:
        json.dump({"mean": res, "per_frame": rows}, fh, indent=1, default=float)
