"""Guided completer (``guided`` / ``lidar_only``): analytic scenes, the top rule, error paths, and a
synthetic KITTI-like frame against IP-Basic."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.completion import create
from depth_nodes.completion.guided import GuidedCompleter
from depth_nodes.errors import InputShapeError

H, W = 120, 240


def ring_mask(
    shape=(H, W), first_row: int = 20, ring_step: int = 6, col_step: int = 2, jitter: int = 0, seed: int = 0
) -> np.ndarray:
    """Returns on 'rings': every ``ring_step`` rows from ``first_row``, every ``col_step`` columns,
    each ring drifting by up to ``jitter`` rows across the image (like a real ring's curvature)."""
    h, w = shape
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    cols = np.arange(0, w, col_step)
    for r in range(first_row, h, ring_step):
        drift = np.rint(jitter * np.sin(cols / w * np.pi + rng.uniform(0, 3))).astype(int)
        rows = np.clip(r + drift, 0, h - 1)
        mask[rows, cols] = True
    return mask


def plane_depth(shape=(H, W)) -> np.ndarray:
    """A slanted plane (inverse depth affine in u, v: the road seen by a camera), 4..60 m."""
    v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    inv = 1.0 / 60.0 + (v / shape[0]) * (1.0 / 4.0 - 1.0 / 60.0) + 0.002 * (u / shape[1])
    return (1.0 / inv).astype(np.float32)


def test_planar_scene_is_recovered_exactly():
    depth = plane_depth()
    mask = ring_mask(jitter=2)
    sparse = np.where(mask, depth, 0).astype(np.float32)
    image = np.full((H, W, 3), 128, np.uint8)
    for name in ("guided", "lidar_only"):
        out = create(name).complete(sparse, image)
        est = np.isfinite(out.depth)
        assert est[20 + 3 :].all(), name  # dense below the top ring (row 20 +- 2)
        err = np.abs(out.depth[est] - depth[est])
        assert err.max() < 0.01, (name, float(err.max()))  # < 1 cm everywhere (up to 60 m)


def test_planar_scene_every_column_variant():
    # (Straight rings: a ring link drawn through a column rounds its row, which on a curved ring costs
    # up to half a pixel of the plane's vertical gradient; the default stride-2 path averages instead.)
    depth = plane_depth()
    sparse = np.where(ring_mask(), depth, 0).astype(np.float32)
    out = create("guided", column_stride=1).complete(sparse, np.full((H, W, 3), 90, np.uint8))
    assert np.isfinite(out.depth[20:]).all()
    assert np.abs(out.depth[20:] - depth[20:]).max() < 0.01


def test_planar_scene_sparse_beams_and_missing_returns():
    """16-beam-like spacing (24 rows between rings) and 30 % of the returns missing: still exact."""
    depth = plane_depth()
    mask = ring_mask(first_row=10, ring_step=24, col_step=2)
    mask &= np.random.default_rng(1).random(mask.shape) > 0.3
    sparse = np.where(mask, depth, 0).astype(np.float32)
    out = create("guided").complete(sparse, np.zeros((H, W, 3), np.uint8))
    assert np.isfinite(out.depth[10:]).all()
    # (The last columns are excluded: above a missing top return at the border the row fill has only
    # a left neighbour and copies it.)
    inner = (slice(10, None), slice(0, W - 4))
    assert np.abs(out.depth[inner] - depth[inner]).max() < 0.01
    # Strict default: nothing above the top ring (a flat row), confidence 0 there.
    assert np.isnan(out.depth[:10]).all() and (out.confidence[:10] == 0).all()
    # Opt-in: a margin of 8 px above it, continuing the receding plane (within 1 %).
    opt = create("guided", top_margin_px=8, top_plane_extension=True).complete(
        sparse, np.zeros((H, W, 3), np.uint8)
    )
    assert np.isnan(opt.depth[:2]).all() and np.isfinite(opt.depth[2:10]).all()
    assert np.abs(opt.depth[2:10] / depth[2:10] - 1).max() < 0.01


def edge_scene(horizontal: bool):
    """Foreground 5 m (dark) in front of background 20 m (bright); the image edge is the depth edge.

    ``horizontal``: the boundary runs along a row between two rings (a car roof); else along a column
    (a pole's side), between two returns of each ring."""
    v, u = np.mgrid[0:H, 0:W]
    fg = v >= 55 if horizontal else u >= 121
    depth = np.where(fg, 5.0, 20.0).astype(np.float32)
    image = np.where(fg[..., None], 40, 200).astype(np.uint8).repeat(3, axis=2)
    mask = ring_mask(first_row=4, ring_step=7, col_step=3 if not horizontal else 2)
    sparse = np.where(mask, depth, 0).astype(np.float32)
    dist = np.abs(v - 54.5) if horizontal else np.abs(u - 120.5)  # distance to the boundary (px)
    return sparse, image, depth, dist


@pytest.mark.parametrize("horizontal", [True, False])
def test_depth_edge_on_image_edge_stays_sharp(horizontal):
    sparse, image, depth, dist = edge_scene(horizontal)
    if horizontal:  # rings at rows 53 and 60: the edge (54.5) is 2 px from the midpoint split (56.5)
        assert (sparse[53] > 0).any() and not (sparse[54:60] > 0).any()
    out = create("guided").complete(sparse, image)
    est = np.isfinite(out.depth)
    far = est & (dist > 1.0)  # beyond one pixel of the boundary
    assert far.sum() > 0.9 * (dist > 1.0)[np.argmax(sparse > 0, axis=0).min() :].size
    wrong = np.abs(out.depth - depth) > 0.01 * depth
    assert not wrong[far].any(), np.argwhere(wrong & far)[:5]
    # Only the two surface depths appear: no mixed (interpolated) values anywhere.
    vals = out.depth[est]
    assert np.all(np.isclose(vals, 5.0, rtol=1e-3) | np.isclose(vals, 20.0, rtol=1e-3))


def test_lidar_only_ignores_the_image_and_splits_at_midpoints():
    sparse, image, depth, dist = edge_scene(horizontal=True)
    lo = create("lidar_only")
    assert lo.uses_image is False and create("guided").uses_image is True
    a = lo.complete(sparse, image)
    b = lo.complete(sparse, None)
    np.testing.assert_array_equal(a.depth, b.depth)
    guided = create("guided").complete(sparse, image)
    err_lo = np.nanmean(np.abs(a.depth - depth))
    err_g = np.nanmean(np.abs(guided.depth - depth))
    assert err_g < err_lo  # the image moves the split onto the true edge


def silhouette_scene():
    """Building 10 m whose roofline varies per column (returns up to a different row in each column);
    above it nothing returns (sky). Dense azimuth: every column has its own highest return."""
    v, u = np.mgrid[0:H, 0:W]
    roof = (30 + 20 * (np.sin(u[0] / 15.0) > 0) + (u[0] % 7)).astype(int)
    mask = ring_mask(first_row=2, ring_step=5, col_step=1) & (v >= roof[None, :])
    sparse = np.where(mask, 10.0, 0.0).astype(np.float32)
    image = np.where(v >= roof[None, :], 60, 230).astype(np.uint8)[..., None].repeat(3, axis=2)
    return sparse, image


def test_nothing_above_the_highest_return_per_column_when_strict():
    sparse, image = silhouette_scene()
    highest = np.argmax(sparse > 0, axis=0)
    above = np.arange(H)[:, None] < highest[None, :]
    for name in ("guided", "lidar_only"):
        out = create(name, top_window_px=0, top_margin_px=0).complete(sparse, image)
        assert np.isnan(out.depth[above]).all(), name
        assert (out.confidence[above] == 0).all(), name
        assert np.isfinite(out.depth[~above]).mean() > 0.99, name


def test_default_is_strict_above_the_local_top_envelope_and_extrapolation_is_opt_in():
    sparse, image = silhouette_scene()
    highest = np.argmax(sparse > 0, axis=0)
    out = create("guided").complete(sparse, image)  # default parameters
    # Nothing above the highest return within +-top_window_px (32) columns (+-2 px: the window is
    # applied on every other column), confidence 0 there.
    envelope = np.array([highest[max(0, x - 34) : x + 35].min() for x in range(W)])
    sky = np.arange(H)[:, None] < envelope[None, :]
    assert sky.any()
    assert np.isnan(out.depth[sky]).all() and (out.confidence[sky] == 0).all()
    # A column whose own top return is lower than its neighbours' is filled up to their top.
    between = ~sky & (np.arange(H)[:, None] < highest[None, :])
    assert between.sum() > 100 and np.isfinite(out.depth[between]).mean() > 0.9
    assert np.allclose(out.depth[between & np.isfinite(out.depth)], 10.0, rtol=1e-3)
    ext = create("guided", extrapolate_top=True).complete(sparse, image)
    assert np.isfinite(ext.depth).all()
    assert np.allclose(ext.depth, 10.0, rtol=1e-3)
    assert ext.confidence[sky].mean() < 0.5 * ext.confidence[~sky].mean()


def test_far_spikes_are_dropped_near_ones_kept():
    """A return far behind its ring neighbours (see-through / parallax leak) is replaced by the surface;
    a return in front of them (a thin pole) is kept."""
    depth = plane_depth()
    sparse = np.where(ring_mask(), depth, 0).astype(np.float32)
    sparse[50, 100] = depth[50, 100] * 3.0  # far spike
    sparse[62, 140] = depth[62, 140] * 0.3  # near spike (thin obstacle)
    out = create("guided").complete(sparse, np.zeros((H, W, 3), np.uint8))
    assert out.depth[50, 100] == pytest.approx(depth[50, 100], rel=1e-3)
    assert out.depth[62, 140] == pytest.approx(sparse[62, 140], rel=1e-5)
    kept = create("guided", drop_far_spikes=False).complete(sparse, np.zeros((H, W, 3), np.uint8))
    assert kept.depth[50, 100] == pytest.approx(sparse[50, 100], rel=1e-5)


def test_parallax_see_through_return_takes_the_near_surface():
    """A far return just past a dark car's roofline (the LiDAR, mounted apart from the camera, sees
    over the roof where the camera sees the car): the car's pixels below the image edge get the car's
    depth; with the filter off the far return is kept."""
    v, u = np.mgrid[0:H, 0:W]
    car = (v >= 50) & (u >= 60) & (u < 180)
    depth = np.where(car, 10.0, 40.0).astype(np.float32)
    image = np.where(car, 30, 200).astype(np.uint8)[..., None].repeat(3, axis=2)
    mask = ring_mask(first_row=4, ring_step=6, col_step=2)  # rings at rows ..., 46, 52, 58, ...
    sparse = np.where(mask, depth, 0).astype(np.float32)
    sparse[50, 70:170:2] = 40.0  # the see-through ring just below the roof edge (row 49 -> 50)
    out = create("guided").complete(sparse, image)
    roof = (slice(50, 52), slice(70, 170))
    assert np.abs(out.depth[roof] - 10.0).max() < 0.01
    assert np.abs(out.depth[40:50, 70:170] - 40.0).max() < 0.01  # the background above is untouched
    kept = create("guided", see_through_edge=0.0).complete(sparse, image)
    assert np.allclose(kept.depth[50, 70:170:2], 40.0)
    # Without an image there is nothing to tell: lidar_only keeps the return.
    assert np.allclose(create("lidar_only").complete(sparse, None).depth[50, 70:170:2], 40.0)


def test_confidence_range_and_nan_handling():
    depth = plane_depth()
    sparse = np.where(ring_mask(), depth, 0).astype(np.float32)
    out = create("guided").complete(sparse, np.zeros((H, W, 3), np.uint8))
    assert out.depth.dtype == np.float32 and out.confidence.dtype == np.float32
    assert out.depth.shape == out.confidence.shape == (H, W)
    assert ((out.confidence >= 0) & (out.confidence <= 1)).all()
    assert (out.confidence[np.isnan(out.depth)] == 0).all()
    # LiDAR returns are kept exactly.
    m = sparse > 0
    np.testing.assert_allclose(out.depth[m], sparse[m], rtol=1e-5)


def test_empty_and_degenerate_inputs():
    g = create("guided")
    out = g.complete(np.zeros((H, W), np.float32), np.zeros((H, W, 3), np.uint8))
    assert np.isnan(out.depth).all() and (out.confidence == 0).all()
    one = np.zeros((H, W), np.float32)
    one[60, 100] = 7.0
    out = g.complete(one, None)
    assert out.depth[60, 100] == pytest.approx(7.0)
    nan_in = np.where(ring_mask(), np.nan, 0).astype(np.float32)
    assert np.isnan(g.complete(nan_in).depth).all()  # NaN returns count as missing, no crash
    odd = np.where(ring_mask((50, 33)), 3.0, 0).astype(np.float32)  # odd width, small image
    assert np.nanmax(np.abs(g.complete(odd).depth - 3.0)) < 1e-4


def test_bad_input_and_parameters_give_clear_errors():
    g = create("guided")
    with pytest.raises(InputShapeError, match="H x W"):
        g.complete(np.zeros((4, 5, 6), np.float32))
    with pytest.raises(InputShapeError, match="does not match"):
        g.complete(np.zeros((H, W), np.float32), np.zeros((H, W + 1, 3), np.uint8))
    with pytest.raises(ValueError, match="column_stride"):
        GuidedCompleter(column_stride=3)
    with pytest.raises(ValueError, match="min_depth_m"):
        GuidedCompleter(min_depth_m=5.0, max_depth_m=1.0)
    with pytest.raises(ValueError, match="max_link_gap_px"):
        GuidedCompleter(max_link_gap_px=0)
    with pytest.raises(ValueError, match="confidence_scale_m"):
        GuidedCompleter(confidence_scale_m=0)


@pytest.fixture(scope="module")
def synthetic_frame():
    """One frame of a synthetic KITTI-like drive, cropped like KITTI DC (1216 x 352)."""
    from depth_nodes.core.projection import scan_to_depth
    from depth_nodes.data.kitti_depth import crop_bottom_centre
    from depth_nodes.data.synthetic import generate_drive, lidar_visible_gt, synthetic_calib

    cam, T = synthetic_calib()
    frame = next(iter(generate_drive(11, 1)))
    x0, y0 = crop_bottom_centre(cam.shape)
    sl = (slice(y0, y0 + 352), slice(x0, x0 + 1216))
    sparse = scan_to_depth(frame.points, T, cam).depth
    gt = lidar_visible_gt(frame.depth_gt, cam, T)
    return sparse[sl].copy(), np.ascontiguousarray(frame.image[sl]), gt[sl].copy()


def test_synthetic_frame_beats_ip_basic_and_confidence_ranks_errors(synthetic_frame):
    from depth_nodes.eval.metrics import fill_background
    from depth_nodes.eval.sparsification import sparsification

    sparse, image, gt = synthetic_frame
    m = gt > 0
    errs = {}
    for name in ("ip_basic", "guided"):
        out = create(name).complete(sparse, image)
        err = np.abs(fill_background(out.depth)[m] - gt[m])
        errs[name] = err
        if name == "guided":
            ause = sparsification(err, out.confidence[m], metric="rmse").ause
            rand = sparsification(err, np.random.default_rng(0).random(err.size), metric="rmse").ause
            assert ause < 0.5 * rand, (ause, rand)
    assert errs["guided"].mean() < 0.9 * errs["ip_basic"].mean()


@pytest.mark.parametrize("name", ["guided", "lidar_only"])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"top_margin_px": 0, "top_window_px": 0},
        {"top_margin_px": 8, "top_plane_extension": True},
        {"extrapolate_top": True},
        {"column_stride": 1},
    ],
)
def test_random_inputs_keep_returns_and_invariants(name, params):
    """Odd/small sizes and random densities: no crash, returns kept, confidence in 0..1, 0 where NaN."""
    rng = np.random.default_rng(5)
    # Random depths are full of "spikes" and "see-through" returns: both artefact filters off.
    g = create(name, drop_far_spikes=False, see_through_edge=0.0, **params)

    for h, w in [(2, 2), (3, 5), (5, 3), (9, 2), (17, 33), (48, 64)]:
        for density in (0.0, 0.01, 0.3, 1.0):
            sparse = np.where(rng.random((h, w)) < density, rng.uniform(1, 80, (h, w)), 0).astype(np.float32)
            out = g.complete(sparse, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            assert out.depth.shape == out.confidence.shape == (h, w)
            assert ((out.confidence >= 0) & (out.confidence <= 1)).all()
            assert (out.confidence[np.isnan(out.depth)] == 0).all()
            assert (np.isnan(out.depth) | (out.depth > 0)).all()
            m = sparse > 0
            np.testing.assert_allclose(out.depth[m], sparse[m], rtol=1e-4)


def test_top_ring_dropout_over_a_near_object_takes_the_object():
    """The top ring returns from a far wall left and right but not over a dark near object whose top
    is just below it (a dropout): the rows between take the object's depth (its top carried up), not
    the far wall's row interpolation."""
    v, u = np.mgrid[0:H, 0:W]
    obj = (v >= 22) & (u >= 90) & (u < 150)
    depth = np.where(obj, 10.0, 50.0).astype(np.float32)
    mask = ring_mask(first_row=20, ring_step=4, col_step=1)  # rings at rows 20, 24, 28, ...
    sparse = np.where(mask, depth, 0).astype(np.float32)
    sparse[20, 90:150] = 0.0  # the top ring's returns over the object are missing
    image = np.full((H, W, 3), 120, np.uint8)  # no image edge to help
    for name in ("guided", "lidar_only"):
        out = create(name).complete(sparse, image if name == "guided" else None)
        hole = out.depth[22:24, 100:140]  # the object's rows above its top return (row 24)
        assert np.isfinite(hole).all()
        assert np.abs(hole - 10.0).max() < 0.01, name
        assert np.abs(out.depth[20, 40:80] - 50.0).max() < 0.01  # the wall's ring itself is untouched
