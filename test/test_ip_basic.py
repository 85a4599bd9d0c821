"""IP-Basic against a straight re-implementation of the published sequence (kujason/ip_basic,
``ip_basic/depth_map_utils.py``), written here step by step with the published loops and boolean
indexing, and each published step on small constructed frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depth_nodes.completion import create
from depth_nodes.completion.ip_basic import (
    CROSS_KERNEL_3,
    CROSS_KERNEL_5,
    CROSS_KERNEL_7,
    DIAMOND_KERNEL_5,
    fill_in_fast,
    fill_in_multiscale,
)

K5, K7, K9, K31 = (np.ones((n, n), np.uint8) for n in (5, 7, 9, 31))


def ref_fast(depth_map, max_depth=100.0, extrapolate=False, blur_type="bilateral"):
    depth_map = depth_map.copy()
    valid_pixels = depth_map > 0.1
    depth_map[valid_pixels] = max_depth - depth_map[valid_pixels]
    depth_map = cv2.dilate(depth_map, DIAMOND_KERNEL_5)
    depth_map = cv2.morphologyEx(depth_map, cv2.MORPH_CLOSE, K5)
    empty_pixels = depth_map < 0.1
    dilated = cv2.dilate(depth_map, K7)
    depth_map[empty_pixels] = dilated[empty_pixels]
    if extrapolate:
        top_row_pixels = np.argmax(depth_map > 0.1, axis=0)
        top_pixel_values = depth_map[top_row_pixels, range(depth_map.shape[1])]
        for c in range(depth_map.shape[1]):
            depth_map[0 : top_row_pixels[c], c] = top_pixel_values[c]
        empty_pixels = depth_map < 0.1
        dilated = cv2.dilate(depth_map, K31)
        depth_map[empty_pixels] = dilated[empty_pixels]
    depth_map = cv2.medianBlur(depth_map, 5)
    if blur_type == "bilateral":
        depth_map = cv2.bilateralFilter(depth_map, 5, 1.5, 2.0)
    elif blur_type == "gaussian":
        valid_pixels = depth_map > 0.1
        blurred = cv2.GaussianBlur(depth_map, (5, 5), 0)
        depth_map[valid_pixels] = blurred[valid_pixels]
    valid_pixels = depth_map > 0.1
    depth_map[valid_pixels] = max_depth - depth_map[valid_pixels]
    return depth_map


def ref_multiscale(depth_map, max_depth=100.0, extrapolate=False, blur_type="bilateral"):
    depths_in = np.float32(depth_map)
    near = (depths_in > 0.1) & (depths_in <= 15.0)
    med = (depths_in > 15.0) & (depths_in <= 30.0)
    far = depths_in > 30.0
    s1 = np.copy(depths_in)
    valid = s1 > 0.1
    s1[valid] = max_depth - s1[valid]
    d_far = cv2.dilate(np.multiply(s1, far), CROSS_KERNEL_3)
    d_med = cv2.dilate(np.multiply(s1, med), CROSS_KERNEL_5)
    d_near = cv2.dilate(np.multiply(s1, near), CROSS_KERNEL_7)
    s2 = np.copy(s1)
    s2[d_far > 0.1] = d_far[d_far > 0.1]
    s2[d_med > 0.1] = d_med[d_med > 0.1]
    s2[d_near > 0.1] = d_near[d_near > 0.1]
    s3 = cv2.morphologyEx(s2, cv2.MORPH_CLOSE, K5)
    s4 = np.copy(s3)
    blurred = cv2.medianBlur(s3, 5)
    s4[s3 > 0.1] = blurred[s3 > 0.1]
    top_mask = np.ones(depths_in.shape, dtype=bool)
    for c in range(s4.shape[1]):
        top_mask[0 : np.argmax(s4[:, c] > 0.1), c] = False
    empty = ~(s4 > 0.1) & top_mask
    dilated = cv2.dilate(s4, K9)
    s5 = np.copy(s4)
    s5[empty] = dilated[empty]
    s6 = np.copy(s5)
    top_mask = np.ones(s5.shape, dtype=bool)
    top_rows = np.argmax(s5 > 0.1, axis=0)
    top_vals = s5[top_rows, range(s5.shape[1])]
    for c in range(s5.shape[1]):
        if extrapolate:
            s6[0 : top_rows[c], c] = top_vals[c]
        else:
            top_mask[0 : top_rows[c], c] = False
    s7 = np.copy(s6)
    for _ in range(6):
        empty = (s7 < 0.1) & top_mask
        dilated = cv2.dilate(s7, K5)
        s7[empty] = dilated[empty]
    blurred = cv2.medianBlur(s7, 5)
    valid = (s7 > 0.1) & top_mask
    s7[valid] = blurred[valid]
    if blur_type == "gaussian":
        blurred = cv2.GaussianBlur(s7, (5, 5), 0)
        valid = (s7 > 0.1) & top_mask
        s7[valid] = blurred[valid]
    elif blur_type == "bilateral":
        blurred = cv2.bilateralFilter(s7, 5, 0.5, 2.0)
        s7[valid] = blurred[valid]
    s8 = np.copy(s7)
    valid = np.where(s8 > 0.1)
    s8[valid] = max_depth - s8[valid]
    return s8


def scan_like(seed: int = 0, shape=(120, 300)) -> np.ndarray:
    """Ring-like sparse depth: every 4th row from row 30, 60 % of the pixels, depths 3..110 m, a column
    band without returns and a 40 x 40 hole."""
    rng = np.random.default_rng(seed)
    h, w = shape
    d = np.zeros(shape, np.float32)
    rows = np.arange(30, h, 4)
    base = np.linspace(110, 3, rows.size)[:, None] * (1 + 0.2 * np.sin(np.arange(w) / 17.0))[None, :]
    keep = rng.random((rows.size, w)) < 0.6
    d[rows] = np.where(keep, base, 0).astype(np.float32)
    d[:, 100:104] = 0  # columns without returns
    d[60:100, 200:240] = 0  # a hole larger than 31 px
    return d


SETTINGS = [(e, b) for e in (False, True) for b in ("bilateral", "gaussian", "none")]


@pytest.mark.parametrize("extrapolate,blur", SETTINGS)
@pytest.mark.parametrize("max_depth", [100.0, 120.0])
def test_fast_equals_the_published_sequence(extrapolate, blur, max_depth):
    for seed in range(3):
        d = scan_like(seed)
        ours = fill_in_fast(d.copy(), max_depth, extrapolate=extrapolate, blur_type=blur)
        np.testing.assert_array_equal(ours, ref_fast(d, max_depth, extrapolate, blur))


@pytest.mark.parametrize("extrapolate,blur", SETTINGS)
@pytest.mark.parametrize("max_depth", [100.0, 120.0])
def test_multiscale_equals_the_published_sequence(extrapolate, blur, max_depth):
    for seed in range(3):
        d = scan_like(seed)
        ours = fill_in_multiscale(d, max_depth, extrapolate=extrapolate, blur_type=blur)
        np.testing.assert_array_equal(ours, ref_multiscale(d, max_depth, extrapolate, blur))


def test_registered_settings_are_the_published_demo_ones():
    fast, ms = create("ip_basic"), create("ip_basic_multiscale")
    assert (fast.mode, fast.extrapolate, fast.blur_type, fast.max_depth_m) == (
        "fast",
        True,
        "gaussian",
        100.0,
    )
    assert (ms.mode, ms.extrapolate, ms.blur_type) == ("multiscale", False, "bilateral")
    d = scan_like(1)
    ref = ref_fast(d, 100.0, True, "gaussian")
    out = fast.complete(d).depth
    np.testing.assert_array_equal(np.nan_to_num(out), np.where(ref > 0.1, ref, 0))
    assert d[30].any() and not d[:30].any()  # the input is left untouched


def test_a_column_without_returns_is_filled_by_both_variants():
    d = scan_like(0)
    for name in ("ip_basic", "ip_basic_multiscale"):
        out = create(name).complete(d).depth
        # Published multiscale: argmax of an all-empty column is 0, so the column is not masked.
        assert np.isfinite(out[40:, 100:104]).all(), name


def test_a_hole_larger_than_31_px_keeps_its_centre_empty_and_its_rim_filled():
    d = np.zeros((120, 160), np.float32)
    d[10::3, ::2] = 20.0
    d[40:100, 50:110] = 0  # 60 x 60 px hole
    fast_noext = fill_in_fast(d.copy(), extrapolate=False, blur_type="none")
    assert fast_noext[70, 80] == 0 and fast_noext[42, 80] == pytest.approx(20.0)
    fast_ext = fill_in_fast(d.copy(), extrapolate=True, blur_type="none")
    assert fast_ext[70, 80] == 0 and fast_ext[56, 80] == pytest.approx(20.0)  # the 31 x 31 large fill
    ms = fill_in_multiscale(d, blur_type="none")
    assert ms[70, 80] == 0 and ms[52, 80] == pytest.approx(20.0)  # 9 x 9 + six 5 x 5 masked dilations


@pytest.mark.parametrize("name", ["ip_basic", "ip_basic_multiscale"])
def test_returns_beyond_100_m_survive_with_max_depth_120(name):
    d = np.zeros((60, 80), np.float32)
    d[10::4, ::2] = 110.0
    at_100 = create(name).complete(d).depth
    at_120 = create(name, max_depth_m=120.0).complete(d).depth
    assert np.isnan(at_100[20:50, 10:70]).all()  # inverted below 0: dropped, as published
    np.testing.assert_allclose(at_120[20:50, 10:70], 110.0, atol=1e-3)


def test_confidence_is_one_on_returns_decays_away_and_zero_where_empty():
    comp = create("ip_basic_multiscale")
    d = scan_like(2) * np.float32(0.5)  # 1.5 .. 66 m
    res = comp.complete(d)
    ret = d > 0
    assert np.isfinite(res.depth[ret]).all() and np.allclose(res.confidence[ret], 1.0)
    assert (res.confidence[np.isnan(res.depth)] == 0).all()
    dist = cv2.distanceTransform((d <= 0).astype(np.uint8), cv2.DIST_L2, 3)
    fin = np.isfinite(res.depth)
    far, near = (dist > 6) & fin, (dist > 0) & (dist < 2) & fin
    assert res.confidence[far].max() < res.confidence[near].min()
