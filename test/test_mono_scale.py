"""Scale recovery: known scale/shift recovered from a relative depth with 30 % outliers; tracking over time."""

import math

import numpy as np
import pytest

from depth_nodes.core import scale_fit as scale


def _scene(seed=0, h=120, w=400):
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, h)[:, None]
    depth = 4.0 + 60.0 * (1 - rows) ** 2 + 3.0 * rng.random((h, w))  # 4..67 m, road-like
    return depth.astype(np.float32), rng


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inverse_fit_recovers_scale_and_shift_with_30pct_outliers(seed):
    depth, rng = _scene(seed)
    s_true, t_true = 0.037, 0.006  # 1/z = s * r + t  <=>  r = (1/z - t) / s
    rel = (1.0 / depth - t_true) / s_true
    lidar = np.zeros_like(depth)
    mask = rng.random(depth.shape) < 0.06
    lidar[mask] = depth[mask] * (1 + rng.normal(0, 0.01, mask.sum()))  # 1 % range noise
    out = mask & (rng.random(depth.shape) < 0.3)  # 30 % of the returns are gross outliers
    lidar[out] = rng.uniform(1.0, 80.0, out.sum())
    fit = scale.fit_scale(rel, lidar, scale.INVERSE, seed=seed)
    assert fit.scale == pytest.approx(s_true, rel=0.01)
    assert fit.shift == pytest.approx(t_true, rel=0.01)
    assert 0.6 < fit.inlier_ratio < 0.8
    assert fit.residual < 0.02
    # plain least squares on the same data is far off: the test can fail
    valid = lidar > 0
    A = np.stack([rel[valid], np.ones(valid.sum())], 1)
    s_ls, _ = np.linalg.lstsq(A, 1 / lidar[valid], rcond=None)[0]
    assert abs(s_ls / s_true - 1) > 0.05


def test_metric_fit_scale_only_with_outliers():
    depth, rng = _scene(3)
    pred = depth / 1.37
    lidar = np.zeros_like(depth)
    mask = rng.random(depth.shape) < 0.05
    lidar[mask] = depth[mask]
    out = mask & (rng.random(depth.shape) < 0.3)
    lidar[out] = rng.uniform(1.0, 80.0, out.sum())
    fit = scale.fit_scale(pred, lidar, scale.METRIC)
    assert fit.scale == pytest.approx(1.37, rel=0.005) and fit.shift == 0.0


def test_fit_errors_name_the_problem():
    with pytest.raises(scale.ScaleFitError, match="min_points"):
        scale.fit_scale(np.ones((10, 10)), np.zeros((10, 10)))
    with pytest.raises(scale.ScaleFitError, match="differ in size"):
        scale.fit_scale(np.ones((10, 10)), np.zeros((10, 11)))
    lidar = np.full((20, 20), 10.0)
    with pytest.raises(scale.ScaleFitError, match="degenerate|no positive"):
        scale.fit_scale(np.ones((20, 20)), lidar, scale.INVERSE)


def test_apply_caps_sky_and_far():
    rel = np.array([[0.0, 1.0, 100.0]], np.float32)  # sky (disparity 0) -> 1/t
    d = scale.apply_scale(rel, scale.INVERSE, 0.1, 0.001, max_depth_m=80.0)
    assert np.isnan(d[0, 0])  # 1000 m > max_depth_m: not invented
    assert d[0, 1] == pytest.approx(1 / 0.101, rel=1e-5)
    neg = scale.apply_scale(rel, scale.INVERSE, 0.1, -0.5, max_depth_m=80.0)
    assert np.isnan(neg[0, :2]).all()  # non-positive inverse depth -> NaN


def test_tracker_smooths_in_log_scale_carries_and_decays():
    tr = scale.ScaleTracker(scale.METRIC, alpha=0.5, half_life_s=2.0, residual_ref=0.1)
    assert tr.confidence(0) == 0.0
    with pytest.raises(scale.ScaleFitError, match="no scale fit yet"):
        tr.apply(np.ones((2, 2)), 80.0)
    tr.update(scale.ScaleFit(scale.METRIC, 1.0, 0.0, 0.0, 1.0, 100, stamp_ns=0))
    tr.update(scale.ScaleFit(scale.METRIC, 1.44, 0.0, 0.0, 1.0, 100, stamp_ns=10**9))
    assert tr.scale == pytest.approx(1.2)  # geometric mean: smoothing in log-scale
    assert tr.confidence(10**9) == pytest.approx(1.0)
    assert tr.confidence(3 * 10**9) == pytest.approx(0.5)  # one half-life after the last fit
    assert tr.age_s(3 * 10**9) == pytest.approx(2.0)
    # a bad fit is rejected and the state is carried unchanged
    assert not tr.update(scale.ScaleFit(scale.METRIC, 3.0, 0.0, 0.9, 0.2, 100, stamp_ns=4 * 10**9))
    assert tr.scale == pytest.approx(1.2) and "residual" in tr.last_rejection
    # the residual lowers the confidence
    tr2 = scale.ScaleTracker(scale.METRIC, residual_ref=0.1)
    tr2.update(scale.ScaleFit(scale.METRIC, 1.0, 0.0, 0.1, 1.0, 100))
    assert tr2.confidence(0) == pytest.approx(0.5)
    # a fit far from the state (new camera) resets instead of averaging
    tr.update(scale.ScaleFit(scale.METRIC, 5.0, 0.0, 0.0, 1.0, 100, stamp_ns=5 * 10**9))
    assert math.isclose(tr.scale, 5.0)


def test_blend_in_inverse_depth():
    a = np.array([[10.0, np.nan, 5.0]], np.float32)
    b = np.array([[20.0, 7.0, np.nan]], np.float32)
    out = scale.blend(a, b, 0.5)
    assert out[0, 0] == pytest.approx(1 / (0.5 / 10 + 0.5 / 20))
    assert out[0, 1] == pytest.approx(7.0) and out[0, 2] == pytest.approx(5.0)
    assert scale.blend(a, b, 1.0)[0, 0] == pytest.approx(20.0)
