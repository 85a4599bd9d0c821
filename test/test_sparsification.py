"""Sparsification curves and AUSE: perfect, inverted and random confidences, hand-checked values."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.eval.sparsification import mean_curves, random_confidence, sparsification


def test_perfect_confidence_has_zero_ause() -> None:
    err = np.random.default_rng(0).exponential(1.0, 5000)
    s = sparsification(err, -err)  # confidence exactly ranks the errors
    assert s.ause == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(s.curve, s.oracle)
    assert s.curve[0] == pytest.approx(1.0) and s.oracle[-1] < 0.2


def test_random_worse_than_useful_worse_than_perfect() -> None:
    rng = np.random.default_rng(1)
    err = rng.exponential(1.0, 20000)
    noisy = -err + rng.normal(0, 0.5, err.size)
    s_useful = sparsification(err, noisy)
    s_random = sparsification(err, random_confidence(err.shape, seed=3))
    s_inverted = sparsification(err, err)
    assert 0 < s_useful.ause < 0.5 * s_random.ause
    assert s_random.ause < s_inverted.ause
    # a random ranking keeps the normalised error near 1 at every fraction
    assert np.abs(s_random.curve[:40] - 1).max() < 0.1


def test_hand_computed_curve_mae() -> None:
    err = np.array([4.0, 3.0, 2.0, 1.0])
    conf = np.array([0.1, 0.2, 0.3, 0.4])  # perfectly ranked
    s = sparsification(err, conf, metric="mae", fractions=np.array([0.0, 0.25, 0.5, 0.75]))
    np.testing.assert_allclose(s.curve, np.array([2.5, 2.0, 1.5, 1.0]) / 2.5)
    s_bad = sparsification(err, -conf, metric="mae", fractions=np.array([0.0, 0.25, 0.5, 0.75]))
    np.testing.assert_allclose(s_bad.curve, np.array([2.5, 3.0, 3.5, 4.0]) / 2.5)
    expected = np.trapezoid(s_bad.curve - s.curve, [0.0, 0.25, 0.5, 0.75])
    assert s_bad.ause == pytest.approx(expected)


def test_constant_confidence_ties_are_broken_randomly_not_by_raster_order() -> None:
    err = np.linspace(10, 0, 10000)  # raster order happens to be worst-first
    s = sparsification(err, np.ones_like(err))
    assert abs(s.curve[25] - 1) < 0.05


def test_degenerate_inputs() -> None:
    assert np.isnan(sparsification(np.zeros(0), np.zeros(0)).ause)
    assert np.isnan(sparsification(np.zeros(10), np.ones(10)).ause)  # zero error everywhere
    with pytest.raises(ValueError, match="metric"):
        sparsification(np.ones(3), np.ones(3), metric="bogus")
    with pytest.raises(ValueError, match="differ in size"):
        sparsification(np.ones(3), np.ones(4))


def test_mean_curves_skips_nan_frames() -> None:
    err = np.random.default_rng(2).random(100)
    a = sparsification(err, -err)
    b = sparsification(np.zeros(5), np.ones(5))
    m = mean_curves([a, b])
    assert m is not None and m.ause == pytest.approx(a.ause)
    assert mean_curves([b]) is None
