"""torch -> ONNX export with named I/O, dynamic H/W, a pinned opset, metadata and an automatic parity check.

The exporter is torch's ``torch.export``-based one (``dynamo=True``; the TorchScript exporter is deprecated in
torch 2.9+). H and W are exported as multiples of the model's stride (``stride * Dim``) so the graph carries no
shape guards that a TensorRT profile could violate; a model that cannot be exported dynamically is exported at
the given resolution and says so in ``depth_nodes.dynamic_hw`` / ``depth_nodes.resolution``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_nodes.runtime.errors import ModelError, ParityError
from depth_nodes.runtime.frames import Frame, street_frames
from depth_nodes.runtime.onnx_io import META_PREFIX, read_onnx
from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy

log = logging.getLogger(__name__)

#: Pinned: TensorRT 10.x (JetPack 6: 10.3) and 11.x parse opset 18, ONNX Runtime >= 1.14 runs it.
OPSET = 18
#: max |torch - ONNX Runtime| depth (m) an export may differ by: the runtime's parity contract (issue 14: 1e-3 m).
#: 1e-4 failed the auto-export of real checkpoints by float noise at far range (1.3e-4 m at 120 m).
DEFAULT_TOLERANCE = 1e-3
MAX_DIM_BLOCKS = 512  # H, W up to stride * 512 (4096 px at stride 8)


@dataclass
class ParityReport:
    """max / mean |torch - ONNX Runtime| per output and resolution."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def max_abs(self) -> float:
        return max((r["max_abs"] for r in self.rows), default=float("nan"))

    def lines(self) -> list[str]:
        return [
            f"  {r['resolution']:>10}  {r['output']:<12} max|diff| {r['max_abs']:.3g}  mean|diff| {r['mean_abs']:.3g}"
            for r in self.rows
        ]


def _example_inputs(model, frames: list[Frame], height: int, width: int):
    import torch

    norm = Normalisation.from_contract(model.depth_nodes_config.get("inputs"))
    stride = int(getattr(model, "stride", 1))
    img, sp = frames[0]
    feed = to_inputs_numpy(img, sp, norm, stride, size=(height, width))
    return tuple(torch.from_numpy(feed[n]) for n in model.input_names)


def torch_export_onnx(model, out: Path, height: int, width: int, dynamic: bool, frames: list[Frame]) -> bool:
    """Export ``model`` to ``out``; returns whether H/W are dynamic in the file."""
    import torch

    args = _example_inputs(model, frames, height, width)
    dyn = None
    if dynamic:
        stride = int(getattr(model, "stride", 1))
        h = torch.export.Dim("h", min=1, max=MAX_DIM_BLOCKS)
        w = torch.export.Dim("w", min=1, max=MAX_DIM_BLOCKS)
        dims = {2: stride * h, 3: stride * w} if stride > 1 else {2: h, 3: w}
        dyn = {n: dims for n in model.input_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation chatter; real failures raise
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            torch.onnx.export(
                model,
                args,
                str(out),
                input_names=list(model.input_names),
                output_names=list(model.output_names),
                opset_version=OPSET,
                dynamo=True,
                dynamic_shapes=dyn,
                external_data=False,
                verbose=False,
            )
        except Exception as exc:
            if dynamic:
                log.warning("dynamic H/W export failed (%s): exporting fixed %dx%d", exc, height, width)
                return torch_export_onnx(model, out, height, width, False, frames)
            raise ModelError(f"ONNX export of {model.depth_nodes_config['model']!r} failed: {exc}") from None
    return dynamic


def add_metadata(path: Path, model, height: int, width: int, dynamic: bool) -> None:
    import onnx

    from depth_nodes.models import config_hash

    cfg = model.depth_nodes_config
    m = onnx.load(str(path))
    meta = {
        "model": cfg["model"],
        "config_hash": config_hash(cfg),
        "config": json.dumps(cfg, sort_keys=True),
        "inputs": json.dumps(cfg.get("inputs", {}), sort_keys=True),
        "outputs": json.dumps(cfg.get("outputs", {}), sort_keys=True),
        "dynamic_hw": "true" if dynamic else "false",
        "resolution": f"{height}x{width}",
        "stride": str(int(getattr(model, "stride", 1))),
        "opset": str(OPSET),
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=META_PREFIX + k, value=v)
    m.producer_name = "depth_nodes"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))


