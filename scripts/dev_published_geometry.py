"""ENet's default geometry vs the official exact mode on the fixture's crop (the figures in docs/models.md).

Usage: python3 scripts/dev_published_geometry.py ENET_MODEL_DIR penet_parity_shared.npz
(an imported ENet directory: the fixture rule's weights or real ones). The crop is treated as an image of its
own: K moved by the crop (cx - 320, cy - 192), positions over the crop, the encoding's h/w = its size.
"""

import sys

import numpy as np
import torch

from depth_nodes import models
from depth_nodes.models.published_io import position_map

z = np.load(sys.argv[2])
m = models.load(sys.argv[1])
K = z["K"].copy()
K[0, 0, 2] -= 320
K[0, 1, 2] -= 192
pos = position_map(128, 448)[None]
feed = [torch.from_numpy(a) for a in (z["rgb"], z["d"], pos, K)]
with torch.inference_mode():
    out = m.official(*feed, hw=(128.0, 448.0))
for name, o in zip(("enet_rgb_depth", "enet_d_depth", "enet"), out, strict=True):
    e = z["expected_" + name]
    d = np.abs(o.numpy() - e) / np.abs(e).max()
    print(f"{name}: image geometry vs official max rel diff {d.max():.3g}, median {np.median(d):.3g}")
