"""CPU latency of a Depth Anything V2 **Small-sized** model (random weights from a config of the Small's size: ViT-S/14,
hidden 384, 12 layers, 6 heads; DPT neck 48/96/192/384, fusion 64; ~25 M parameters) on a camera frame, torch
and ONNX Runtime, with the node's pre-processing (the processor's size rule: 352x1216 -> 518x1792).

``python3 -m depth_nodes.mono.bench_da [--camera 352x1216] [--runs 2] [--json OUT]``. No weights are downloaded:
latency does not depend on the weights' values (accuracy needs the released ones, see docs/mono.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def small_config():
    import transformers as T

    bb = T.Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                        image_size=518, patch_size=14, out_indices=[3, 6, 9, 12], reshape_hidden_states=False,
                        layerscale_value=1.0)  # fmt: skip
    return T.DepthAnythingConfig(backbone_config=bb, reassemble_hidden_size=384, neck_hidden_sizes=[48, 96, 192, 384],
                                 fusion_hidden_size=64, head_hidden_size=32, depth_estimation_type="metric",
                                 max_depth=80)  # fmt: skip


def _p50(fn, runs: int) -> float:
    fn()  # warm-up (first-call allocations)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench(camera_hw: tuple[int, int] = (352, 1216), runs: int = 2, onnx: bool = True) -> dict:
    import torch
    import transformers as T

    from depth_nodes.mono.da_export import export_da
    from depth_nodes.mono.hf import load_hf_model
    from depth_nodes.runtime.frames import street_frame

    img, _ = street_frame(*camera_hw, seed=0)
    res: dict = {"camera": f"{camera_hw[0]}x{camera_hw[1]}", "threads": torch.get_num_threads(), "runs": runs}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "da_v2_small_sized"
        torch.manual_seed(0)
        T.DepthAnythingForDepthEstimation(small_config()).eval().save_pretrained(d)
        m = load_hf_model(d, device="cpu")
        res["params_m"] = round(sum(p.numel() for p in m.model.parameters()) / 1e6, 2)
        x = m.preprocess(img)
        res["input"] = f"{x.shape[2]}x{x.shape[3]}"
        res["preprocess_ms"] = _p50(lambda: m.preprocess(img), runs) * 1e3
        res["torch_cpu_ms"] = _p50(lambda: m.predict(img), runs) * 1e3
        if onnx:
            t0 = time.perf_counter()
            res["onnx_parity_rel"] = export_da(m.model, d / "model.onnx", tuple(x.shape[2:]))  # found by the loader
            res["onnx_export_s"] = time.perf_counter() - t0
            o = load_hf_model(d, device="cpu", backend="onnxruntime", engine_cache_dir=tmp, camera_hw=camera_hw)
            res["ort_cpu_ms"] = _p50(lambda: o.predict(img), runs) * 1e3
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--camera", default="352x1216")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    res = bench(tuple(int(v) for v in a.camera.lower().split("x")), a.runs, not a.no_onnx)
    print(json.dumps(res, indent=2))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
