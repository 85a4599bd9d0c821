"""The monocular estimator in the frame pipeline: scale fitted in guided mode, carried through a LiDAR outage,
and the handover back to guided blended (no jump by the carried scale's error)."""

import node_scene as scene
import numpy as np
import pytest

from depth_nodes import pipeline as pl
from depth_nodes.core.scale_fit import METRIC
from depth_nodes.mono.fallback_estimator import MonoEstimator, MonoOptions
from depth_nodes.pipeline.sync import Scan


class DriftingModel:
    """A metric mono model that is ``gain`` times the truth (1 % pixel noise); ``gain`` can drift."""

    kind, name, prompted = METRIC, "drifting", False

    def __init__(self, gain: float = 0.7) -> None:
        self.gain = gain
        self.truth = scene.dense_depth()
        self.rng = np.random.default_rng(0)
        self.calls = 0

    def predict(self, rgb):
        self.calls += 1
        noise = 1 + 0.01 * self.rng.standard_normal(self.truth.shape)
        return (self.gain * self.truth * noise).astype(np.float32), False


def _pipeline(model, hysteresis, handover):
    est = MonoEstimator(model, MonoOptions(handover_frames=handover, fit_period_frames=5, half_life_s=2.0))
    pl.register_estimator("drifting_mono", lambda: est)
    sel = pl.EstimatorSelector("guided", "lidar_only", monocular="drifting_mono", log=lambda s: None)
    return pl.FramePipeline(sel, pl.ModeMachine(hysteresis)), est


def _run(pipe, n, t0, lidar, dt_ns=100_000_000):
    cam, rgb = scene.camera(), scene.rgb_image()
    points, _ = scene.lidar_scan()
    out = []
    for i in range(n):
        stamp = t0 + i * dt_ns
        scan = Scan(points, stamp, "lidar") if lidar else None
        out.append(pipe.process(cam, stamp, "cam", rgb, scan, scene.T_CAM_LIDAR if lidar else None))
    return out, t0 + n * dt_ns


def _mae(depth):
    truth = scene.dense_depth()
    ok = np.isfinite(truth) & np.isfinite(depth)
    return float(np.mean(np.abs(depth[ok] - truth[ok]))), ok.mean() / np.isfinite(truth).mean()


def test_outage_carries_the_fitted_scale_then_hands_over_smoothly():
    model = DriftingModel(0.7)
    pipe, est = _pipeline(model, hysteresis=1, handover=5)
    res, t = _run(pipe, 6, 0, lidar=True)
    assert all(r.mode == pl.GUIDED and r.published for r in res)
    assert model.calls == 2  # fit_period_frames = 5: the model runs on guided frames 1 and 6 only
    assert est.tracker.scale == pytest.approx(1 / 0.7, rel=0.01)
    res, t = _run(pipe, 10, t, lidar=False)  # LiDAR gone for 1 s
    assert all(r.mode == pl.MONOCULAR and r.published for r in res)
    mae, coverage = _mae(res[-1].depth)
    # the only error is the model's 1 % pixel noise (x mean depth ~10 m): 0.1 m, 0.25 m allowed
    assert mae < 0.25 and coverage > 0.95
    conf = [float(np.nanmax(r.confidence)) for r in res]
    assert conf[-1] < conf[0] and conf[-1] == pytest.approx(
        conf[0] * 0.5 ** (0.9 / 2.0), rel=0.02
    )  # half-life
    model.gain = 0.77  # the model's scale drifts 10 % while the LiDAR is away: the carried scale is now off
    res_drift, t = _run(pipe, 1, t, lidar=False)
    drifted = np.nanmedian(res_drift[0].depth / scene.dense_depth())
    assert drifted == pytest.approx(1.1, rel=0.01)
    res, t = _run(pipe, 7, t, lidar=True)  # LiDAR back
    assert all(r.mode == pl.GUIDED for r in res)
    ratios = [drifted] + [float(np.nanmedian(r.depth / scene.dense_depth())) for r in res]
    steps = np.abs(np.diff(ratios))
    # blended over 5 frames: each step moves 1/6 of the 10 % gap (1.7 %), never the whole gap at once
    assert steps.max() < 0.1 / 6 + 0.01, ratios
    assert ratios[-1] == pytest.approx(1.0, abs=0.01)  # guided alone after the handover


def test_without_handover_the_scale_error_jumps_at_once():
    model = DriftingModel(0.7)
    pipe, _ = _pipeline(model, hysteresis=1, handover=0)
    _, t = _run(pipe, 6, 0, lidar=True)
    _, t = _run(pipe, 3, t, lidar=False)
    model.gain = 0.77
    res, t = _run(pipe, 2, t, lidar=True)
    assert float(np.nanmedian(res[0].depth / scene.dense_depth())) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("kind", ["inverse", "metric"])
def test_model_without_a_fit_publishes_nothing_and_says_why(kind):
    """Relative and metric models alike: a metric net's own scale is not this camera's, so no fit -> no depth."""
    model = DriftingModel()
    model.kind = kind
    pipe, est = _pipeline(model, hysteresis=1, handover=5)
    res, _ = _run(pipe, 2, 0, lidar=False)
    assert [r.mode for r in res] == ["monocular", "monocular"]
    assert all(not r.published and "no scale fit yet" in r.reason for r in res), [r.reason for r in res]
    values, _ = est.diagnostics()
    assert values["mono_scale"] == "no fit yet"
