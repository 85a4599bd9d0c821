"""``depth-nodes train mono``: train the own monocular net (``mono_unet``) from the robot's own sensors.

Targets per source (KITTI depth-completion layout directories, ``DIR[:FIRST-LAST]`` selects frames):

- ``--data`` (real drives): **distilled from the LiDAR**: the frame's projected LiDAR (``velodyne_raw``, weight 1)
  and the ``guided`` completion of it (weight ``--guided-weight``) where it gives depth. ``groundtruth_depth``
  is never read for real drives, so held-out accumulated GT stays unseen.
- ``--synthetic`` (synthetic drives from ``depth-nodes synth``): the exact rendered depth (``groundtruth_depth``).

Each frame is resized so its focal length is ``--focal-px`` (the net's ray-elevation input carries the rest of the
camera geometry), random crops + horizontal flips + brightness jitter; loss = weighted L1 of log depth. The best
checkpoint by training loss is saved as a model directory (config.json + model.safetensors, ``train.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depth_nodes.completion.conditioning import condition
from depth_nodes.data.kitti_depth import list_frames
from depth_nodes.errors import DepthNodesError


@dataclass
class Sample:
    rgb: np.ndarray  # H x W x 3 uint8
    target_m: np.ndarray  # H x W float32, 0 = none
    weight: np.ndarray  # H x W float32
    K: np.ndarray  # 3 x 3 at this resolution
    source: str


def parse_source(text: str) -> tuple[Path, slice]:
    """``DIR`` or ``DIR:FIRST-LAST`` (inclusive frame indices in name order)."""
    path, _, rng = text.partition(":") if ":" in text and not Path(text).exists() else (text, "", "")
    if not rng:
        return Path(path), slice(None)
    try:
        a, b = (int(v) for v in rng.split("-"))
    except ValueError:
        raise DepthNodesError(f"frame range must be FIRST-LAST, got {rng!r} in {text!r}") from None
    return Path(path), slice(a, b + 1)


def resize_sparse(depth_m: np.ndarray, weight: np.ndarray, size_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Valid-aware area resize: mean inverse depth of the valid pixels per output pixel, weight averaged."""
    valid = (depth_m > 0).astype(np.float32)
    inv = np.where(depth_m > 0, 1.0 / np.maximum(depth_m, 1e-6), 0.0).astype(np.float32)
    s_inv = cv2.resize(inv * weight, size_wh, interpolation=cv2.INTER_AREA)
    s_w = cv2.resize(valid * weight, size_wh, interpolation=cv2.INTER_AREA)
    s_v = cv2.resize(valid, size_wh, interpolation=cv2.INTER_AREA)
    out = np.where(s_w > 1e-6, s_w / np.maximum(s_inv, 1e-9), 0.0).astype(np.float32)
    return out, np.where(s_v > 0, s_w / np.maximum(s_v, 1e-9), 0.0).astype(np.float32)


def load_samples(
    sources: list[str], synthetic: bool, focal_px: float, guided_weight: float, max_depth_m: float
) -> list[Sample]:
    from depth_nodes import completion

    guided = completion.create("guided") if not synthetic else None
    out: list[Sample] = []
    for text in sources:
        root, sel = parse_source(text)
        frames = list_frames(root)[sel]
        if not frames:
            raise DepthNodesError(f"no frames selected in {text}")
        for f in frames:
            d = f.load()
            rgb, K = d["image"], d["K"]
            if K is None:
                raise DepthNodesError(f"{f.name}: no intrinsics (needed for the ray-elevation input)")
            if synthetic:
                tgt = d["groundtruth"]
                if tgt is None:
                    raise DepthNodesError(f"{f.name}: synthetic source without groundtruth_depth")
                w = (tgt > 0).astype(np.float32)
            else:
                sparse = condition(d["sparse"]).depth  # raw layouts (KITTI DC): see-through returns out
                comp = guided.complete(sparse, rgb, conditioned=True).depth
                comp = np.nan_to_num(comp, nan=0.0)
                tgt = np.where(sparse > 0, sparse, comp).astype(np.float32)
                w = np.where(sparse > 0, 1.0, np.where(comp > 0, guided_weight, 0.0)).astype(np.float32)
            tgt[tgt > max_depth_m] = 0
            w[tgt <= 0] = 0
            scale = focal_px / float(K[1, 1])
            h, wd = rgb.shape[:2]
            size = (max(16, round(wd * scale)), max(16, round(h * scale)))
            rgb_s = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            t_s, w_s = resize_sparse(tgt, w, size)
            Ks = K.astype(np.float64).copy()
            Ks[0] *= size[0] / wd
            Ks[1] *= size[1] / h
            out.append(Sample(rgb_s, t_s, w_s, Ks, str(root)))
    return out


