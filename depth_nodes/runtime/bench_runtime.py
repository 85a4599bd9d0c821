"""``depth-nodes bench runtime``: latency of each CPU backend (torch, ONNX Runtime) on one model at 1216x352.

Times the backend call alone and the whole learned estimator (pre-processing + inference + crop) on procedural
street frames, and the ONNX Runtime vs torch max |depth difference|; writes JSON (``--json``). TensorRT and
torch CUDA are timed by ``depth-nodes check-engine`` on a machine with a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model directory (default: tiny_unet with its default config, fresh weights)")
    p.add_argument("--height", type=int, default=352)
    p.add_argument("--width", type=int, default=1216)
    p.add_argument("--iterations", type=int, default=20, help="timed calls per backend (default 20)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = the library default)")
    p.add_argument("--json", type=Path, help="write the result as JSON here")


def _time(fn, iterations: int) -> dict:
    for _ in range(3):
        fn()
    ms = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    a = np.array(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "min_ms": float(a.min()), "n": iterations}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import torch

    from depth_nodes import models
    from depth_nodes.runtime import create_backend
    from depth_nodes.runtime.frames import street_frame
    from depth_nodes.runtime.predictor import LearnedOptions, build_predictor
    from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy

    res = (args.height, args.width)
    with tempfile.TemporaryDirectory(prefix="bench_runtime_") as tmp:
        if args.model:
            mdir = Path(args.model)
        else:
            torch.manual_seed(0)
            mdir = models.save(models.create("tiny_unet"), Path(tmp) / "tiny_unet")
        model = models.load(mdir)
        n_params = sum(p.numel() for p in model.parameters())
        img, sp = street_frame(*res, seed=11)
        feed = to_inputs_numpy(img, sp, Normalisation.from_contract(model.depth_nodes_config["inputs"]), model.stride)
        rows, outs = [], {}
        for kind in ("torch", "onnxruntime"):
            b = create_backend(mdir, kind, device="cpu", engine_cache_dir=tmp, resolutions=[res], threads=args.threads)
            b.ensure_loaded()
            outs[kind] = b.infer(feed)["depth"]
            infer = _time(lambda b=b: b.infer(feed), args.iterations)
            est = build_predictor(LearnedOptions(str(mdir), kind, device="cpu", engine_cache_dir=tmp, resolutions=[res]))
            e2e = _time(lambda est=est: est.predict(img, sp), max(5, args.iterations // 2))
            rows.append({"backend": kind, "device": "cpu", "precision": "fp32", "infer": infer, "estimator": e2e,
                         "load_s": b.load_time_s})  # fmt: skip
        diff = float(np.abs(outs["torch"] - outs["onnxruntime"]).max())
    result = {
        "model": model.depth_nodes_config["model"], "params": model.depth_nodes_config["params"],
        "n_parameters": int(n_params), "resolution": f"{args.width}x{args.height}", "rows": rows,
        "ort_vs_torch_max_abs_depth_m": diff, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__, "onnxruntime": _ort_version(), "processor": platform.processor() or platform.machine()},
        "gpu": "none lent to this session: TensorRT / torch CUDA not measured",
    }  # fmt: skip
    print(f"{result['model']} ({n_params / 1e6:.2f} M parameters) at {result['resolution']}, CPU fp32, "
          f"{args.iterations} calls")  # fmt: skip
    print(f"{'backend':<12} {'infer p50':>10} {'p90':>8} {'estimator p50':>14}")
    for r in rows:
        print(f"{r['backend']:<12} {r['infer']['p50_ms']:>8.1f}ms {r['infer']['p90_ms']:>6.1f}ms "
              f"{r['estimator']['p50_ms']:>12.1f}ms")  # fmt: skip
    print(f"ONNX Runtime vs torch: max |depth difference| {diff:.3g} m")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
