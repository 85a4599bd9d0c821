"""ONNX export of a Depth Anything V2 directory with a parity check (``python3 -m depth_nodes.mono.da_export DIR --out F``).

Same conventions as ``depth-nodes export`` (:mod:`depth_nodes.runtime.export`: pinned opset, the ``torch.export``
exporter, ``onnx.checker``, ``depth_nodes.*`` metadata), with the transformers model's own I/O: ``pixel_values``
(1 x 3 x H x W, the processor's output: ImageNet-normalised) -> ``predicted_depth`` (1 x H x W). H and W are
**fixed**: transformers' DA head computes its output size with Python ints from the input shape, which the
exporter bakes into the graph (a dynamic export silently keeps the example's output size, measured), so one file
serves one camera size (:func:`depth_nodes.mono.da_preprocess.resize_size` of it). Parity: ONNX Runtime (CPU,
fp32) vs torch on two street-like frames; :class:`~depth_nodes.runtime.errors.ParityError` over ``tolerance``
(relative to the largest |output|: metric models give metres, relative ones disparity of arbitrary scale).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

from depth_nodes.errors import DepthNodesError
from depth_nodes.runtime.errors import ModelError, ParityError

INPUT, OUTPUT = "pixel_values", "predicted_depth"
DEFAULT_REL_TOLERANCE = 1e-4


def _wrap(model):
    import torch

    class DepthOnly(torch.nn.Module):
        def __init__(self, m) -> None:
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).predicted_depth

    return DepthOnly(model).eval()


def _pixel_values(hw: tuple[int, int], seed: int) -> np.ndarray:
    """Processor-made ``pixel_values`` of a street-like frame at exactly ``hw``."""
    from depth_nodes.mono.da_preprocess import ProcessorSpec, preprocess_torch
    from depth_nodes.runtime.frames import street_frame

    img, _ = street_frame(*hw, seed=seed)
    spec = ProcessorSpec(size_hw=hw, multiple=1, keep_aspect_ratio=False)
    return preprocess_torch(img, spec, "cpu").numpy()


def export_da(model, out: str | Path, hw: tuple[int, int], tolerance: float = DEFAULT_REL_TOLERANCE,
              name: str = "") -> float:  # fmt: skip
    """Export the transformers DA ``model`` at processed size ``hw`` (multiples of 14) to ``out``; returns the
    parity: max |torch - ONNX Runtime| / max |torch| over two frames."""
    import onnx
    import onnxruntime as ort
    import torch

    from depth_nodes.runtime.export import OPSET
    from depth_nodes.runtime.onnx_io import META_PREFIX

    if hw[0] % 14 or hw[1] % 14:
        raise ModelError(f"Depth Anything input {hw[0]}x{hw[1]} must be multiples of 14 (the ViT patch)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapped = _wrap(model.float().cpu().eval())
    x = torch.from_numpy(_pixel_values(hw, 0))
    tmp = out.with_suffix(out.suffix + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            torch.onnx.export(wrapped, (x,), str(tmp), input_names=[INPUT], output_names=[OUTPUT],
                              opset_version=OPSET, dynamo=True, external_data=False, verbose=False)  # fmt: skip
        except Exception as exc:
            raise ModelError(f"ONNX export of the Depth Anything model failed: {type(exc).__name__}: {exc}") from None
    m = onnx.load(str(tmp))
    cfg = model.config
    meta = {
        "model": name or f"da_v2:{getattr(cfg, 'depth_estimation_type', 'relative')}",
        "inputs": json.dumps({INPUT: {"layout": "NCHW", "units": "normalised", "processor": "DPTImageProcessor"}}),
        "outputs": json.dumps({OUTPUT: {"kind": "metric" if cfg.depth_estimation_type == "metric" else "inverse"}}),
        "dynamic_hw": "false", "resolution": f"{hw[0]}x{hw[1]}", "stride": "14", "opset": str(OPSET),
    }  # fmt: skip
    for k, v in meta.items():
        m.metadata_props.add(key=META_PREFIX + k, value=v)
    m.producer_name = "depth_nodes"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(tmp))
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed in (1, 2):
        f = _pixel_values(hw, seed)
        with torch.inference_mode():
            ref = wrapped(torch.from_numpy(f)).numpy()
        got = sess.run([OUTPUT], {INPUT: f})[0]
        worst = max(worst, float(np.abs(ref - got).max() / max(float(np.abs(ref).max()), 1e-12)))
    if not worst <= tolerance:
        tmp.unlink(missing_ok=True)
        raise ParityError(f"ONNX Runtime differs from torch by {worst:.3g} (relative to max|depth|) > {tolerance:g}")
    tmp.replace(out)
    return worst


def main(argv: list[str] | None = None) -> int:
    from depth_nodes.mono.da_preprocess import ProcessorSpec, resize_size
    from depth_nodes.mono.hf import load_hf_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", help="Depth Anything V2 directory (config.json + model.safetensors)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--camera", default="352x1216", help="camera HxW; the file takes the processor's size of it")
    p.add_argument("--input-size-px", type=int, default=0, help="processor target size (0 = the directory's)")
    a = p.parse_args(argv)
    try:
        cam = tuple(int(v) for v in a.camera.lower().split("x"))
        hw = resize_size(*cam, ProcessorSpec.from_dir(a.model_dir, a.input_size_px))
        m = load_hf_model(a.model_dir, a.input_size_px)
        rel = export_da(m.model, a.out, hw, name=m.name)
    except (DepthNodesError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {a.out} ({hw[0]}x{hw[1]} for a {cam[0]}x{cam[1]} camera); parity max rel diff {rel:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
