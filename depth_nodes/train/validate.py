"""Per-epoch validation on real protocols: accumulated GT of held-out frames and 20 % held-out returns.

Uses the bench's metrics (:func:`depth_nodes.eval.metrics.depth_metrics`, the KITTI devkit's) on whole frames;
the full comparison against the classical completers is ``depth-nodes bench completion`` (see docs/models.md).
"""

from __future__ import annotations

import numpy as np

from depth_nodes.eval.metrics import depth_metrics
from depth_nodes.train.data import FrameSet, Source


def predict(model, image: np.ndarray, sparse_m: np.ndarray) -> np.ndarray:
    """Depth (m) of a torch model on one frame, padded to its stride and cropped back."""
    import torch

    from depth_nodes.runtime.preprocess import Normalisation, crop_outputs, to_inputs_numpy

    feed = to_inputs_numpy(image, sparse_m, Normalisation(), int(getattr(model, "stride", 1)))
    with torch.inference_mode():
        d, c = model(*(torch.from_numpy(feed[n]) for n in model.input_names))
    return crop_outputs({"depth": d.numpy(), "confidence": c.numpy()}, *sparse_m.shape)[0]


def validate(model, sources: list[Source], n_frames: int = 6, seed: int = 0) -> dict[str, dict[str, float]]:
    """{source name: {accumulated_mae_mm, accumulated_rmse_mm, held_out_mae_mm, held_out_rmse_mm}}."""
    report = {}
    for src in sources:
        fs = FrameSet([src])
        idx = np.linspace(0, len(fs) - 1, min(n_frames, len(fs))).round().astype(int)
        rows: dict[str, list[float]] = {}
        rng = np.random.default_rng(seed)
        for i in idx:
            _, image, sparse, gt, _ = fs.load(int(i))
            if gt is not None:
                m = depth_metrics(predict(model, image, sparse), gt)
                rows.setdefault("accumulated_mae_mm", []).append(m["mae_mm"])
                rows.setdefault("accumulated_rmse_mm", []).append(m["rmse_mm"])
            out = (sparse > 0) & (rng.random(sparse.shape) < 0.2)
            m = depth_metrics(predict(model, image, np.where(out, 0, sparse)), np.where(out, sparse, 0))
            rows.setdefault("held_out_mae_mm", []).append(m["mae_mm"])
            rows.setdefault("held_out_rmse_mm", []).append(m["rmse_mm"])
        report[f"{src.path.name}[{len(idx)}]"] = {k: round(float(np.nanmean(v)), 1) for k, v in rows.items()}
    return report
