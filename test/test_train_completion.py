"""`depth-nodes train completion`: sources, self-supervision, resumable checkpoints, DDP = 1 process."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0 then .[ml])")
pytest.importorskip("safetensors", reason="safetensors not installed (pip install '.[ml]')")

from depth_nodes import models  # noqa: E402
from depth_nodes.data.kitti_depth import write_frame  # noqa: E402
from depth_nodes.errors import DepthNodesError  # noqa: E402
from depth_nodes.train.data import Augment, FrameSet, Source, held_out_split, make_sample  # noqa: E402
from depth_nodes.train.loop import TrainConfig, train, train_spawned  # noqa: E402

H, W = 64, 128
TINY = {"width": 4, "levels": 1, "head_hidden": 4, "iterations": 2}


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """A 3-frame KITTI DC layout: ground plane + a box, returns on every 4th row, dense GT."""
    root = tmp_path_factory.mktemp("dc")
    rng = np.random.default_rng(0)
    K = np.array([[100.0, 0, W / 2], [0, 100.0, H / 2], [0, 0, 1]])
    for i in range(3):
        rows = np.arange(H, dtype=np.float32)[:, None].repeat(W, 1)
        gt = 300.0 / (rows + 5.0)
        gt[20:40, 30 + 10 * i : 60 + 10 * i] = 5.0
        img = (rng.random((H, W, 3)) * 40 + 60).astype(np.uint8)
        img[20:40, 30 + 10 * i : 60 + 10 * i] = 200
        sparse = np.where((np.arange(H)[:, None] % 4 == 0) & (rows >= 8), gt, 0).astype(np.float32)
        write_frame(root, "drive", i, img, sparse, gt, K)
    return root


def _cfg(layout, out, **kw):
    base = dict(
        sources=[f"{layout}:gt:1", f"{layout}:self:0.5"], out_dir=str(out), params=TINY, epochs=1,
        steps_per_epoch=4, batch=2, crop_hw=(32, 64), lr=3e-3, threads=1, progress=False,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_sources_parse_and_reject_bad_specs(layout) -> None:
    s = Source.parse(f"{layout}:self:0.5:0-1")
    assert s.kind == "self" and s.weight == 0.5 and s.frames == (0, 1)
    assert len(FrameSet([s])) == 2
    for bad in (f"{layout}:magic", f"{layout}:gt:-1", f"{layout}:gt:1:a-b"):
        with pytest.raises(DepthNodesError):
            Source.parse(bad)


def test_self_supervision_withholds_returns_and_samples_are_deterministic(layout) -> None:
    fs = FrameSet([Source.parse(f"{layout}:self")])
    a = make_sample(fs, 3, seed=1, epoch=0, crop_hw=(32, 64), aug=Augment())
    b = make_sample(fs, 3, seed=1, epoch=0, crop_hw=(32, 64), aug=Augment())
    assert np.array_equal(a.sparse, b.sparse) and np.array_equal(a.target, b.target)
    # self-supervised targets are returns the input does not contain
    assert (a.target > 0).any() and not ((a.target > 0) & (a.sparse > 0)).any()
    sp = np.zeros((8, 8), np.float32)
    sp[::2] = 10.0
    inp, tgt = held_out_split(sp, None, np.random.default_rng(0), share=0.5)
    assert np.array_equal(inp + tgt, sp) and (tgt > 0).sum() > 0


def test_training_resumes_from_its_checkpoint(layout, tmp_path) -> None:
    out = tmp_path / "run"
    first = train(_cfg(layout, out, epochs=1))
    assert (out / "checkpoint" / "state.json").is_file() and (out / "model" / models.WEIGHTS_FILE).is_file()
    both = train(_cfg(layout, out, epochs=2))  # resumes after epoch 1: runs epoch 2 only
    assert len(first) == 4 and len(both) == 4
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1 and state["step_total"] == 8
    report = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in report] == [1, 2]
    (out / "checkpoint" / "optimizer.safetensors").write_bytes(b"broken")
    with pytest.raises(DepthNodesError, match="cannot resume"):
        train(_cfg(layout, out, epochs=3))


def test_training_reduces_loss_and_reports_validation(layout, tmp_path) -> None:
    losses = train(_cfg(layout, tmp_path / "v", sources=[f"{layout}:gt:1"], steps_per_epoch=12,
                        validate=[f"{layout}:gt:1:2"], val_frames=1, augment=False))  # fmt: skip
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    row = json.loads((tmp_path / "v" / "report.jsonl").read_text().splitlines()[-1])
    val = next(iter(row["val"].values()))
    assert val["accumulated_mae_mm"] > 0 and val["held_out_mae_mm"] > 0


@pytest.mark.slow  # two spawned processes start torch + gloo (~20-40 s on 2 shared cores)
def test_ddp_two_processes_match_one_process(layout, tmp_path) -> None:
    """Same global batch (2): 2 gloo processes x 1 sample give the loss curve of 1 process x 2 samples.

    Tolerance: 1e-4 relative per step (float32 sums in another order across the all-reduce)."""
    one = train(_cfg(layout, tmp_path / "one", augment=True))
    two = train_spawned(_cfg(layout, tmp_path / "two", augment=True), world=2, rendezvous_dir=tmp_path / "rdv")
    assert len(one) == len(two) == 4
    np.testing.assert_allclose(two, one, rtol=1e-4)
    a = models.load(tmp_path / "one" / "model").state_dict()
    b = models.load(tmp_path / "two" / "model").state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
