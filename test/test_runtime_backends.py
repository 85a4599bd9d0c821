"""Backends behind one interface: torch vs ONNX Runtime, auto choice, the learned estimator and its fallback."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from runtime_helpers import CONSTANT_DEPTH_M, EXPORT_HW, constant_model, exported_model, torch

from depth_nodes import completion
from depth_nodes import pipeline as pl
from depth_nodes.pipeline.learned_estimator import GuardedLearnedEstimator
from depth_nodes.runtime import create_backend, factory
from depth_nodes.runtime.errors import ModelError
from depth_nodes.runtime.frames import street_frame
from depth_nodes.runtime.predictor import LearnedOptions, build_predictor
from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    return exported_model(tmp_path_factory)


@pytest.fixture(scope="module")
def constant(tmp_path_factory) -> dict:
    return constant_model(tmp_path_factory)


def test_torch_and_onnxruntime_backends_agree(exported, constant) -> None:
    t = create_backend(exported["dir"], "torch", device="cpu")
    o = create_backend(exported["onnx"], "onnxruntime")
    img, sp = street_frame(*EXPORT_HW, seed=5)
    feed = to_inputs_numpy(img, sp, Normalisation(), 4)
    a, b = t.infer(feed), o.infer(feed)
    assert isinstance(a["depth"], np.ndarray) and isinstance(b["depth"], np.ndarray)  # numpy in -> numpy out
    for n in ("depth", "confidence"):
        assert np.abs(a[n] - b[n]).max() <= 1e-4
    tt = o.infer({n: torch.from_numpy(v) for n, v in feed.items()})
    assert isinstance(tt["depth"], torch.Tensor)  # torch in -> torch out
    with pytest.raises(ModelError, match="missing \\['sparse_inv_depth'\\]"):
        o.infer({"image": feed["image"]})
    assert t.describe()["backend"] == "torch" and o.describe()["model"] == "tiny_unet"
    # a model directory without model.onnx is exported into the cache dir for ONNX Runtime (and reused)
    assert constant["onnx"].parent == constant["cache"] and constant["onnx"].name.startswith("tiny_unet-")
    again = create_backend(constant["dir"], "onnxruntime", engine_cache_dir=constant["cache"])
    assert again.onnx_path == constant["onnx"]


def test_auto_choice_and_its_reason(monkeypatch, exported) -> None:
    monkeypatch.setattr(factory, "cuda_gpu", lambda: "")
    b = create_backend(exported["onnx"], "auto", precision="fp16")
    assert b.kind == "onnxruntime" and b.precision == "fp32"
    assert "no CUDA GPU visible" in b.reason and "fp16 needs TensorRT" in b.reason
    with pytest.raises(ModelError, match="runs model.onnx in fp32 as exported"):
        create_backend(exported["onnx"], "onnxruntime", precision="fp16").ensure_loaded()
    have = {"tensorrt": True, "onnxruntime": True, "torch": True}
    monkeypatch.setattr(factory, "_has", lambda m: have[m])
    monkeypatch.setattr(factory, "cuda_gpu", lambda: "Orin")
    assert factory.choose_backend("auto") == ("tensorrt", "auto: CUDA GPU Orin and tensorrt importable")
    have["tensorrt"] = False
    assert factory.choose_backend("auto")[0] == "onnxruntime"
    have["onnxruntime"] = False
    kind, why = factory.choose_backend("auto")
    assert kind == "torch" and "tensorrt not importable" in why
    with pytest.raises(ModelError, match="unknown backend"):
        factory.choose_backend("tflite")


def test_learned_estimator_runs_at_any_frame_size(constant) -> None:
    for backend in ("onnxruntime", "torch"):
        est = build_predictor(LearnedOptions(str(constant["dir"]), backend, engine_cache_dir=str(constant["cache"]),
                                           resolutions=[EXPORT_HW]))  # fmt: skip
        img, sp = street_frame(30, 45)  # not a multiple of the stride: padded, then cropped back
        out = est.predict(img, sp)
        assert out.depth.shape == (30, 45) and np.allclose(out.depth, CONSTANT_DEPTH_M, atol=1e-3)
        assert np.allclose(out.confidence, 0.5, atol=1e-4)


def test_broken_model_falls_back_to_the_classical_completer(tmp_path, exported) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(exported["onnx"].read_bytes()[:3000])
    g = GuardedLearnedEstimator(LearnedOptions(str(bad), "onnxruntime"), background=False, log_warning=lambda s: None)
    values, warnings = g.diagnostics()
    assert g.state == "fallback" and values["learned_state"] == "fallback"
    assert warnings and "corrupt or truncated" in warnings[0] and "using 'guided'" in warnings[0]
    assert g.name == "guided (fallback)"
    img, sp = street_frame(32, 48)

    class Inputs:
        rgb, sparse = img, type("S", (), {"depth": sp})()

    ref = completion.create("guided").complete(sp, img, conditioned=True)  # the node's input is filtered
    np.testing.assert_array_equal(g.estimate(Inputs()).depth, ref.depth)
    missing = GuardedLearnedEstimator(LearnedOptions("/nonexistent/model"), background=False, log_warning=lambda s: None)
    assert "does not exist" in missing.reason and missing.state == "fallback"
    ok = GuardedLearnedEstimator(LearnedOptions(str(exported["onnx"]), "onnxruntime"), background=False)
    assert ok.state == "active" and ok.name == "learned:tiny_unet"
    assert ok.diagnostics()[0]["learned_backend"] == "onnxruntime" and not ok.diagnostics()[1]


def test_selector_builds_learned_with_options(exported) -> None:
    logs = []
    sel = pl.EstimatorSelector("learned", "lidar_only", log=logs.append,
                               options={"model_dir": str(exported["onnx"]), "backend": "onnxruntime",
                                        "background": False})  # fmt: skip
    est = sel.for_mode(pl.GUIDED)
    assert est.name == "learned:tiny_unet" and sel.active_names[pl.GUIDED] == "learned"
    values, warnings = sel.diagnostics()
    assert values["learned_state"] == "active" and warnings == []


def test_eval_learned_is_the_node_learned_estimator(tmp_path, exported) -> None:
    """``completion.create("learned")`` (eval, complete, bench) is the node's guarded estimator: same model on
    the same backend, the same classical fallback, the fallback named in the method; ``fallback=""`` fails."""
    img, sp = street_frame(*EXPORT_HW, seed=3)
    comp = completion.create("learned", model_dir=str(exported["onnx"]), backend="onnxruntime")
    node = GuardedLearnedEstimator(LearnedOptions(str(exported["onnx"]), "onnxruntime"), background=False)
    got = comp.complete(sp, img, conditioned=True)
    frame = type("Inputs", (), {"rgb": img, "sparse": type("S", (), {"depth": sp})()})()
    np.testing.assert_array_equal(got.depth, node.estimate(frame).depth)
    assert comp.name == "learned_onnxruntime" and comp.estimator().state == "active"
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(exported["onnx"].read_bytes()[:3000])
    comp = completion.create("learned", model_dir=str(bad))
    out = comp.complete(sp, img, conditioned=True)
    ref = completion.create("guided").complete(sp, img, conditioned=True)
    np.testing.assert_array_equal(np.isnan(out.depth), np.isnan(ref.depth) | (ref.depth > 120.0))
    assert comp.name.startswith("learned -> guided (fallback: ") and "corrupt or truncated" in comp.name
    strict = completion.create("learned", model_dir=str(bad), fallback="")
    with pytest.raises(ModelError, match="corrupt or truncated"):
        strict.complete(sp, img, conditioned=True)


def test_classical_path_never_imports_torch_or_onnxruntime() -> None:
    code = """
