"""IP-Basic (both published variants) and nearest fill on small constructed cases; completer interface."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.completion import available, create
from depth_nodes.completion.ip_basic import DIAMOND_KERNEL_5, fill_in_fast, fill_in_multiscale
from depth_nodes.errors import InputShapeError


def _grid(shape=(60, 80), value=10.0, step=(4, 2), top=10):
    sparse = np.zeros(shape, np.float32)
    sparse[top :: step[0], :: step[1]] = value
    return sparse


def test_registry_lists_baselines():
    names = available()
    for n in ("nearest", "ip_basic", "ip_basic_multiscale"):
        assert n in names and names[n]
    with pytest.raises(KeyError, match="unknown completer"):
        create("no_such_method")


@pytest.mark.parametrize("fill", [fill_in_fast, fill_in_multiscale])
def test_constant_depth_is_filled_exactly_below_the_top_return(fill):
    out = fill(_grid())
    region = out[12:-3, 3:-3]
    assert np.allclose(region, 10.0, atol=1e-4)
    assert (out[:4] == 0).all()  # nothing above the highest return (+ kernel reach) without extrapolation


def test_fast_dilation_uses_the_diamond_kernel_and_prefers_near_depth():
    sparse = np.zeros((21, 21), np.float32)
    sparse[10, 10] = 5.0
    inverted = np.where(sparse > 0.1, 100.0 - sparse, 0).astype(np.float32)
    import cv2

    dil = cv2.dilate(inverted, DIAMOND_KERNEL_5)
    assert np.count_nonzero(dil) == DIAMOND_KERNEL_5.sum()  # the published first step
    # A near and a far return 2 px apart: the pixel between them takes the near depth (inverted max wins).
    two = np.zeros((21, 21), np.float32)
    two[10, 9], two[10, 11] = 5.0, 40.0
    out = fill_in_fast(two, blur_type="none")
    assert out[10, 10] == pytest.approx(5.0)


def test_extrapolate_carries_the_top_value_upwards():
    sparse = _grid(top=20)
    out = fill_in_fast(sparse.copy(), extrapolate=True)  # in place, like the published function
    assert np.allclose(out[:20, 5:-5], 10.0, atol=1e-4)
    out_ms = fill_in_multiscale(sparse, extrapolate=True)
    assert np.allclose(out_ms[:20, 5:-5], 10.0, atol=1e-4)


def test_multiscale_keeps_near_and_far_bands_apart():
    sparse = _grid(shape=(60, 80), top=10)
    sparse[:, 40:] *= 5.0  # left half 10 m (near band), right half 50 m (far band)
    out = fill_in_multiscale(sparse, blur_type="none")
    assert np.allclose(out[15:-3, 3:36], 10.0, atol=1e-3)
    assert np.allclose(out[15:-3, 44:-3], 50.0, atol=1e-3)
    # At the boundary the nearer surface wins (inverted-depth dilation): no depth between the two.
    mid = out[15:-3, 36:44]
    assert np.all(np.isclose(mid, 10.0, atol=1e-3) | np.isclose(mid, 50.0, atol=1e-3))


@pytest.mark.parametrize("name", ["nearest", "ip_basic", "ip_basic_multiscale"])
def test_completers_return_nan_where_no_estimate_and_confidence_in_range(name):
    comp = create(name)
    res = comp.complete(_grid(top=20))
    assert res.depth.dtype == np.float32 and res.depth.shape == (60, 80)
    assert res.confidence.min() >= 0 and res.confidence.max() <= 1
    if name == "ip_basic_multiscale":  # published setting without extrapolation: nothing above the top
        assert np.isnan(res.depth[:12]).all() and (res.confidence[:12] == 0).all()
    elif name == "ip_basic":  # published paper setting extrapolates the top value upwards
        assert np.allclose(res.depth[:12, 4:-4], 10.0, atol=1e-3)
    lidar = _grid(top=20) > 0
    assert np.allclose(res.depth[lidar], 10.0, atol=1e-3)
    assert res.confidence[lidar].mean() > res.confidence[~lidar & np.isfinite(res.depth)].mean()


def test_bad_sparse_input_is_rejected_clearly():
    comp = create("ip_basic")
    with pytest.raises(InputShapeError, match="H x W"):
        comp.complete(np.zeros(10, np.float32))
    with pytest.raises(InputShapeError, match="floating"):
        comp.complete(np.zeros((10, 10), np.uint16))
    with pytest.raises(InputShapeError, match="does not match"):
        comp.complete(np.zeros((10, 10), np.float32), image=np.zeros((5, 5, 3), np.uint8))
    # NaN / negative entries mean "no return", not an error.
    sparse = _grid()
    sparse[0, 0], sparse[1, 1] = np.nan, -3.0
    assert np.isfinite(comp.complete(sparse).depth[30, 40])


def test_empty_sparse_gives_no_estimate():
    res = create("nearest").complete(np.zeros((8, 8), np.float32))
    assert np.isnan(res.depth).all() and (res.confidence == 0).all()
