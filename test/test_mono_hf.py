"""Depth Anything V2 / Prompt Depth Anything through transformers: tiny random-weight models saved with
save_pretrained and loaded through the package's real loading path (the node's estimator selector)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed (pip install transformers)"
)

from depth_nodes import pipeline as pl  # noqa: E402
from depth_nodes.core.camera import CameraModel  # noqa: E402
from depth_nodes.core.projection import SparseDepth  # noqa: E402
from depth_nodes.core.scale_fit import INVERSE, METRIC  # noqa: E402
from depth_nodes.errors import EmptyInputError  # noqa: E402
from depth_nodes.mono import hf  # noqa: E402
from depth_nodes.mono.fallback_estimator import MonoOptions, load_model  # noqa: E402

H, W = 60, 200


def _small(cls_cfg, **kw):
    bb = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                                   image_size=56, patch_size=14, out_indices=[1, 2, 3, 4],
                                   reshape_hidden_states=False)  # fmt: skip
    return cls_cfg(backbone_config=bb, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                   fusion_hidden_size=16, head_hidden_size=8, **kw)  # fmt: skip


def _save(model, path):
    torch.manual_seed(0)
    with torch.no_grad():  # random weights with spread, so the output varies over the image
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    model.eval().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    T = transformers
    torch.set_num_threads(1)
    return {
        "rel": _save(T.DepthAnythingForDepthEstimation(_small(T.DepthAnythingConfig)), root / "da_rel"),
        "metric": _save(T.DepthAnythingForDepthEstimation(
            _small(T.DepthAnythingConfig, depth_estimation_type="metric", max_depth=80)), root / "da_metric"),
        "prompt": _save(T.PromptDepthAnythingForDepthEstimation(
            _small(T.PromptDepthAnythingConfig, depth_estimation_type="metric", max_depth=1)), root / "pda"),
    }  # fmt: skip


def _inputs(sparse=None, stamp_ns=0):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (H, W, 3), np.uint8)
    cam = CameraModel(W, H, np.array([[100.0, 0, W / 2], [0, 100.0, H / 2], [0, 0, 1]]))
    sp = SparseDepth(sparse, int((sparse > 0).sum()), 0, 0, 0) if sparse is not None else None
    return pl.FrameInputs(cam, stamp_ns, "cam", rgb, sp, 80.0)


def test_missing_weights_error_names_dir_and_files(tmp_path):
    with pytest.raises(hf.MonoModelError, match="does not exist.*config.json"):
        hf.load_hf_model(tmp_path / "nope")
    (tmp_path / "config.json").write_text('{"model_type": "depth_anything"}')
    with pytest.raises(hf.MonoModelError, match=f"{tmp_path}.*model.safetensors.*found config.json"):
        hf.load_hf_model(tmp_path)


def test_relative_and_metric_da_v2_load_and_predict(dirs):
    rel = hf.load_hf_model(dirs["rel"], input_size_px=70)
    met = hf.load_hf_model(dirs["metric"], input_size_px=70)
    assert rel.kind == INVERSE and met.kind == METRIC and not rel.prompted
    for m in (rel, met):
        pred, used = m.predict(_inputs().rgb)
        assert pred.shape == (H, W) and pred.dtype == np.float32 and np.isfinite(pred).all() and not used
        assert np.ptp(pred) > 0
    assert (met.predict(_inputs().rgb)[0] <= 80.0 + 1e-3).all()  # sigmoid x max_depth


def test_metric_rescaling_through_the_node_selector(dirs):
    """The estimator the node builds: metric DA fitted to the LiDAR, then carried without it."""
    sel = pl.EstimatorSelector(
        "guided",
        "lidar_only",
        monocular="depth_anything_v2",
        log=print,
        options={"mono_model_dir": str(dirs["metric"]), "mono_input_size_px": 70, "mono_background": False},
    )
    est = sel.for_mode(pl.MONOCULAR)
    assert est.inner is not None, est.reason
    pred = est.inner.model.predict(_inputs().rgb)[0]
    lidar = np.zeros((H, W), np.float32)
    lidar[::3, ::4] = 2.5 * pred[::3, ::4]  # the world is 2.5x the model's scale
    out = est.estimate(_inputs(lidar, stamp_ns=0))
    assert est.inner.tracker.scale == pytest.approx(2.5, rel=1e-3)
    carried = est.estimate(_inputs(None, stamp_ns=10**9))  # LiDAR gone: carried scale
    ok = np.isfinite(carried.depth)
    np.testing.assert_allclose(carried.depth[ok], np.minimum(2.5 * pred, 1e9)[ok], rtol=1e-4)
    assert (carried.depth[ok] <= 80.0).all() and np.isnan(carried.depth[~ok]).all()  # capped at max_depth_m
    assert out.depth.dtype == np.float32 and carried.confidence.max() < out.confidence.max()  # decays
    values, _ = est.diagnostics()
    assert values["mono_scale"].startswith("2.5") and values["mono_fit_age_s"] == "1.00"


def test_relative_model_needs_a_fit_then_is_metric(dirs):
    m = load_model("depth_anything_v2", MonoOptions(model_dir=str(dirs["rel"]), input_size_px=70))
    from depth_nodes.mono.fallback_estimator import MonoEstimator

    est = MonoEstimator(m)
    with pytest.raises(EmptyInputError, match="no scale fit"):
        est.estimate(_inputs())
    pred = m.predict(_inputs().rgb)[0]
    lidar = np.zeros((H, W), np.float32)
    sel = (np.arange(H)[:, None] % 3 == 0) & (np.arange(W)[None] % 4 == 0) & (pred > 0)
    s_true = 0.15 / float(pred.max())  # depths 6..66 m
    lidar[sel] = 1.0 / (s_true * pred[sel] + 0.015)
    out = est.estimate(_inputs(lidar))
    assert est.tracker.scale == pytest.approx(s_true, rel=0.01)
    assert est.tracker.state.shift == pytest.approx(0.015, rel=0.02)
    np.testing.assert_allclose(out.depth[sel], lidar[sel], rtol=0.02)


def test_prompt_da_uses_lidar_and_guards_a_flat_prompt(dirs):
    m = load_model("prompt_depth_anything", MonoOptions(model_dir=str(dirs["prompt"]), input_size_px=70))
    assert m.prompted and m.kind == METRIC
    rng = np.random.default_rng(1)
    sparse = np.zeros((H, W), np.float32)
    sparse[::5, ::7] = rng.uniform(5, 40, sparse[::5, ::7].shape)
    pred, used = m.predict(_inputs().rgb, sparse)
    assert used and pred.shape == (H, W) and np.isfinite(pred).all()
    assert (
        5.0 - 1e-3 <= pred.min() and pred.max() <= 40.0 + 1e-3
    )  # PromptDA de-normalises to the prompt's range
    flat = np.where(sparse > 0, 10.0, 0.0).astype(np.float32)
    x = m.preprocess(_inputs().rgb)  # pixel_values on the model's device
    with torch.no_grad():  # what the guard prevents: transformers' min/max normalisation of a flat prompt
        raw = m.model(pixel_values=x, prompt_depth=torch.full((1, 1, 4, 12), 10.0)).predicted_depth
    assert torch.isnan(raw).all()
    for bad in (flat, np.zeros((H, W), np.float32), None):
        pred, used = m.predict(_inputs().rgb, bad)
        assert not used and np.isfinite(pred).all()
    with pytest.raises(hf.MonoModelError, match="not a depth_anything_v2"):
        load_model("depth_anything_v2", MonoOptions(model_dir=str(dirs["prompt"])))


def test_eval_method_mono_da_v2_fits_each_frames_own_lidar(dirs, tmp_path):
    """``depth-nodes eval --method mono:depth_anything_v2``: the registry path, the frame's own LiDAR fit."""
    from depth_nodes.data.kitti_depth import write_frame
    from depth_nodes.eval.evaluator import evaluate
    from depth_nodes.mono.hf import load_hf_model

    m = load_hf_model(dirs["metric"], input_size_px=70)
    rgb = _inputs().rgb
    pred = m.predict(rgb)[0]
    gt = np.where(pred > 1.0, 0.7 * pred, 0.0).astype(
        np.float32
    )  # the world is 0.7x the model's metric scale
    sparse = np.zeros_like(gt)
    sparse[::4, ::3] = gt[::4, ::3]
    K = np.array([[100.0, 0, W / 2], [0, 100.0, H / 2], [0, 0, 1]])
    write_frame(tmp_path / "dc", "2011_09_26_drive_0001_sync", 0, rgb, sparse, gt, K)
    s = evaluate(tmp_path / "dc", "mono:depth_anything_v2", {"model_dir": str(dirs["metric"]), "input_size_px": 70},
                 tmp_path / "out", report=False, progress=False)  # fmt: skip
    assert "own input LiDAR" in s["method"]
    assert s["mean"]["absrel"] < 0.01  # PNG quantisation (1/256 m) only
