"""KITTI devkit metrics: background fill against a loop transcription of the devkit, hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.errors import InputShapeError
from depth_nodes.eval.metrics import depth_metrics, fill_background, mean_metrics


def devkit_fill_reference(pred: np.ndarray) -> np.ndarray:
    """Line-by-line transcription of ``interpolateBackground`` (io_depth.h), invalid = -1."""
    d = np.where(np.isfinite(pred) & (pred > 0), pred, -1.0).astype(np.float64)
    h, w = d.shape
    for v in range(h):
        count = 0
        for u in range(w):
            if d[v, u] >= 0:
                if count >= 1:
                    u1, u2 = u - count, u - 1
                    if u1 > 0 and u2 < w - 1:
                        d[v, u1 : u2 + 1] = min(d[v, u1 - 1], d[v, u2 + 1])
                count = 0
            else:
                count += 1
        for u in range(w):
            if d[v, u] >= 0:
                d[v, :u] = d[v, u]
                break
        for u in range(w - 1, -1, -1):
            if d[v, u] >= 0:
                d[v, u + 1 :] = d[v, u]
                break
    for u in range(w):
        for v in range(h):
            if d[v, u] >= 0:
                d[:v, u] = d[v, u]
                break
        for v in range(h - 1, -1, -1):
            if d[v, u] >= 0:
                d[v + 1 :, u] = d[v, u]
                break
    return d


@pytest.mark.parametrize("seed", range(40))
def test_fill_matches_devkit_loop_on_random_arrays(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 9, size=2)
    pred = rng.uniform(1, 50, size=(h, w)).astype(np.float32)
    density = rng.choice([0.05, 0.3, 0.7])
    holes = rng.random((h, w)) > density
    pred[holes] = rng.choice([0.0, np.nan, -3.0], size=int(holes.sum()))
    if seed % 5 == 0 and h > 2:  # whole empty rows between valid rows: the devkit leaves them at -1
        pred[h // 2] = 0.0
    np.testing.assert_array_equal(fill_background(pred), devkit_fill_reference(pred))


def test_fill_hand_case() -> None:
    pred = np.array(
        [
            [0, 0, 0, 0, 0],
            [0, 5, 0, 0, 3],
            [2, 0, 9, 0, 0],
            [0, 0, 0, 0, 0],
        ],
        np.float32,
    )
    expected = np.array(
        [
            [5, 5, 3, 3, 3],  # top row copies the first valid row (after its row pass)
            [5, 5, 3, 3, 3],  # interior run -> min(5, 3); left border run -> 5
            [2, 2, 9, 9, 9],  # interior -> min(2, 9); right border -> 9
            [2, 2, 9, 9, 9],  # bottom copies the last valid row
        ],
        np.float64,
    )
    np.testing.assert_array_equal(fill_background(pred), expected)


def test_fill_empty_prediction_stays_invalid() -> None:
    assert (fill_background(np.zeros((3, 4))) == -1).all()


def test_metrics_hand_computed() -> None:
    gt = np.array([[10.0, 20.0], [0.0, 40.0]], np.float32)
    pred = np.array([[11.0, 18.0], [5.0, 40.0]], np.float32)
    m = depth_metrics(pred, gt)
    # errors on the 3 GT pixels: 1, 2, 0 m
    assert m["mae_mm"] == pytest.approx(1000.0)
    assert m["rmse_mm"] == pytest.approx(np.sqrt(5 / 3) * 1000)
    inv = [abs(1 / 11 - 1 / 10), abs(1 / 18 - 1 / 20), 0.0]
    assert m["imae_per_km"] == pytest.approx(np.mean(inv) * 1000)
    assert m["irmse_per_km"] == pytest.approx(np.sqrt(np.mean(np.square(inv))) * 1000)
    assert m["absrel"] == pytest.approx((0.1 + 0.1 + 0) / 3)
    assert m["delta1"] == pytest.approx(1.0)
    assert m["n_pixels"] == 3 and m["coverage"] == 1.0


def test_metrics_fill_holes_before_scoring() -> None:
    gt = np.array([[10.0, 10.0, 10.0]], np.float32)
    pred = np.array([[10.0, np.nan, 14.0]], np.float32)  # hole -> min(10, 14) = 10
    m = depth_metrics(pred, gt)
    assert m["mae_mm"] == pytest.approx(4000 / 3)
    assert m["coverage"] == pytest.approx(2 / 3)
    assert m["delta1"] == pytest.approx(2 / 3)  # 14/10 = 1.4 fails


def test_metrics_errors_and_empty_gt() -> None:
    with pytest.raises(InputShapeError, match="does not match"):
        depth_metrics(np.ones((2, 3)), np.ones((3, 2)))
    m = depth_metrics(np.ones((2, 2)), np.zeros((2, 2)))
    assert np.isnan(m["rmse_mm"]) and m["n_pixels"] == 0


def test_mean_metrics_is_per_frame_mean_skipping_nan() -> None:
    a = {"mae_mm": 100.0, "rmse_mm": 200.0}
    b = {"mae_mm": 300.0, "rmse_mm": float("nan")}
    m = mean_metrics([a, b])
    assert m["mae_mm"] == 200.0 and m["rmse_mm"] == 200.0 and m["n_frames"] == 2
