"""The monocular net never blocks the node's worker beyond ``mono_frame_budget_s``: a net slower than the budget
runs on its own thread at its own rate; each finished estimate is published once, stamped with its own image
(the pipeline's result carries that stamp); a fast net serves every frame with its own estimate."""

import threading
import time

import node_scene as scene
import numpy as np
import pytest

from depth_nodes import pipeline as pl
from depth_nodes.core.scale_fit import METRIC
from depth_nodes.errors import EmptyInputError
from depth_nodes.mono import fallback_estimator as E
from depth_nodes.mono.runner import LatestJobRunner
from depth_nodes.pipeline.sync import Scan


class SlowModel:
    """A metric mono model that takes ``delay_s`` per frame and returns 0.5 x the truth."""

    kind, name, prompted = METRIC, "slow", False

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.truth = scene.dense_depth()
        self.calls = 0

    def predict(self, rgb):
        self.calls += 1
        time.sleep(self.delay_s)
        return (0.5 * np.nan_to_num(self.truth, nan=0.0)).astype(np.float32), False


def _guarded(monkeypatch, delay_s, budget_s):
    model = SlowModel(delay_s)
    monkeypatch.setattr(E, "load_model", lambda kind, opts: model)
    est = E.GuardedMono("depth_anything_v2", E.MonoOptions(frame_budget_s=budget_s, min_fit_points=50, fit_period_frames=1), print)
    est.ensure_loaded()  # lazy default: the pipeline calls it when the node leaves guided mode
    deadline = time.monotonic() + 10
    while est.state == "loading" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert est.state == "ready", est.reason
    return est, model


def _inputs(stamp_ns, lidar=True):
    sparse = scene.projected_returns(*scene.lidar_scan())
    from depth_nodes.core.projection import SparseDepth

    sp = SparseDepth(sparse, int((sparse > 0).sum()), 0, 0, 0) if lidar else None
    return pl.FrameInputs(scene.camera(), stamp_ns, "cam", scene.rgb_image(), sp, 120.0)


def _timed(fn, *args):
    t0 = time.perf_counter()
    try:
        return fn(*args), time.perf_counter() - t0
    except EmptyInputError as exc:
        return exc, time.perf_counter() - t0


def test_slow_net_never_blocks_beyond_the_budget_and_publishes_each_estimate_once(monkeypatch):
    est, model = _guarded(monkeypatch, delay_s=0.4, budget_s=0.05)
    try:
        r1, t1 = _timed(est.estimate, _inputs(1_000))
        r2, t2 = _timed(est.estimate, _inputs(2_000))  # frame 1 still running: frame 2 waits in the slot
        r3, t3 = _timed(est.estimate, _inputs(3_000))  # replaces frame 2 (newest wins, never a queue)
        for r, t in ((r1, t1), (r2, t2), (r3, t3)):
            assert isinstance(r, EmptyInputError) and "not ready within mono_frame_budget_s" in str(r)
            assert t < 0.3, t  # the budget (0.05 s) + scheduling slack, far below the net's 0.4 s
        assert est._runner.dropped == 1
        deadline = time.monotonic() + 10
        while model.calls < 2 or est._runner.busy:  # frames 1 and 3 ran; 2 never did
            assert time.monotonic() < deadline
            time.sleep(0.02)
        out, t4 = _timed(est.estimate, _inputs(4_000))  # frame 4 starts; the newest finished one is frame 3
        assert t4 < 0.3 and not isinstance(out, Exception)
        assert out.source_stamp_ns == 3_000 and est.late_published == 1  # frame 1's was older: dropped
        ok = np.isfinite(out.depth) & np.isfinite(scene.dense_depth())
        np.testing.assert_allclose(out.depth[ok], scene.dense_depth()[ok], rtol=1e-3)  # scale fitted (x2)
        r5, _ = _timed(est.estimate, _inputs(5_000))  # frame 3's estimate is not published twice
        assert isinstance(r5, EmptyInputError)
        values, _ = est.diagnostics()
        assert float(values["mono_net_s"]) >= 0.4 and values["mono_published_late"] == "1"
    finally:
        est.close()


def test_fast_net_serves_each_frame_its_own_estimate(monkeypatch):
    est, model = _guarded(monkeypatch, delay_s=0.0, budget_s=5.0)
    try:
        for i in range(1, 4):
            out = est.estimate(_inputs(i * 1_000))
            assert out.source_stamp_ns is None and np.isfinite(out.depth).any()
        assert model.calls == 3 and est.late_published == 0
    finally:
        est.close()


def test_pipeline_publishes_a_late_estimate_with_its_own_stamp(monkeypatch):
    """Through the frame pipeline (what the node publishes): monocular frames with a slow net; the published
    result carries the stamp of the image the estimate came from, never the later frame's."""
    est, _ = _guarded(monkeypatch, delay_s=0.3, budget_s=0.02)
    pl.register_estimator("slow_mono", lambda: est)
    sel = pl.EstimatorSelector("guided", "lidar_only", monocular="slow_mono", log=lambda s: None)
    pipe = pl.FramePipeline(sel, pl.ModeMachine(1))
    cam, rgb = scene.camera(), scene.rgb_image()
    points, _ = scene.lidar_scan()
    try:
        first = pipe.process(cam, 10**9, "cam", rgb, Scan(points, 10**9, "lidar"), scene.T_CAM_LIDAR)
        assert first.mode == pl.GUIDED and first.published
        deadline = time.monotonic() + 10
        while est.inner.tracker.state is None:  # the guided frame's refit ran on the net's thread
            assert time.monotonic() < deadline
            time.sleep(0.02)
        published = []
        for i in range(2, 30):
            r, took_s = _timed(pipe.process, cam, i * 10**9, "cam", rgb, None, None)
            assert took_s < 0.25 and r.mode == pl.MONOCULAR  # budget 20 ms + slack; the net takes 300 ms
            if r.published:
                published.append(r.stamp_ns)
            if len(published) >= 2:
                break
            time.sleep(0.1)
        assert len(published) == 2 and all(s % 10**9 == 0 for s in published)
        assert published[0] < published[1]  # each once, in order, each with its own image's stamp
    finally:
        est.close()
        pl.estimators.ESTIMATORS.pop("slow_mono", None)


def test_runner_wait_returns_when_its_job_is_replaced():
    runner = LatestJobRunner("t")
    gate = threading.Event()
    try:
        runner.submit("a", gate.wait)
        time.sleep(0.05)
        runner.submit("b", lambda: 1)
        runner.submit("c", lambda: 2)  # replaces b
        t0 = time.perf_counter()
        assert runner.wait("b", 5.0) is None and time.perf_counter() - t0 < 1.0
        gate.set()
        assert runner.wait("c", 5.0).unwrap() == 2
        runner.submit("x", lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            runner.wait("x", 5.0).unwrap()
    finally:
        gate.set()
        runner.close()
