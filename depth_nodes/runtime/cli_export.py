"""``depth-nodes export MODEL --out model.onnx``: torch -> ONNX with named I/O, metadata and a parity check.

MODEL is a model directory (config.json + model.safetensors) or a registered family name (fresh weights, e.g.
to try the runtime before training). Exits non-zero when ONNX Runtime differs from torch by more than
``--tolerance``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model directory (config.json + model.safetensors) or a registered family name")
    p.add_argument("--out", "-o", required=True, help="ONNX file to write")
    p.add_argument("--height", type=int, default=352, help="export / parity resolution: rows (px)")
    p.add_argument("--width", type=int, default=1216, help="export / parity resolution: columns (px)")
    p.add_argument("--fixed", action="store_true", help="fixed H/W instead of dynamic (resolution in metadata)")
    p.add_argument(
        "--tolerance", type=float, default=1e-3, help="largest accepted max |torch - ORT| in m (export.DEFAULT_TOLERANCE)"
    )
    p.add_argument("--frames", help="directory of .npz frames (image + sparse_depth_m) for the parity check")
    p.add_argument("--config", help="JSON of family parameters when MODEL is a family name")


def run(args: argparse.Namespace) -> int:
    import json

    from depth_nodes import models
    from depth_nodes.runtime.errors import ParityError
    from depth_nodes.runtime.export import export
    from depth_nodes.runtime.frames import load_frames

    src = Path(args.model)
    if src.is_dir():
        model = models.load(src)
    else:
        model = models.create(args.model, json.loads(args.config) if args.config else None)
        print(f"{args.model}: not a directory, exporting the registered family with fresh (untrained) weights")
    frames = load_frames(args.frames, limit=4) if args.frames else None
    try:
        report = export(
            model, args.out, args.height, args.width, dynamic=False if args.fixed else None, frames=frames,
            tolerance=args.tolerance,
        )  # fmt: skip
    except ParityError as exc:
        print(f"parity check FAILED: {exc}")
        return 1
    from depth_nodes.runtime.onnx_io import read_onnx

    info = read_onnx(args.out)
    hw = "dynamic H/W" if info.dynamic_hw else f"fixed {args.height}x{args.width}"
    print(f"wrote {args.out}: {info.model_name}, opset {info.opset}, {hw}, inputs {list(info.inputs)} -> "
          f"outputs {list(info.outputs)}")  # fmt: skip
    rel = (model.depth_nodes_config.get("outputs", {}).get("depth") or {}).get("parity_rel_tolerance")
    extra = f" m + {rel:g} x max|depth| (declared by {info.model_name!r})" if rel else ""
    print(f"parity torch vs ONNX Runtime (tolerance {args.tolerance:g}{extra}): max |diff| {report.max_abs:.3g}")
    print("\n".join(report.lines()))
    return 0
