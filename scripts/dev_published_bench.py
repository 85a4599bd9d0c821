"""CPU latency of imported ENet / PENet directories at 1216 x 352 (torch, ONNX Runtime) next to ``guided``.

Usage: python3 scripts/dev_published_bench.py DIR [DIR ...] [--iterations 3] [--json out.json]
Each DIR is a ``depth-nodes model import`` output (weights do not change the latency; the fixture rule's random
weights were used for docs/benchmarks.md). Times the backend call alone (``infer``) on a procedural 1216 x 352
street frame, 3 warm-up calls first, and ``guided`` (the node's default completer) on the same frame.
"""

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from depth_nodes import completion, models
from depth_nodes.runtime import create_backend
from depth_nodes.runtime.bench_runtime import _time
from depth_nodes.runtime.frames import street_frame
from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy

p = argparse.ArgumentParser()
p.add_argument("dirs", nargs="+", type=Path)
p.add_argument("--iterations", type=int, default=3)
p.add_argument("--json", type=Path)
args = p.parse_args()
res = (352, 1216)
img, sp = street_frame(*res, seed=11)
guided = completion.create("guided")
rows = [{"method": "guided", "backend": "numpy/OpenCV", **_time(lambda: guided.complete(sp, img), 10)}]
print(f"guided: p50 {rows[0]['p50_ms']:.1f} ms")
with tempfile.TemporaryDirectory() as tmp:
    for d in args.dirs:
        cfg = models.read_config(d)
        feed = to_inputs_numpy(img, sp, Normalisation.from_contract(cfg["inputs"]), 32)
        for kind in ("torch", "onnxruntime"):
            b = create_backend(d, kind, device="cpu", engine_cache_dir=tmp, resolutions=[res])
            b.ensure_loaded()
            t = _time(lambda b=b, f=feed: b.infer(f), args.iterations)
            rows.append({"method": cfg["model"], "backend": kind, "load_s": b.load_time_s, **t})
            print(f"{cfg['model']} {kind}: p50 {t['p50_ms']:.0f} ms (min {t['min_ms']:.0f}, n {t['n']}), "
                  f"load {b.load_time_s:.1f} s")  # fmt: skip
            b.close()
out = {"resolution": "1216x352", "rows": rows, "torch": torch.__version__, "cpus": os.cpu_count(),
       "processor": platform.processor() or platform.machine(), "load_avg": os.getloadavg()}  # fmt: skip
if args.json:
    args.json.write_text(json.dumps(out, indent=2) + "\n")
