"""``depth-nodes model import|check``: published checkpoints -> model directories, and parity with a fixture.

``model import {enet,penet} CKPT -o MODEL_DIR`` reads the official container without executing it
(:mod:`depth_nodes.models.checkpoint`) and writes config.json + model.safetensors + provenance.json; from there
``depth-nodes export``, the node (``completer: learned``, ``model_dir``), ``eval`` and ``bench completion
--model`` take the directory like any other. ``model check MODEL_DIR --fixture F.npz`` runs the model on the
fixture's official inputs (``rgb``, ``d``, ``position``, ``K``) and prints ``max rel diff`` against
``expected_<family>`` (relative to max |expected|); exit 1 above the tolerance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_nodes.errors import DepthNodesError

DEFAULT_TOLERANCE = 1e-4


def _k(text: str) -> tuple[float, float, float, float]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4:
        raise argparse.ArgumentTypeError(f"--K expects FX,FY,CX,CY in pixels, got {text!r}")
    return vals  # type: ignore[return-value]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="model_command", metavar="{import,check}", required=True)
    imp = sub.add_parser("import", help="official ENet / PENet checkpoint -> model directory (never executed)")
    imp.add_argument("family", choices=("enet", "penet"), help="network of the checkpoint")
    imp.add_argument("checkpoint", type=Path, help="e.g. the authors' pe.pth.tar / e.pth.tar (legacy or zip)")
    imp.add_argument("-o", "--output", type=Path, required=True, help="model directory to write")
    imp.add_argument("--K", type=_k, metavar="FX,FY,CX,CY",
                     help="intrinsics (px) of the images the model will see; default: KITTI depth-completion "
                          "352x1216 (true K)")  # fmt: skip
    imp.add_argument("--kitti-train-k", action="store_true",
                     help="shift cy by +11.5 px: the fixed K the released weights were trained with (the "
                          "official loader subtracts 11.5 instead of the true 23 for its bottom crop)")  # fmt: skip
    imp.add_argument("--geometry", choices=("image", "kitti_352x1216"), default="image",
                     help="geometry encoding: follow the input size (default) or the official hard-coded "
                          "352x1216 (exact at that size only)")  # fmt: skip
    chk = sub.add_parser("check", help="max rel diff of a model directory against a parity fixture (.npz)")
    chk.add_argument("model_dir", type=Path)
    chk.add_argument("--fixture", type=Path, required=True, help=".npz with rgb, d, position, K, expected_<family>")
    chk.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="largest max rel diff accepted")


def run(args: argparse.Namespace) -> int:
    return _import(args) if args.model_command == "import" else _check(args)


def _import(args: argparse.Namespace) -> int:
    from depth_nodes.models.importer import import_checkpoint
    from depth_nodes.models.published import KITTI_TRAIN_CY_OFFSET_PX

    params: dict = {"geometry": args.geometry}
    if args.K:
        params.update(zip(("fx_px", "fy_px", "cx_px", "cy_px"), args.K, strict=True))
    if args.kitti_train_k:
        params["cy_offset_px"] = KITTI_TRAIN_CY_OFFSET_PX
    prov = import_checkpoint(args.family, args.checkpoint, args.output, params)
    net = prov["args"].get("network_model", "?")
    print(
        f"imported {prov['n_tensors']} tensors ({prov['n_values'] / 1e6:.1f} M values) of {args.family} from "
        f"{prov['source']} ({prov['layout']} layout, sha256 {prov['source_sha256'][:16]}..., epoch {prov['epoch']}, "
        f"recorded network_model {net!r}); not read: {', '.join(prov['ignored_entries']) or 'nothing'}"
    )
    print(f"wrote {args.output}/config.json, model.safetensors, provenance.json")
    return 0


def _check(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from depth_nodes import models

    try:
        z = np.load(args.fixture, allow_pickle=False)
        feed = [torch.from_numpy(np.ascontiguousarray(z[n], dtype=np.float32)) for n in ("rgb", "d", "position", "K")]
    except (OSError, ValueError, KeyError) as exc:
        raise DepthNodesError(f"fixture {args.fixture}: needs rgb, d, position, K arrays ({exc})") from None
    model = models.load(args.model_dir)
    family = models.config_of(model)["model"]
    if family not in models.PUBLISHED:
        raise DepthNodesError(f"model check runs the published families ({', '.join(models.PUBLISHED)}), not {family!r}")
    names = {"enet": ("expected_enet_rgb_depth", "expected_enet_d_depth", "expected_enet")}.get(
        family, (f"expected_{family}",)
    )
    present = [n for n in names if n in z.files]
    if f"expected_{family}" not in present:
        raise DepthNodesError(f"fixture {args.fixture} has no expected_{family} (has {', '.join(z.files)})")
    with torch.inference_mode():
        out = model.official(*feed)  # the official 352x1216 geometry: the fixture's inputs follow it
    outs = dict(zip(names, out if isinstance(out, tuple) else (out,), strict=True))
    worst = 0.0
    for n in present:
        exp = z[n].astype(np.float32)
        got = outs[n].numpy()
        if got.shape != exp.shape:
            raise DepthNodesError(f"{n}: model output {got.shape} != expected {exp.shape}")
        rel = float(np.abs(got - exp).max() / max(float(np.abs(exp).max()), 1e-12))
        worst = max(worst, rel)
        print(f"{family} {n[len('expected_'):]}: max rel diff {rel:.3g} (max |expected| {np.abs(exp).max():.4g})")
    ok = worst <= args.tolerance
    print(f"{'PASS' if ok else 'FAIL'}: max rel diff {worst:.3g} {'<=' if ok else '>'} tolerance {args.tolerance:g}")
    return 0 if ok else 1