def batches(samples: list[Sample], crop_hw: tuple[int, int], batch: int, rng: np.random.Generator):
    from depth_nodes.mono.net import normalise_rgb, ray_elevation

    ch, cw = crop_hw
    while True:
        imgs, rays, tgts, ws = [], [], [], []
        for i in rng.integers(0, len(samples), batch):
            s = samples[i]
            h, w = s.target_m.shape
            y0 = int(rng.integers(0, max(1, h - ch + 1)))
            x0 = int(rng.integers(0, max(1, w - cw + 1)))
            rgb = s.rgb[y0 : y0 + ch, x0 : x0 + cw]
            ray = ray_elevation(h, w, s.K)[y0 : y0 + ch, x0 : x0 + cw]
            t, wt = s.target_m[y0 : y0 + ch, x0 : x0 + cw], s.weight[y0 : y0 + ch, x0 : x0 + cw]
            if rgb.shape[:2] != (ch, cw):  # smaller than the crop: pad (weight 0 there)
                pad = ((0, ch - rgb.shape[0]), (0, cw - rgb.shape[1]))
                rgb = np.pad(rgb, pad + ((0, 0),), mode="edge")
                ray = np.pad(ray, pad, mode="edge")
                t, wt = np.pad(t, pad), np.pad(wt, pad)
            if rng.random() < 0.5:
                rgb, ray, t, wt = rgb[:, ::-1], ray[:, ::-1], t[:, ::-1], wt[:, ::-1]
            gain = rng.uniform(0.75, 1.25)
            rgb = np.clip(rgb.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            imgs.append(normalise_rgb(np.ascontiguousarray(rgb)))
            rays.append(np.ascontiguousarray(ray)[None])
            tgts.append(np.ascontiguousarray(t)[None])
            ws.append(np.ascontiguousarray(wt)[None])
        yield np.stack(imgs), np.stack(rays), np.stack(tgts), np.stack(ws)


def train(args: argparse.Namespace) -> dict:
    import torch

    from depth_nodes.models import registry
    from depth_nodes.mono import net as _net  # noqa: F401 - registers mono_unet

    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    samples = load_samples(args.data, False, args.focal_px, args.guided_weight, args.max_depth_m)
    samples += load_samples(args.synthetic, True, args.focal_px, 1.0, args.max_depth_m)
    if not samples:
        raise DepthNodesError("no training data: give --data and/or --synthetic")
    print(f"{len(samples)} frames loaded in {time.perf_counter() - t0:.0f} s", flush=True)
    model = registry.create("mono_unet", {"width": args.width, "levels": args.levels,
                                          "max_depth_m": args.max_depth_m}).train()  # fmt: skip
    if args.init:  # fine-tune from an earlier run (same width/levels)
        init = registry.load(args.init)
        model.load_state_dict(init.state_dict())
        model.train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.1)
    rng = np.random.default_rng(args.seed)
    gen = batches(samples, (args.crop_h, args.crop_w), args.batch, rng)
    out = Path(args.out)
    losses: list[float] = []
    t_train = time.perf_counter()
    for step in range(args.steps):
        if args.max_minutes and time.perf_counter() - t_train > args.max_minutes * 60:
            print(f"time limit reached at step {step}", flush=True)
            break
        img, ray, tgt, w = (torch.from_numpy(a) for a in next(gen))
        pred = model(img, ray)
        valid = w > 0
        err = (torch.log(pred) - torch.log(tgt.clamp_min(1e-3))).abs()
        loss = (err * w)[valid].sum() / w[valid].sum().clamp_min(1e-6)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % 50 == 0:
            print(f"step {step + 1}/{args.steps} loss {np.mean(losses[-50:]):.4f} "
                  f"{time.perf_counter() - t_train:.0f} s", flush=True)  # fmt: skip
    model.eval()
    registry.save(model, out)
    info = {
        "frames": len(samples), "sources": {"data": args.data, "synthetic": args.synthetic},
        "steps": len(losses), "final_loss_l1_log": float(np.mean(losses[-50:])) if losses else None,
        "params": n_params, "minutes": (time.perf_counter() - t_train) / 60,
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("data", "synthetic")},
        "targets": "real: projected LiDAR (w=1) + guided completion (w=guided_weight); synthetic: rendered depth",
    }  # fmt: skip
    (out / "train.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    print(f"saved {out} ({n_params} parameters, {len(losses)} steps)")
    return info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", default=[], help="real drive, KITTI DC layout: DIR[:FIRST-LAST]")
    parser.add_argument("--synthetic", action="append", default=[], help="synthetic drive DC layout: DIR[:A-B]")
    parser.add_argument("-o", "--out", required=True, help="model directory to write")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--max-minutes", type=float, default=0.0, help="stop after this long (0 = no limit)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop-h", type=int, default=128)
    parser.add_argument("--crop-w", type=int, default=256)
    parser.add_argument("--focal-px", type=float, default=360.0, help="frames resized to this focal length (px)")
    parser.add_argument("--guided-weight", type=float, default=0.3, help="loss weight of guided-completion targets")
    parser.add_argument("--max-depth-m", type=float, default=80.0)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", default="", help="start from this mono_unet directory (fine-tuning)")


def run(args: argparse.Namespace) -> int:
    train(args)
    return 0
