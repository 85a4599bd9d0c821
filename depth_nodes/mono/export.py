"""ONNX export of the own mono net (``python3 -m depth_nodes.mono.export [MODEL_DIR] --out mono.onnx``).

Same conventions as ``depth-nodes export`` (``runtime/export.py``: opset, dynamo exporter, ``onnx.checker``, the
``depth_nodes.*`` metadata) but with the mono net's own inputs (``image`` + ``ray_elevation``), which the
runtime's completion-model feed does not build. H/W are dynamic in multiples of the net's stride (16); the
node feeds the net at the training focal length (360 px: KITTI 1216x352 -> 608x176), the documented profile
for TensorRT. Parity vs torch with ONNX Runtime on street-like frames at two sizes; exit 1 over tolerance.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

from depth_nodes.errors import DepthNodesError

OPSET = 18
DEFAULT_HW = (176, 608)


def _feed(h: int, w: int, seed: int) -> dict[str, np.ndarray]:
    from depth_nodes.mono.net import normalise_rgb, ray_elevation
    from depth_nodes.runtime.frames import street_frame

    img, _ = street_frame(h, w, seed=seed)
    K = np.array([[360.0, 0, w / 2], [0, 360.0, h * 0.43], [0, 0, 1]])
    return {"image": normalise_rgb(img)[None], "ray_elevation": ray_elevation(h, w, K)[None, None]}


def export_mono(model_dir: str | Path, out: str | Path, hw: tuple[int, int] = DEFAULT_HW,
                tolerance: float = 1e-3) -> list[tuple[str, float]]:  # fmt: skip
    """Export + check + metadata + parity; returns ``[(resolution, max |depth diff| m)]``."""
    import onnx
    import onnxruntime as ort
    import torch

    from depth_nodes.mono.own import load_own_model
    from depth_nodes.runtime.export import add_metadata

    model = load_own_model(model_dir).model
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    feed = _feed(*hw, seed=0)
    args = tuple(torch.from_numpy(feed[n]) for n in model.input_names)
    h = torch.export.Dim("h", min=1, max=256)
    w = torch.export.Dim("w", min=1, max=256)
    dims = {2: model.stride * h, 3: model.stride * w}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(model, args, str(out), input_names=list(model.input_names),
                          output_names=list(model.output_names), opset_version=OPSET, dynamo=True,
                          dynamic_shapes={n: dims for n in model.input_names}, external_data=False)  # fmt: skip
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    add_metadata(out, model, hw[0], hw[1], True)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rows = []
    for hh, ww in (hw, (hw[0] // 2 // model.stride * model.stride, hw[1] // 2 // model.stride * model.stride)):
        f = _feed(hh, ww, seed=1)
        with torch.inference_mode():
            ref = model(*(torch.from_numpy(f[n]) for n in model.input_names)).numpy()
        got = sess.run(None, f)[0]
        rows.append((f"{hh}x{ww}", float(np.abs(ref - got).max())))
    worst = max(d for _, d in rows)
    if worst > tolerance:
        raise DepthNodesError(f"ONNX parity {worst:.3g} m exceeds the tolerance {tolerance} m: {rows}")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", nargs="?", default="", help="mono_unet directory (default: the shipped net)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--height", type=int, default=DEFAULT_HW[0])
    p.add_argument("--width", type=int, default=DEFAULT_HW[1])
    a = p.parse_args(argv)
    try:
        rows = export_mono(a.model_dir, a.out, (a.height, a.width))
    except DepthNodesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for res, d in rows:
        print(f"  {res:>9}  depth max|diff| {d:.3g} m")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
