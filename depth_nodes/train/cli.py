"""``depth-nodes train completion``: train a completion family on weighted sources (see docs/models.md).

Data-parallel: ``torchrun --nproc_per_node N -m depth_nodes.cli train completion ...`` (gloo on CPU, nccl on
GPUs); the global ``--batch`` is split across the processes.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source",
        action="append",
        required=True,
        help="PATH[:kind[:weight[:frames]]]: a KITTI DC layout (depth-nodes synth / make-gt output, KITTI DC); "
        "kind gt (its groundtruth_depth), self (held-out returns supervise; no GT needed) or photo (self + "
        "photometric consistency with the neighbouring frames; needs the poses/ sidecar); frames e.g. 0-34",
    )
    p.add_argument("--validate", action="append", default=[], help="a source to report on after every epoch")
    p.add_argument("-o", "--out", required=True, help="output directory (checkpoint/, model/, report.jsonl)")
    p.add_argument("--model", default="learned", help="model family (depth_nodes.models.available())")
    p.add_argument("--params", default="{}", help="family parameters as JSON, e.g. '{\"width\": 16}'")
    p.add_argument("--init-from", default="", help="start from this model directory (fine-tuning)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--batch", type=int, default=4, help="global batch (split across torchrun processes)")
    p.add_argument("--crop", default="192x448", help="training crop HxW (multiples of the model stride)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--photo-weight", type=float, default=1.0, help="weight of the photometric term (kind photo)")
    p.add_argument("--val-frames", type=int, default=6)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per process")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop after the epoch passing this time")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from depth_nodes.train.loop import TrainConfig, train

    h, _, w = args.crop.lower().partition("x")
    cfg = TrainConfig(
        sources=args.source, out_dir=args.out, model=args.model, params=json.loads(args.params),
        init_from=args.init_from, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch=args.batch,
        crop_hw=(int(h), int(w)), lr=args.lr, seed=args.seed, augment=not args.no_augment, photo_weight=args.photo_weight,
        validate=args.validate, val_frames=args.val_frames, threads=args.threads, max_minutes=args.max_minutes,
        resume=not args.no_resume, progress=not args.no_progress,
    )  # fmt: skip
    train(cfg)
    return 0