import sys, json
import numpy as np
from depth_nodes import pipeline as pl, runtime, models
from depth_nodes.cli import build_parser
build_parser()
sel = pl.EstimatorSelector("guided", "lidar_only", log=lambda s: None)
sp = np.zeros((64, 96), np.float32); sp[::4, ::3] = 10.0
img = np.full((64, 96, 3), 128, np.uint8)
out = sel.for_mode(pl.GUIDED).completer.complete(sp, img)
assert np.isfinite(out.depth).any()
print(json.dumps([m for m in ("torch", "onnxruntime", "onnx", "tensorrt") if m in sys.modules]))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


def test_default_mono_fallback_imports_ml_libraries_only_on_its_loader_thread() -> None:
    """``monocular_estimator: mono`` (the shipped own net): building the selector imports no torch / onnxruntime and
    loads nothing (standby until the node leaves guided mode); ``ensure_loaded`` then loads on the background
    loader, never on the calling (executor) thread, and with onnxruntime present never torch."""
    code = """
import sys, json, threading, time
seen = []
def hook(event, args):
    if event == "import" and args[0].split(".")[0] in ("torch", "onnxruntime"):
        seen.append((args[0].split(".")[0], threading.current_thread().name))
sys.addaudithook(hook)
from depth_nodes import pipeline as pl
sel = pl.EstimatorSelector("guided", "lidar_only", "mono", log=lambda s: None)
est = sel.for_mode(pl.MONOCULAR)
standby = (est.state, list(seen))
est.ensure_loaded()
main_seen = [m for m, t in seen if t == "MainThread"]
deadline = time.monotonic() + 60
while est.state == "loading" and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"standby": standby, "main": main_seen, "state": est.state, "reason": est.reason,
                  "torch": "torch" in sys.modules, "loader": sorted({t for _, t in seen})}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["main"] == [], out
    have_ort = importlib.util.find_spec("onnxruntime") is not None
    if have_ort or importlib.util.find_spec("torch") is not None:
        assert out["standby"] == ["standby", []], out  # nothing loaded or imported before ensure_loaded
        assert out["state"] == "ready" and out["loader"] == ["mono-model-loader"], out
        assert not (have_ort and out["torch"]), out  # ONNX Runtime serves the shipped net without torch
    else:
        assert out["state"] == "unavailable" and "depth_nodes[ml]" in out["reason"], out


def test_gpu_torch_backend_fp16(exported) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine: torch CUDA fp16 runs only where one is")
    b = create_backend(exported["dir"], "torch", precision="fp16", device="cuda:0")
    img, sp = street_frame(*EXPORT_HW)
    feed = to_inputs_numpy(img, sp, Normalisation(), 4)
    ref = create_backend(exported["dir"], "torch", device="cpu").infer(feed)
    assert np.abs(b.infer(feed)["depth"] - ref["depth"]).max() < 0.05 * ref["depth"].max()


def test_gpu_preprocessing_matches_the_numpy_one() -> None:
    """The torch pre-processing (on the GPU in production; here on the CPU device) equals the numpy one."""
    from depth_nodes.runtime.preprocess import to_inputs_torch

    img, sp = street_frame(30, 45, seed=2)
    sp[0, 0] = np.nan  # no return: 0 in the inverse depth, like the numpy path
    a = to_inputs_numpy(img, sp, Normalisation(), 4)
    b = to_inputs_torch(img, sp, Normalisation(), 4, "cpu")
    for n in a:
        assert tuple(b[n].shape) == a[n].shape == ((1, 3, 32, 48) if n == "image" else (1, 1, 32, 48))
        np.testing.assert_allclose(b[n].numpy(), a[n], atol=1e-5)


def test_a_stale_model_onnx_is_not_run(exported, tmp_path, caplog) -> None:
    """``<dir>/model.onnx`` exported for another config (older defaults, an edited config.json) is re-exported."""
    import shutil

    import onnx

    d = tmp_path / "model"
    shutil.copytree(exported["dir"], d)
    shutil.copy(exported["onnx"], d / "model.onnx")
    assert factory.resolve_onnx(d, tmp_path / "cache", *EXPORT_HW) == d / "model.onnx"  # matches: used as is
    m = onnx.load(str(d / "model.onnx"))
    for p in m.metadata_props:
        if p.key == "depth_nodes.config_hash":
            p.value = "0123456789abcdef"
    onnx.save(m, str(d / "model.onnx"))
    with caplog.at_level("WARNING"):
        fresh = factory.resolve_onnx(d, tmp_path / "cache", *EXPORT_HW)
    assert fresh.parent == tmp_path / "cache" and fresh.is_file()
    assert "was exported for config 0123456789abcdef" in caplog.text
    a = create_backend(fresh, "onnxruntime")
    img, sp = street_frame(*EXPORT_HW, seed=2)
    feed = to_inputs_numpy(img, sp, Normalisation(), 4)
    ref = create_backend(exported["onnx"], "onnxruntime").infer(feed)["depth"]
    assert np.abs(a.infer(feed)["depth"] - ref).max() <= 1e-4
