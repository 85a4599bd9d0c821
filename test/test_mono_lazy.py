"""The default mono fallback (``mono_fit_period_frames`` 0): nothing loaded and no net run while guided; the model
loads in the background when the node leaves guided mode (the worker never waits), its first scale fitted to the
last guided frame's LiDAR, then to the carried memory returns of each ``lidar_memory`` frame; ``monocular``
carries the newest of those fits when the memory ages out (issue 21)."""

from __future__ import annotations

import threading

import node_scene as scene
import numpy as np
import pytest
from test_memory_mode import cam_pose, guided_frame, memory_frame
from test_mono_estimator import DriftingModel

from depth_nodes import pipeline as pl
from depth_nodes.mono import fallback_estimator as mono_est
from depth_nodes.pipeline.lidar_memory import MemoryParams
from depth_nodes.pipeline.memory_mode import MemoryFallback

S = 1_000_000_000


@pytest.fixture
def lazy(monkeypatch):
    """A pipeline with LiDAR memory and the lazy GuardedMono, its loader held until ``gate`` is set."""
    model, gate, loads = DriftingModel(0.7), threading.Event(), []

    def load_model(kind, opts):
        loads.append(threading.current_thread().name)
        assert gate.wait(30), "test gate never opened"
        return model

    monkeypatch.setattr(mono_est, "load_model", load_model)
    monkeypatch.setattr(mono_est, "missing_dependency", lambda kind, model_dir="": "")
    gm = mono_est.GuardedMono(mono_est.MONO, mono_est.MonoOptions(half_life_s=2.0), warn=lambda s: None)
    pl.register_estimator("lazy_mono_test", lambda: gm)
    sel = pl.EstimatorSelector("guided", "lidar_only", monocular="lazy_mono_test", log=lambda s: None)
    pipe = pl.FramePipeline(sel, pl.ModeMachine(1), pl.LidarCriteria(min_lidar_points=100))
    pipe.memory = MemoryFallback(MemoryParams(max_age_s=1.0), mono=gm)
    return pipe, gm, model, gate, loads


def test_mono_loads_only_after_guided_and_carries_the_memory_fit(lazy):
    pipe, gm, model, gate, loads = lazy
    mem = pipe.memory
    start = memory_frame(pipe, mem, 0, cam_pose(0.0))  # started before the LiDAR: nothing to fit, no load
    assert start.mode == pl.MONOCULAR and not start.published and gm.state == "standby" and loads == []
    for i in range(1, 5):  # fresh LiDAR: no load, no net run, only a reference to the frame
        assert guided_frame(pipe, mem, i * S // 10, 0.0).mode == pl.GUIDED
    assert loads == [] and model.calls == 0 and gm.state == "standby" and gm.inner is None
    assert "loads when the node leaves guided mode" in gm.diagnostics()[0]["mono_state"]

    # LiDAR gone: lidar_memory serves at once from memory alone; the load starts on its own thread
    res = memory_frame(pipe, mem, 5 * S // 10, cam_pose(0.0))
    assert res.mode == pl.LIDAR_MEMORY and res.published and gm.state == "loading"
    assert float(mem.diagnostics()[0]["memory_mono_share_px"]) == 0.0
    gate.set()  # the worker did not wait for the (held) load
    gm._loader.join(30)
    assert loads == ["mono-model-loader"] and gm.state == "ready"
    # first scale: the last guided frame's LiDAR (one net run, on the loader thread)
    assert model.calls == 1 and gm.inner.tracker.scale == pytest.approx(1 / 0.7, rel=0.01)

    model.gain = 0.8  # the model's scale on later frames differs: the memory fits follow it
    for i in range(6, 15):
        res = memory_frame(pipe, mem, i * S // 10, cam_pose(0.0))
        assert res.mode == pl.LIDAR_MEMORY and res.published
    assert gm.inner.n_fits >= 9 and gm.inner.tracker.scale == pytest.approx(1 / 0.8, rel=0.01)
    fit_stamp = gm.inner.tracker.state.stamp_ns
    assert fit_stamp == 14 * S // 10  # stamped with the memory frame it was fitted on

    # memory ages out (newest scan at 0.4 s, max_age 1 s): monocular, metric from the last memory fit
    res = memory_frame(pipe, mem, 16 * S // 10, cam_pose(0.0))
    assert res.mode == pl.MONOCULAR and res.published, res.reason
    truth = scene.dense_depth()
    ok = np.isfinite(truth) & np.isfinite(res.depth)
    assert ok.mean() > 0.9 * np.isfinite(truth).mean()
    assert float(np.mean(np.abs(res.depth[ok] - truth[ok]))) < 0.25  # 1 % model noise x ~10 m; 1/0.7 gives ~1.4 m
    assert gm.diagnostics()[0]["mono_fit_age_s"] == "0.20"


def test_refit_period_keeps_the_eager_behaviour(monkeypatch):
    model = DriftingModel(0.7)
    monkeypatch.setattr(mono_est, "load_model", lambda kind, opts: model)
    monkeypatch.setattr(mono_est, "missing_dependency", lambda kind, model_dir="": "")
    gm = mono_est.GuardedMono(mono_est.MONO, mono_est.MonoOptions(fit_period_frames=2), warn=lambda s: None)
    gm._loader.join(30)
    assert gm.state == "ready"  # loaded at construction, as before issue 21


def test_without_ml_libraries_it_says_so_once_and_memory_serves_alone(monkeypatch):
    warnings = []
    monkeypatch.setattr(mono_est, "missing_dependency", lambda kind, model_dir="": "neither onnxruntime nor torch is installed")
    gm = mono_est.GuardedMono(mono_est.MONO, mono_est.MonoOptions(), warn=warnings.append)
    gm.ensure_loaded()
    assert gm.state == "unavailable" and gm._loader is None and len(warnings) == 1
    assert "unavailable: neither onnxruntime nor torch" in gm.diagnostics()[0]["mono_state"]
