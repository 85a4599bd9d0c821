"""Evaluator + `depth-nodes eval` / `depth-nodes complete` on a small constructed KITTI DC layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depth_nodes.cli import main
from depth_nodes.completion import create
from depth_nodes.completion.cli import prediction_name, read_confidence_png
from depth_nodes.data.kitti_depth import list_frames, read_depth_png, write_frame
from depth_nodes.errors import DataFormatError, DepthNodesError
from depth_nodes.eval.evaluator import evaluate
from depth_nodes.eval.metrics import depth_metrics

H, W = 48, 64
K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])


def scene(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground plane (depth grows toward the top) with a near box; sparse = every 3rd row of GT, jittered."""
    rng = np.random.default_rng(seed)
    rows = np.arange(H, dtype=np.float32)[:, None]
    gt = np.broadcast_to(4.0 + 40.0 / (rows + 4.0), (H, W)).copy()
    x0 = int(rng.integers(5, 40))
    gt[10:30, x0 : x0 + 15] = 3.0
    gt[:4] = 0.0  # "sky": no ground truth
    sparse = np.zeros_like(gt)
    sparse[6::3, 1::2] = gt[6::3, 1::2]
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    return image, sparse.astype(np.float32), gt.astype(np.float32)


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    root = tmp_path / "val_selection_cropped"
    for i in range(3):
        image, sparse, gt = scene(i)
        write_frame(root, "2011_09_26_drive_0001_sync", i, image, sparse, gt, K)
    return root


