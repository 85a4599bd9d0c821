"""The training loop: seeded, resumable (a checkpoint each epoch), data-parallel (DDP), a validation report per epoch.

Data parallelism: launched by ``torchrun`` (``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` in the environment) the
loop joins a ``torch.distributed`` group (gloo on CPU, nccl on CUDA) and wraps the model in
``DistributedDataParallel``. The global batch is fixed (``batch``): rank r computes samples
``r, r + world, ...`` of it, and since the loss is a mean of per-sample losses and DDP averages gradients, one
step is the same step for any process count (tested: 1 vs 2 processes).

Checkpoints hold no pickle: weights via ``models.save`` (safetensors + config.json), the optimizer's tensors in
``optimizer.safetensors`` and its scalars/epoch/step in ``state.json``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from depth_nodes import models
from depth_nodes.errors import DepthNodesError
from depth_nodes.train.data import Augment, FrameSet, Source, make_sample

CHECKPOINT_DIR = "checkpoint"
FINAL_DIR = "model"
REPORT_FILE = "report.jsonl"


@dataclass
class TrainConfig:
    sources: list[str]
    out_dir: str
    model: str = models.LEARNED
    params: dict = field(default_factory=dict)
    init_from: str = ""  # a model directory to start from (fine-tuning)
    epochs: int = 10
    steps_per_epoch: int = 50
    batch: int = 4  # global batch (all ranks together)
    crop_hw: tuple[int, int] = (192, 448)
    lr: float = 2e-3
    seed: int = 0
    augment: bool = True
    photo_weight: float = 1.0  # photometric term of kind-photo samples (its depth gradient ~ the smoothness one)
    validate: list[str] = field(default_factory=list)  # sources (PATH[:kind[:weight[:frames]]]) to validate on
    val_frames: int = 6  # per validation source
    threads: int = 2
    max_minutes: float = 0.0  # stop after the epoch that passes this wall time (0 = no limit)
    resume: bool = True
    progress: bool = True


def _dist_setup(init_method: str | None, rank: int | None, world: int | None):
    """(rank, world) -- joins a process group when more than one process trains."""
    import torch.distributed as dist

    world = int(world if world is not None else os.environ.get("WORLD_SIZE", 1))
    rank = int(rank if rank is not None else os.environ.get("RANK", 0))
    if world > 1 and not dist.is_initialized():
        import torch

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, init_method=init_method or "env://", rank=rank, world_size=world)
    return rank, world


def _batch_tensors(frames, cfg: TrainConfig, epoch: int, step: int, rank: int, world: int):
    import torch

    from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy

    norm = Normalisation()
    aug = Augment() if cfg.augment else None
    feeds, targets, photo = [], [], []
    for j in range(rank, cfg.batch, world):
        s = make_sample(frames, step * cfg.batch + j, cfg.seed, epoch, cfg.crop_hw, aug)
        feeds.append(to_inputs_numpy(s.image, s.sparse, norm, stride=1))
        targets.append(s.target[None, None])
        photo.append(s.photo)
    img = torch.from_numpy(np.concatenate([f["image"] for f in feeds]))
    inv = torch.from_numpy(np.concatenate([f["sparse_inv_depth"] for f in feeds]))
    return img, inv, torch.from_numpy(np.concatenate(targets)), photo


def save_optimizer(opt, directory: Path, epoch: int, step_total: int) -> None:
    from safetensors.torch import save_file

    state = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in state["state"].items():
        for k, v in st.items():
            if hasattr(v, "dim"):
                tensors[f"{pid}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{k}"] = v
    save_file(tensors, str(directory / "optimizer.safetensors"))
    meta = {"epoch": epoch, "step_total": step_total, "param_groups": state["param_groups"], "scalars": scalars}
    (directory / "state.json").write_text(json.dumps(meta, indent=1))


def load_optimizer(opt, directory: Path) -> dict:
    from safetensors.torch import load_file

    try:
        meta = json.loads((directory / "state.json").read_text())
        tensors = load_file(str(directory / "optimizer.safetensors"))
    except Exception as exc:  # noqa: BLE001 - any damage of a checkpoint is one clear error
        raise DepthNodesError(f"cannot resume from {directory}: {type(exc).__name__}: {exc}") from None
    state: dict = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta


def train(cfg: TrainConfig, rank: int | None = None, world: int | None = None, init_method: str | None = None):
    """Run the training of ``cfg``; returns the list of per-step losses (this rank's view of the global loss)."""
    import torch

    from depth_nodes.train.validate import validate

    torch.set_num_threads(max(1, cfg.threads))
    rank, world = _dist_setup(init_method, rank, world)
    if cfg.batch % world:
        raise DepthNodesError(f"global batch {cfg.batch} must be a multiple of the process count {world}")
    out = Path(cfg.out_dir)
    ckpt = out / CHECKPOINT_DIR
    torch.manual_seed(cfg.seed)
    model = models.load(cfg.init_from) if cfg.init_from else models.create(cfg.model, cfg.params)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    start_epoch, step_total = 0, 0
    if cfg.resume and (ckpt / "state.json").is_file():
        model = models.load(ckpt)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
        meta = load_optimizer(opt, ckpt)
        start_epoch, step_total = int(meta["epoch"]) + 1, int(meta["step_total"])
        if rank == 0:
            print(f"resumed from {ckpt} after epoch {meta['epoch']}", flush=True)
    cfg_model = models.config_of(model)
    net = model.train()
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model)
    frames = FrameSet([Source.parse(s) for s in cfg.sources])
    val_sources = [Source.parse(s) for s in cfg.validate]
    total_steps = cfg.epochs * cfg.steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=max(total_steps, 1), pct_start=0.1, last_epoch=step_total - 1
    ) if step_total == 0 else None
    if sched is None:  # resumed: cosine tail from where we are (OneCycle state is not worth persisting)
        start = step_total  # a constant: the closure must not see step_total grow
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(1.0, (start + s) / max(total_steps, 1))))
        )
    from depth_nodes.train.losses import completion_loss

    losses: list[float] = []
    t0 = time.monotonic()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    for epoch in range(start_epoch, cfg.epochs):
        bar = range(cfg.steps_per_epoch)
        if cfg.progress and rank == 0:
            from tqdm import tqdm

            bar = tqdm(bar, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", mininterval=5)
        net.train()
        for _step in bar:
            img, inv, target, photo = _batch_tensors(frames, cfg, epoch, step_total, rank, world)
            depth, conf = net(img, inv)
            extra = None
            if any(p is not None for p in photo):
                from depth_nodes.train.photometric import photometric_term

                extra = cfg.photo_weight * photometric_term(depth, photo)
                parts_photo = float(extra.detach().mean())
            loss, parts = completion_loss(depth, conf, target, img, extra=extra)
            if extra is not None:
                parts["photo"] = parts_photo
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step_total += 1
            value = loss.detach()
            if world > 1:
                import torch.distributed as dist

                dist.all_reduce(value)
                value = value / world
            losses.append(float(value))
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{losses[-1]:.3f}", l1=f"{parts['l1_m']:.3f}")
        if rank == 0:
            ckpt.mkdir(parents=True, exist_ok=True)
            model.depth_nodes_config = cfg_model
            models.save(model, ckpt)
            save_optimizer(opt, ckpt, epoch, step_total)
            row = {"epoch": epoch + 1, "step": step_total, "loss": float(np.mean(losses[-cfg.steps_per_epoch:])),
                   "minutes": (time.monotonic() - t0) / 60}
            if val_sources:
                row["val"] = validate(model.eval(), val_sources, cfg.val_frames)
            with open(out / REPORT_FILE, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
        if cfg.max_minutes and (time.monotonic() - t0) / 60 > cfg.max_minutes:
            break
    if rank == 0:
        models.save(model, out / FINAL_DIR)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return losses


def _spawned(rank: int, world: int, cfg: TrainConfig, init_method: str, out_file: str) -> None:
    losses = train(cfg, rank=rank, world=world, init_method=init_method)
    if rank == 0:
        Path(out_file).write_text(json.dumps(losses))
    import torch.distributed as dist

    dist.destroy_process_group()


def train_spawned(cfg: TrainConfig, world: int, rendezvous_dir: str | Path) -> list[float]:
    """Train with ``world`` local processes (``torch.multiprocessing.spawn``, file rendezvous): what torchrun
    does, without a launcher (tests, notebooks). Returns rank 0's per-step global losses."""
    import torch.multiprocessing as mp

    rdv = Path(rendezvous_dir)
    rdv.mkdir(parents=True, exist_ok=True)
    init, out_file = f"file://{rdv / 'rendezvous'}", rdv / "losses.json"
    mp.spawn(_spawned, args=(world, cfg, init, str(out_file)), nprocs=world, join=True)
    return json.loads(out_file.read_text())
