"""Guided completer (``guided`` / ``lidar_only``): planes, ring-free scan patterns against nearest
neighbour, the top rule and ``extrapolate``, the opt-in colour refinement, invariants, error paths, and a
synthetic KITTI-like frame against IP-Basic."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.completion import create
from depth_nodes.completion.guided import GuidedCompleter
from depth_nodes.core.projection import remove_occluded
from depth_nodes.errors import InputShapeError
from depth_nodes.eval.metrics import fill_background

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
        mask[np.clip(r + drift, 0, h - 1), cols] = True
    return mask


def raster_mask(shape=(H, W), first_row: int = 20, step: int = 4, offset: int = 0) -> np.ndarray:
    """A solid-state raster: a regular grid of returns, every ``step`` px in both directions."""
    mask = np.zeros(shape, bool)
    mask[first_row::step, offset::step] = True
    return mask


def rosette_mask(shape=(H, W), first_row: int = 20, n_points: int = 6000) -> np.ndarray:
    """A non-repetitive rosette (Livox-like): points along a rose curve r = cos(k t) over the image,
    denser at the centre, no rows or columns."""
    h, w = shape
    t = np.linspace(0, 40 * np.pi, n_points)
    r = np.cos(7.0 / 3.0 * t)
    u = np.rint(w / 2 + 0.55 * w * r * np.cos(t)).astype(int)
    v = np.rint(h / 2 + 0.55 * h * r * np.sin(t)).astype(int)
    ok = (u >= 0) & (u < w) & (v >= first_row) & (v < h)
    mask = np.zeros(shape, bool)
    mask[v[ok], u[ok]] = True
    return mask


def plane_depth(shape=(H, W)) -> np.ndarray:
    """A slanted plane (inverse depth affine in u, v: the road seen by a camera), 4..60 m."""
    v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    inv = 1.0 / 60.0 + (v / shape[0]) * (1.0 / 4.0 - 1.0 / 60.0) + 0.002 * (u / shape[1])
    return (1.0 / inv).astype(np.float32)


def street_scene(shape=(H, W)) -> tuple[np.ndarray, np.ndarray]:
    """Road plane, a far wall (40 m) above the horizon, two boxes (cars/poles) in front: depth and a
    matching image (each surface its own grey level)."""
    h, w = shape
    v, u = np.mgrid[0:h, 0:w]
    road = plane_depth(shape)
    depth = np.where(v < 0.45 * h, 40.0, np.minimum(road, 40.0)).astype(np.float32)
    image = np.where(v < 0.45 * h, 200, 90).astype(np.uint8)
    car = (v >= 0.35 * h) & (v < 0.7 * h) & (u >= 0.2 * w) & (u < 0.45 * w)
    pole = (v >= 0.1 * h) & (v < 0.8 * h) & (u >= 0.7 * w) & (u < 0.74 * w)
    depth[car], image[car] = 8.0, 40
    depth[pole], image[pole] = 5.0, 150
    return depth, np.repeat(image[..., None], 3, axis=2)


def devkit_errors(name: str, sparse: np.ndarray, image: np.ndarray, gt: np.ndarray, **params) -> np.ndarray:
    # Samples of the exact depth image: no see-through returns, so the input is declared conditioned.
    out = create(name, **params).complete(sparse, image, conditioned=True)
    m = gt > 0
    return np.abs(fill_background(out.depth)[m] - gt[m])


def rmse(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(err**2)))


@pytest.mark.parametrize(
    ("pattern", "bound"),
    [(ring_mask(jitter=2), 0.02), (raster_mask(), 0.01), (rosette_mask(), 0.07)],
    ids=["rings", "raster", "rosette"],
)
def test_plane_is_interpolated_whatever_the_scan_pattern(pattern, bound):
    depth = plane_depth()
    sparse = np.where(pattern, depth, 0).astype(np.float32)
    image = np.full((H, W, 3), 128, np.uint8)
    rows = np.flatnonzero(pattern.any(axis=1))
    inside = (np.arange(H) >= rows[0] + 3) & (np.arange(H) <= rows[-1] - 3)  # between the scan's ends
    gt = np.where(inside[:, None], depth, 0).astype(np.float32)
    err = devkit_errors("guided", sparse, image, gt) / gt[gt > 0]
    near = devkit_errors("nearest", sparse, image, gt) / gt[gt > 0]
    ipb = devkit_errors("ip_basic", sparse, image, gt) / gt[gt > 0]
    # The mean of the near/far envelopes is a midrange, not an exact interpolator: on this steep plane
    # (4..60 m within 120 rows) 1.5 % (rings), 0.75 % (raster), 5.5 % (sparse rosette), measured;
    # below the nearest return's error and within 1.25x IP-Basic's.
    assert err.mean() < bound, err.mean()
    assert err.mean() < 0.8 * near.mean(), (err.mean(), near.mean())
    assert err.mean() < 1.25 * ipb.mean(), (err.mean(), ipb.mean())


@pytest.mark.parametrize(
    "pattern",
    [
        ring_mask(ring_step=5, col_step=2, jitter=2),
        pytest.param(
            ring_mask(ring_step=20, col_step=2),
            marks=pytest.mark.xfail(
                strict=True,
                reason="known limit: 20-row gaps between sparse rings on this scene give 7.9 vs 6.8 m RMSE "
                "(the hole passes hedge between surfaces); on real KITTI 16-beam input guided is below "
                "nearest (docs/guided_completion.md)",
            ),
        ),
        raster_mask(step=4),
        raster_mask(step=7, offset=3),
        rosette_mask(),
        np.random.default_rng(3).random((H, W)) < 0.06,  # random (e.g. a shuffled, sparse scan)
    ],
    ids=["rings64", "rings16", "raster4", "raster7", "rosette", "random"],
)
def test_ring_free_patterns_rmse_not_above_nearest(pattern):
    """Any scan pattern on a street-like scene with depth edges: RMSE <= the nearest return's (and the
    same result whatever order the returns came in: the input is an image)."""
    depth, image = street_scene()
    sparse = np.where(pattern, depth, 0).astype(np.float32)
    first = int(np.argmax(pattern.any(axis=1)))
    gt = np.where(np.arange(H)[:, None] >= first, depth, 0).astype(np.float32)
    for name in ("guided", "lidar_only"):
        err = devkit_errors(name, sparse, image, gt)
        near = devkit_errors("nearest", sparse, image, gt)
        assert rmse(err) <= rmse(near), (name, rmse(err), rmse(near))


def silhouette_scene():
    """Building 10 m whose roofline varies per column (returns up to a different row in each column);
    above it nothing returns (sky). Dense azimuth: every column has its own highest return."""
    v, u = np.mgrid[0:H, 0:W]
    roof = (30 + 20 * (np.sin(u[0] / 15.0) > 0) + (u[0] % 7)).astype(int)
    mask = ring_mask(first_row=2, ring_step=5, col_step=1) & (v >= roof[None, :])
    sparse = np.where(mask, 10.0, 0.0).astype(np.float32)
    image = np.where(v >= roof[None, :], 60, 230).astype(np.uint8)[..., None].repeat(3, axis=2)
    return sparse, image


def test_top_is_nan_by_default_and_extrapolate_is_opt_in():
    sparse, image = silhouette_scene()
    highest = np.argmax(sparse > 0, axis=0)
    for name in ("guided", "lidar_only"):
        out = create(name).complete(sparse, image)
        # Nothing above the highest return within +-top_window_px columns, confidence 0 there.
        w = create(name).top_window_px
        envelope = np.array([highest[max(0, x - w) : x + w + 1].min() for x in range(W)])
        sky = np.arange(H)[:, None] < envelope[None, :]
        assert sky.sum() > 1000
        assert np.isnan(out.depth[sky]).all() and (out.confidence[sky] == 0).all(), name
        assert np.isfinite(out.depth[~sky]).mean() > 0.99, name
        assert np.allclose(out.depth[~sky & np.isfinite(out.depth)], 10.0, rtol=1e-3)
        strict = create(name, top_window_px=0).complete(sparse, image)
        above_own = np.arange(H)[:, None] < highest[None, :]
        assert np.isnan(strict.depth[above_own]).all(), name
        ext = create(name, extrapolate=True).complete(sparse, image)
        assert np.isfinite(ext.depth).all(), name
        assert np.allclose(ext.depth, 10.0, rtol=1e-3)
        assert ext.confidence[sky].max() < 0.5 * ext.confidence[~sky].min(), name


def edge_scene():
    """Foreground 5 m (dark) below background 20 m (bright); the boundary runs along a row between two
    rings (a car roof), at 1 px above the lower ring: the LiDAR alone cannot place it."""
    v, u = np.mgrid[0:H, 0:W]
    fg = v >= 58
    depth = np.where(fg, 5.0, 20.0).astype(np.float32)
    image = np.where(fg[..., None], 40, 200).astype(np.uint8).repeat(3, axis=2)
    sparse = np.where(ring_mask(first_row=4, ring_step=7, col_step=2), depth, 0).astype(np.float32)
    return sparse, image, depth


def test_colour_refinement_opt_in_takes_the_side_of_matching_colour():
    sparse, image, depth = edge_scene()
    assert (sparse[53] > 0).any() and (sparse[60] > 0).any() and not (sparse[54:60] > 0).any()
    band = (slice(54, 60), slice(4, W - 4))  # between the two rings around the edge
    lo = create("lidar_only")
    assert lo.uses_image is False and create("guided").uses_image is True
    a = lo.complete(sparse, image)
    np.testing.assert_array_equal(a.depth, lo.complete(sparse, None).depth)  # no image used
    # Defaults: the colour refinement is off (it did not pay on real accumulated GT): guided = lidar_only.
    np.testing.assert_array_equal(create("guided").complete(sparse, image).depth, a.depth)
    col = create("guided", colour_margin=0.25, colour_window_px=31).complete(sparse, image)
    err_lo = np.abs(a.depth[band] - depth[band]).mean()
    err_col = np.abs(col.depth[band] - depth[band]).mean()
    assert err_col < 0.5 * err_lo, (err_col, err_lo)  # the image pays on a clean colour edge
    # The hedged pixels (> 20 % from both surfaces) carry a far lower confidence than the surfaces.
    hedged = np.isfinite(a.depth) & ~np.isclose(a.depth, 5.0, rtol=0.2) & ~np.isclose(a.depth, 20.0, rtol=0.2)
    assert hedged.sum() > W
    assert a.confidence[hedged].max() < 0.5 * a.confidence[30:45].min()


def test_returns_kept_confidence_range_and_nan_handling():
    depth, image = street_scene()
    sparse = np.where(ring_mask(), depth, 0).astype(np.float32)
    sparse[60, 100] = 300.0  # a return beyond the clip range is still kept as measured
    out = create("guided").complete(sparse, image, conditioned=True)  # exact samples: nothing to filter
    assert out.depth.dtype == np.float32 and out.confidence.dtype == np.float32
    assert out.depth.shape == out.confidence.shape == (H, W)
    assert ((out.confidence >= 0) & (out.confidence <= 1)).all()
    assert (out.confidence[np.isnan(out.depth)] == 0).all()
    m = sparse > 0
    np.testing.assert_array_equal(out.depth[m], sparse[m])
    # Returns: only the noise floor, confidence 1 / (1 + d**2 * noise_inv) (> 0.8 within 10 m).
    near_m = m & (sparse < 10)
    assert out.confidence[near_m].min() > 0.8
    assert out.confidence[m].min() == pytest.approx(1 / (1 + 300.0**2 * 0.002), rel=1e-3)


def test_empty_and_degenerate_inputs():
    g = create("guided")
    out = g.complete(np.zeros((H, W), np.float32), np.zeros((H, W, 3), np.uint8))
    assert np.isnan(out.depth).all() and (out.confidence == 0).all()
    one = np.zeros((H, W), np.float32)
    one[60, 100] = 7.0
    out = g.complete(one, None)
    assert out.depth[60, 100] == pytest.approx(7.0)
    assert np.allclose(out.depth[np.isfinite(out.depth)], 7.0)
    nan_in = np.where(ring_mask(), np.nan, 0).astype(np.float32)
    assert np.isnan(g.complete(nan_in).depth).all()  # NaN returns count as missing, no crash
    odd = np.where(ring_mask((50, 33)), 3.0, 0).astype(np.float32)  # odd width, small image
    # (the envelopes run on 16-bit sqrt-inverse-depth keys: relative step 1 / key, 4e-5 at 3 m)
    assert np.nanmax(np.abs(g.complete(odd).depth - 3.0)) < 3.0 * 1e-4


def test_bad_input_and_parameters_give_clear_errors():
    g = create("guided")
    with pytest.raises(InputShapeError, match="H x W"):
        g.complete(np.zeros((4, 5, 6), np.float32))
    with pytest.raises(InputShapeError, match="does not match"):
        g.complete(np.zeros((H, W), np.float32), np.zeros((H, W + 1, 3), np.uint8))
    with pytest.raises(ValueError, match="min_depth_m"):
        GuidedCompleter(min_depth_m=5.0, max_depth_m=1.0)
    with pytest.raises(ValueError, match="hole_kernels_px"):
        GuidedCompleter(hole_kernels_px=(4,))
    with pytest.raises(ValueError, match="top_window_px"):
        GuidedCompleter(top_window_px=-1)
    with pytest.raises(ValueError, match="colour_margin"):
        GuidedCompleter(colour_margin=-0.1)
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
    sixteen = np.zeros_like(sparse)
    rings = scan_to_depth(frame.points[frame.rings % 4 == 0], T, cam, occlusion=None).depth
    same = (rings > 0) & (np.abs(rings - sparse) <= 1e-5 * sparse)
    sixteen[same] = sparse[same]
    return sparse[sl].copy(), sixteen[sl].copy(), np.ascontiguousarray(frame.image[sl]), gt[sl].copy()


def test_synthetic_frame_against_ip_basic_and_confidence_ranks_errors(synthetic_frame):
    from depth_nodes.eval.sparsification import sparsification

    sparse, sixteen, image, gt = synthetic_frame
    m = gt > 0
    err = {n: devkit_errors(n, sparse, image, gt) for n in ("ip_basic", "guided")}
    # (Synthetic scenes are planar boxes: IP-Basic's near-biased copy is hard to beat on the full input
    # here; real accumulated GT is the judge, docs/guided_completion.md.)
    assert rmse(err["guided"]) < 1.05 * rmse(err["ip_basic"])
    assert err["guided"].mean() < 1.1 * err["ip_basic"].mean()
    err16 = {n: devkit_errors(n, sixteen, image, gt) for n in ("ip_basic", "guided")}
    assert err16["guided"].mean() < 0.75 * err16["ip_basic"].mean()  # (0.61x measured)
    out = create("guided").complete(sparse, image)
    e = np.abs(fill_background(out.depth)[m] - gt[m])
    ause = sparsification(e, out.confidence[m], metric="rmse").ause
    rand = sparsification(e, np.random.default_rng(0).random(e.size), metric="rmse").ause
    assert ause < 0.7 * rand, (ause, rand)


@pytest.mark.parametrize("name", ["guided", "lidar_only"])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"top_window_px": 0},
        {"extrapolate": True},
        {"near_reach_px": 1},
        {"colour_margin": 0.25},
        {"hole_kernels_px": ()},
    ],
)
def test_random_inputs_keep_returns_and_invariants(name, params):
    """Odd/small sizes and random densities: no crash, returns kept, confidence in 0..1, 0 where NaN."""
    rng = np.random.default_rng(5)
    g = create(name, **params)
    for h, w in [(2, 2), (3, 5), (5, 3), (9, 2), (17, 33), (48, 64)]:
        for density in (0.0, 0.01, 0.3, 1.0):
            sparse = np.where(rng.random((h, w)) < density, rng.uniform(1, 80, (h, w)), 0).astype(np.float32)
            image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            out = g.complete(sparse, image, conditioned=True)
            assert out.depth.shape == out.confidence.shape == (h, w)
            assert ((out.confidence >= 0) & (out.confidence <= 1)).all()
            assert (out.confidence[np.isnan(out.depth)] == 0).all()
            assert (np.isnan(out.depth) | (out.depth > 0)).all()
            m = sparse > 0
            np.testing.assert_array_equal(out.depth[m], sparse[m])
            # Raw (the default): the filter's see-through returns are dropped and reported, the rest kept.
            raw = g.complete(sparse, image)
            _, hidden = remove_occluded(sparse, g.occlusion)
            kept = m & ~hidden
            np.testing.assert_array_equal(raw.depth[kept], sparse[kept])
            if hidden.any():
                np.testing.assert_array_equal(raw.kept_returns, kept)


def test_depth_keys_round_trip_and_order():
    """The envelopes' 16-bit keys: order-preserving (nearer = larger), 0 = no return, depth error
    within the documented step (relative 1 / key) over the whole 0.5-500 m range."""
    from depth_nodes.completion.guided_fill import DepthKeys, flip_keys, inverse_depth

    keys = DepthKeys(0.5, 500.0)
    depth = np.array([[0.0, 0.5, 1.0, 3.0, 10.0, 40.0, 80.0, 120.0, 300.0, 500.0]], np.float32)
    key = keys.encode(inverse_depth(depth))
    assert key[0, 0] == 0 and (key[0, 1:] > 0).all() and (np.diff(key[0, 1:].astype(int)) < 0).all()
    back = 1.0 / keys.inverse_depth(key)[0, 1:]
    rel = np.abs(back - depth[0, 1:]) / depth[0, 1:]
    assert (rel <= 1.0 / key[0, 1:]).all() and rel[6] < 2e-4  # 80 m: +-1.5 cm
    flipped = flip_keys(key)
    assert flipped[0, 0] == 0 and (np.diff(flipped[0, 1:].astype(int)) > 0).all()
    assert np.array_equal(flip_keys(flipped), key)
    with pytest.raises(ValueError, match="too wide"):
        DepthKeys(1e-3, 1e6)


@pytest.mark.parametrize("grid", [1, 4])
def test_hole_passes_fill_large_holes_with_the_nearer_side(grid):
    """A 40 px hole between a near (left) and a far (right) surface: every hole pixel is filled, with a
    value of one of the two sides, each side grown by the same passes (the boundary near the middle,
    the nearer side winning where both reach in one pass), level >= 1 on the hole only."""
    from depth_nodes.completion.guided_fill import fill_holes

    key = np.zeros((60, 120), np.uint16)
    key[:, :40] = 30000  # near
    key[:, 80:] = 10000  # far
    level = fill_holes(key, (15, 31, 63), grid=grid)
    assert (key > 0).all() and set(np.unique(key)) <= {10000, 30000}
    boundary = np.argmax(key == 10000, axis=1)
    assert (boundary == boundary[0]).all() and 58 <= boundary[0] <= 64, boundary[0]
    assert level is not None and (level[:, 40:80] >= 1).all() and (level[:, :40] == 0).all()


def test_hole_grid_auto_follows_image_size():
    g = create("guided")
    assert (
        g._hole_grid((352, 1216)) == 1 and g._hole_grid((720, 1280)) == 2 and g._hole_grid((1080, 1920)) == 4
    )
    assert create("guided", hole_grid_px=2)._hole_grid((1080, 1920)) == 2
    with pytest.raises(ValueError, match="hole_grid_px"):
        create("guided", hole_grid_px=-1)


def test_confidence_follows_the_documented_formula():
    """At a return the spread is 0, so e = d**2 * noise_inv and confidence = 1 / (1 + e / confidence_scale_m)
    (the docstring's formula: 0.5 at e = confidence_scale_m, not exp(-1))."""
    sparse = np.zeros((40, 60), np.float32)
    sparse[::4, ::3] = 10.0  # a flat wall at 10 m
    comp = create("guided", noise_inv=0.002, confidence_scale_m=0.4, occlusion="off")
    out = comp.complete(sparse, None)
    e = 10.0**2 * 0.002
    np.testing.assert_allclose(out.confidence[sparse > 0], 1.0 / (1.0 + e / 0.4), rtol=1e-4)