def test_evaluate_writes_predictions_metrics_and_report(layout: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = evaluate(layout, "ip_basic", {}, out, seed=1, n_figures=2, progress=False)
    data = json.loads((out / "metrics.json").read_text())
    assert data["method"] == "ip_basic" and data["n_frames"] == 3 and len(data["frames"]) == 3
    frames = list_frames(layout)
    completer = create("ip_basic")
    for frame, row in zip(frames, data["frames"], strict=True):
        loaded = frame.load()
        expected = completer.complete(loaded["sparse"]).depth
        pred = read_depth_png(out / "predictions" / prediction_name(frame.image.name))
        # PNG quantisation: 1/256 m; holes stay 0 (= no estimate)
        ok = np.isfinite(expected)
        np.testing.assert_allclose(pred[ok], expected[ok], atol=1 / 512 + 1e-6)
        assert (pred[~ok] == 0).all()
        # metrics in the JSON are those of the completer's output against the GT
        m = depth_metrics(expected, loaded["groundtruth"])
        assert row["rmse_mm"] == pytest.approx(m["rmse_mm"], rel=1e-6)
        assert row["mae_mm"] == pytest.approx(m["mae_mm"], rel=1e-6)
        conf = read_confidence_png(out / "confidence" / prediction_name(frame.image.name))
        assert conf.shape == (H, W) and 0 <= conf.min() and conf.max() <= 1
        assert row["time_ms"] > 0
    mean = data["mean"]
    assert mean["rmse_mm"] == pytest.approx(np.mean([r["rmse_mm"] for r in data["frames"]]))
    assert 0 < mean["mae_mm"] < 2000  # ip_basic on a smooth scene: well under 2 m
    # ip_basic's distance-based confidence must rank errors better than a random one
    assert mean["ause_rmse"] < mean["ause_rmse_random"]
    assert data["timing"]["p50_ms"] > 0
    assert data["sparsification"]["method"]["ause"] == pytest.approx(mean["ause_rmse"])
    html = (out / "report.html").read_text()
    assert "ip_basic" in html and "sparsification.png" in html
    for rel in [
        "figures/sparsification.png",
        "figures/per_frame.png",
        "figures/frame_0000.png",
        "figures/frame_0002.png",
    ]:
        assert (out / rel).stat().st_size > 1000, rel
    assert summary["mean"] == pytest.approx(mean)


def test_eval_cli_and_npy_confidence(layout: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli_out"
    rc = main(
        [
            "eval",
            str(layout),
            "--method",
            "nearest",
            "--param",
            "confidence_scale_px=2.5",
            "-o",
            str(out),
            "--confidence-format",
            "npy",
            "--figures",
            "1",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "RMSE" in text and "report:" in text
    data = json.loads((out / "metrics.json").read_text())
    assert data["params"] == {"confidence_scale_px": 2.5}
    assert len(list((out / "confidence").glob("*.npy"))) == 3


def test_eval_help_states_units(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    assert "mm" in text and "1/km" in text and "metres x 256" in text


def test_bad_inputs_give_clear_errors(layout: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(DataFormatError, match="not found"):
        evaluate(tmp_path / "missing", "nearest", {}, tmp_path / "o1", progress=False)
    (tmp_path / "empty" / "image").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="no frames"):
        evaluate(tmp_path / "empty", "nearest", {}, tmp_path / "o2", progress=False)
    with pytest.raises(DepthNodesError, match="unknown method 'bogus'"):
        evaluate(layout, "bogus", {}, tmp_path / "o3", progress=False)
    with pytest.raises(DepthNodesError, match="bad parameter"):
        evaluate(layout, "nearest", {"no_such_param": 1}, tmp_path / "o4", progress=False)
    frames = list_frames(layout)
    frames[1].groundtruth.write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match="unreadable PNG"):
        evaluate(layout, "nearest", {}, tmp_path / "o5", progress=False)
    write_frame(layout, "2011_09_26_drive_0001_sync", 1, *scene(1)[:2], np.ones((H, W + 2), np.float32), K)
    with pytest.raises(DepthNodesError, match="ground truth is 66x48 but sparse depth is 64x48"):
        evaluate(layout, "nearest", {}, tmp_path / "o6", progress=False)
    assert main(["eval", str(tmp_path / "missing"), "--method", "nearest", "-o", str(tmp_path / "o7")]) == 1
    assert "data directory not found" in capsys.readouterr().err


def test_complete_cli_directory_and_single_png(layout: Path, tmp_path: Path) -> None:
    out = tmp_path / "completed"
    assert main(["complete", str(layout), "--method", "ip_basic", "-o", str(out)]) == 0
    preds = sorted(out.glob("*.png"))
    assert len(preds) == 3 and all("groundtruth_depth" in p.name for p in preds)
    frame = list_frames(layout)[0]
    single = tmp_path / "single"
    assert (
        main(
            [
                "complete",
                str(frame.velodyne_raw),
                "--image",
                str(frame.image),
                "--method",
                "nearest",
                "--conditioned",  # the synthetic layout's velodyne_raw is the node's filtered projection
                "-o",
                str(single),
            ]
        )
        == 0
    )
    pred = read_depth_png(single / frame.velodyne_raw.name)
    sparse = read_depth_png(frame.velodyne_raw)
    # nearest keeps every LiDAR return exactly and fills everything else
    np.testing.assert_array_equal(pred[sparse > 0], sparse[sparse > 0])
    assert (pred > 0).all()
    assert (single / "confidence" / frame.velodyne_raw.name).is_file()
    assert main(["complete", str(tmp_path / "nope.png"), "--method", "nearest", "-o", str(single)]) == 1
    assert (
        main(["complete", str(layout), "--method", "nearest", "--param", "novalue", "-o", str(single)]) == 1
    )


def test_image_goes_to_guided_completers_and_size_mismatch(layout: Path, tmp_path: Path, monkeypatch) -> None:
    from depth_nodes.completion import Completer, Completion, registry

    seen: list[np.ndarray] = []

    class Recorder(Completer):
        name = "_test_image_recorder"
        uses_image = True

        def _complete(self, sparse, image):
            seen.append(image)
            return Completion(np.full(sparse.shape, 5.0, np.float32), np.ones(sparse.shape, np.float32))

    # registered for this test only (monkeypatch removes it again)
    registry.available()
    monkeypatch.setitem(registry._FACTORIES, "_test_image_recorder", Recorder)
    monkeypatch.setitem(registry._DESCRIPTIONS, "_test_image_recorder", "test only")

    summary = evaluate(layout, "_test_image_recorder", {}, tmp_path / "o", report=False, progress=False)
    frames = list_frames(layout)
    assert len(seen) == 4  # one untimed warm-up + 3 frames
    np.testing.assert_array_equal(seen[-1], frames[-1].load()["image"])
    gt = frames[0].load()["groundtruth"]
    assert summary["frames"][0]["mae_mm"] == pytest.approx(np.abs(gt[gt > 0] - 5.0).mean() * 1000, rel=1e-5)
    from depth_nodes.data.kitti_depth import write_rgb

    write_rgb(frames[2].image, np.zeros((H + 1, W, 3), np.uint8))
    with pytest.raises(DepthNodesError, match="image is 64x49 but sparse depth is 64x48"):
        evaluate(layout, "nearest", {}, tmp_path / "o2", report=False, progress=False)