def parity(model, onnx_path: Path, frames: list[Frame], sizes: list[tuple[int, int]]) -> ParityReport:
    """Compare torch and ONNX Runtime (CPU, fp32) on ``frames`` resized to each of ``sizes``."""
    import cv2
    import torch

    from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend

    ort_b = OnnxRuntimeBackend(onnx_path)
    ort_b.ensure_loaded()
    norm = Normalisation.from_contract(model.depth_nodes_config.get("inputs"))
    stride = int(getattr(model, "stride", 1))
    report = ParityReport()
    for h, w in sizes:
        worst = {n: [0.0, 0.0, 0.0] for n in model.output_names}
        for img, sp in frames:
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
                sp = cv2.resize(sp, (w, h), interpolation=cv2.INTER_NEAREST)
            feed = to_inputs_numpy(img, sp, norm, stride, size=(h, w))
            with torch.inference_mode():
                ref = model(*(torch.from_numpy(feed[n]) for n in model.input_names))
            got = ort_b.infer(feed)
            for n, r in zip(model.output_names, ref, strict=True):
                d = np.abs(r.numpy() - got[n])
                worst[n][0] = max(worst[n][0], float(d.max()))
                worst[n][1] = max(worst[n][1], float(d.mean()))
                worst[n][2] = max(worst[n][2], float(np.abs(r.numpy()).max()))
        for n, (mx, mean, ref_max) in worst.items():
            report.rows.append(
                {"resolution": f"{h}x{w}", "output": n, "max_abs": mx, "mean_abs": mean, "max_ref": ref_max}
            )
    return report


def within_tolerance(report: ParityReport, tolerance: float, outputs: dict[str, Any] | None) -> bool:
    """Every row within ``tolerance`` (absolute) plus the output's declared ``parity_rel_tolerance`` x max|torch|.

    A relative term is declared by families whose outputs are not bounded depths at arbitrary weights (the
    published ENet / PENet: float32 noise of a 130 M parameter network scales with its output range)."""
    ok = True
    for r in report.rows:
        rel = float(((outputs or {}).get(r["output"]) or {}).get("parity_rel_tolerance", 0.0))
        ok &= r["max_abs"] <= tolerance + rel * r.get("max_ref", 0.0)
    return bool(ok) and bool(report.rows)


def export(
    model,
    out: str | Path,
    height: int = 352,
    width: int = 1216,
    dynamic: bool | None = None,
    frames: list[Frame] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    second_size: tuple[int, int] | None = None,
) -> ParityReport:
    """Export, check (``onnx.checker``), stamp metadata and run the parity check; :class:`ParityError` over tolerance.

    ``dynamic`` None = dynamic H/W when the model family allows it. A dynamic file is also checked at
    ``second_size`` (default: half the resolution, rounded to the stride) to prove the dynamic axes work.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = model.depth_nodes_config
    stride = int(getattr(model, "stride", 1))
    if height % stride or width % stride:
        raise ModelError(f"export resolution {height}x{width} must be a multiple of the model stride {stride}")
    want_dynamic = cfg.get("dynamic_hw", True) if dynamic is None else dynamic
    frames = frames or street_frames(2, height, width)
    model = model.eval().float().cpu()
    # Everything happens on a temporary name; only an export that passed the parity check is renamed to ``out``
    # (a failed one left at ``out`` would be found and used by the next start: resolve_onnx reuses the file).
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.onnx")
    try:
        is_dynamic = torch_export_onnx(model, tmp, height, width, want_dynamic, frames)
        add_metadata(tmp, model, height, width, is_dynamic)
        info = read_onnx(tmp)
        if is_dynamic and not info.dynamic_hw:
            log.warning("exporter fixed H/W despite dynamic shapes: metadata says fixed %dx%d", height, width)
        sizes = [(height, width)]
        if is_dynamic:
            sizes.append(second_size or (max(stride, height // 2 // stride * stride), max(stride, width // 2 // stride * stride)))
        report = parity(model, tmp, frames, sizes)
        if not within_tolerance(report, tolerance, cfg.get("outputs")):
            raise ParityError(
                f"ONNX Runtime differs from torch by {report.max_abs:.3g} > tolerance {tolerance:g} (+ the declared "
                f"relative term; nothing written to {out}):\n" + "\n".join(report.lines())
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return report
