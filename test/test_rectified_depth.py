"""Depth that depth_image_proc can use (ROS-free, the node's own path: ``msgs.camera_info.info_geometry`` ->
``Rectifier`` -> ``FramePipeline``): a strongly distorted raw camera (plumb_bob, rational_polynomial,
equidistant) is rectified onto P, and the published depth, back-projected exactly as ``depth_image_proc``
does (``image_geometry``: P only, D ignored, ``X = (u - cx - Tx) / fx * z``), lands on the LiDAR points.
The raw-geometry depth (``depth_geometry: raw``) does not, which is why it is only published on request."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from depth_nodes import pipeline as pl
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.core.rectification import Rectifier
from depth_nodes.errors import ConversionError
from depth_nodes.msgs.camera_info import info_geometry, published_info_fields

W, H = 480, 360
K_RAW = np.array([[300.0, 0.0, 242.0], [0.0, 302.0, 178.0], [0.0, 0.0, 1.0]])
R_RECT = cv2.Rodrigues(np.array([0.01, -0.015, 0.005]))[0]
P_RECT = np.array([[260.0, 0.0, 238.0, 0.0], [0.0, 260.0, 181.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
WALL_NORMAL, WALL_C_M = np.array([-0.45, -0.12, 1.0]), 8.0
#: Strong lenses: a corner pixel sits 116-407 px from where the pinhole K puts it (equidistant .. plumb_bob).
LENSES = {
    "plumb_bob": [-0.38, 0.16, 0.001, -0.0008, -0.03],
    "rational_polynomial": [0.9, 0.3, 0.0005, -0.0004, 0.01, 1.3, 0.6, 0.05],
    "equidistant": [0.08, -0.02, 0.01, -0.003],
}


def info(model: str, d=None, k=K_RAW, r=R_RECT, p=P_RECT, stamp=None):
    return SimpleNamespace(
        header=SimpleNamespace(stamp=stamp, frame_id="cam"), width=W, height=H, distortion_model=model,
        d=list(LENSES[model] if d is None else d), k=np.ravel(k).tolist(), r=np.ravel(r).tolist(),
        p=np.ravel(p).tolist(), binning_x=0, binning_y=0,
        roi=SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0, do_rectify=False),
    )  # fmt: skip


def wall_points(n: int = 40000, seed: int = 0) -> np.ndarray:
    """LiDAR returns (camera TF frame) on a slanted wall 4-14 m away filling the view: one surface, so every
    return is visible (no occlusion to argue about) and depth varies across the image."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.2, 1.2, n)
    y = rng.uniform(-0.9, 0.9, n)
    # The plane n . X = c: along the ray (x, y, 1) the depth is c / (n . (x, y, 1)).
    z = WALL_C_M / (WALL_NORMAL[0] * x + WALL_NORMAL[1] * y + WALL_NORMAL[2])
    keep = (z > 3.0) & (z < 15.0)
    return np.stack([x * z, y * z, z], axis=1)[keep].astype(np.float32)


def texture(h: int = H, w: int = W) -> np.ndarray:
    """A smooth colour pattern (linear interpolation errs < 1 grey level on it)."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(u / 23.0) * np.cos(v / 31.0)
    g = 60 + 0.35 * u
    b = 40 + 0.5 * v
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def raw_image_of(rectified_rgb: np.ndarray, model: str, d) -> np.ndarray:
    """The raw (distorted) image whose rectification is ``rectified_rgb``: each raw pixel undistorted with
    OpenCV (R, P) and looked up in the rectified image."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    pix = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    if model == "equidistant":
        rect = cv2.fisheye.undistortPoints(pix, K_RAW, np.asarray(d, float), R=R_RECT, P=P_RECT[:, :3])
    else:
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
        rect = cv2.undistortPoints(pix, K_RAW, np.asarray(d, float), None, R_RECT, P_RECT[:, :3], crit)
    mx = rect[:, 0, 0].reshape(H, W).astype(np.float32)
    my = rect[:, 0, 1].reshape(H, W).astype(np.float32)
    return cv2.remap(rectified_rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def image_geometry_backproject(depth: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels N x 2, points N x 3)`` of the finite depth pixels, as depth_image_proc's convertDepth /
    image_geometry's projectPixelTo3dRay do: P only (fx, fy, cx, cy, Tx, Ty), D never read."""
    v, u = np.nonzero(np.isfinite(depth))
    z = depth[v, u].astype(np.float64)
    x = (u - p[0, 2] - p[0, 3]) / p[0, 0] * z
    y = (v - p[1, 2] - p[1, 3]) / p[1, 1] * z
    return np.stack([u, v], axis=1), np.stack([x, y, z], axis=1)


def node_frame(msg, points: np.ndarray, raw_rgb: np.ndarray, depth_geometry: str = "rectified"):
    """One frame as the node runs it: geometry from the CameraInfo, input image rectified, LiDAR projected with
    the output camera, guided completion, LiDAR returns kept at their pixels."""
    g = info_geometry(msg, "auto", "/cam/image_raw", None, depth_geometry)
    rgb = raw_rgb if g.rectifier is None else g.rectifier.rectify(raw_rgb)
    selector = pl.EstimatorSelector("guided", "lidar_only", "")
    pipe = pl.FramePipeline(selector, pl.ModeMachine(1), pl.LidarCriteria(min_lidar_points=10))
    scan = pl.Scan(points, 0, "cam")
    result = pipe.process(g.camera, 0, "cam", rgb, scan, np.eye(4))
    assert result.published, result.reason
    return g, rgb, result


@pytest.mark.parametrize("model", sorted(LENSES))
def test_published_depth_back_projected_with_p_lands_on_the_lidar_points(model) -> None:
    msg = info(model)
    points = wall_points()
    g, _, result = node_frame(msg, points, raw_image_of(texture(), model, LENSES[model]))
    assert (g.kind, g.output) == ("raw", "rectified") and g.rectifier is not None
    fields = published_info_fields(msg, g.output)  # what depth/camera_info carries
    assert fields["d"] == [0.0] * 5 and fields["r"] == np.eye(3).ravel().tolist()
    P = np.reshape(fields["p"], (3, 4))
    np.testing.assert_array_equal(np.reshape(fields["k"], (3, 3)), P[:, :3])
    # Every LiDAR return, projected as image_geometry's project3dToPixel does, finds the published depth
    # of its own range at that pixel; back-projecting that pixel lands within 1 px / 1 % of the return.
    X, Y, Z = (
        points[:, 0].astype(np.float64),
        points[:, 1].astype(np.float64),
        points[:, 2].astype(np.float64),
    )
    u = (P[0, 0] * X + P[0, 3]) / Z + P[0, 2]
    v = (P[1, 1] * Y + P[1, 3]) / Z + P[1, 2]
    ui, vi = np.rint(u).astype(int), np.rint(v).astype(int)
    inside = (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
    assert inside.sum() > 10000
    d = result.depth[vi[inside], ui[inside]].astype(np.float64)
    _, back = image_geometry_backproject(result.depth, P)
    assert np.isfinite(d).all()
    rel = np.abs(d - Z[inside]) / Z[inside]
    # The wall's depth changes across a pixel by up to ~0.3 %: the pixel centre is not the return's spot.
    assert np.quantile(rel, 0.99) < 0.01 and np.median(rel) < 0.002, (np.quantile(rel, 0.99), np.median(rel))
    xb = (ui[inside] - P[0, 2] - P[0, 3]) / P[0, 0] * d
    yb = (vi[inside] - P[1, 2] - P[1, 3]) / P[1, 1] * d
    reproj_px = np.hypot(
        P[0, 0] * (xb / d - X[inside] / Z[inside]), P[1, 1] * (yb / d - Y[inside] / Z[inside])
    )
    assert reproj_px.max() <= np.sqrt(0.5) + 1e-6  # within the pixel the return falls in: < 1 px
    miss_3d = np.linalg.norm(np.stack([xb, yb, d], 1) - points[inside], axis=1) / Z[inside]
    assert np.quantile(miss_3d, 0.99) < 0.01, np.quantile(miss_3d, 0.99)
    # The whole published image back-projects onto the wall: dense depth, not only the returns.
    plane_rel = np.abs(back @ WALL_NORMAL - WALL_C_M) / WALL_C_M
    assert len(back) > 0.6 * W * H and np.quantile(plane_rel, 0.95) < 0.01, np.quantile(plane_rel, 0.95)


@pytest.mark.parametrize("model", sorted(LENSES))
def test_raw_geometry_depth_is_wrong_for_depth_image_proc(model) -> None:
    """The pre-fix behaviour (and ``depth_geometry: raw``): depth where K + D put the returns, described by the
    raw CameraInfo; depth_image_proc reads only P from it, so its cloud misses the LiDAR points."""
    msg = info(model)
    points = wall_points()
    g, _, result = node_frame(msg, points, raw_image_of(texture(), model, LENSES[model]), "raw")
    assert (g.kind, g.output, g.rectifier) == ("raw", "raw", None)
    fields = published_info_fields(msg, g.output)
    np.testing.assert_allclose(fields["d"][: len(LENSES[model])], LENSES[model])
    P = np.reshape(fields["p"], (3, 4))
    _, back = image_geometry_backproject(result.depth, P)
    plane_rel = np.abs(back @ WALL_NORMAL - WALL_C_M) / WALL_C_M
    assert np.mean(plane_rel > 0.01) > 0.5, np.mean(plane_rel > 0.01)


@pytest.mark.parametrize("model", sorted(LENSES))
def test_rectified_image_matches_image_geometry_maps(model) -> None:
    """The rectified RGB (which colours the cloud and guides completion) is the image OpenCV's own
    undistortion describes: a raw image built with ``undistortPoints`` comes back to the pattern."""
    pattern = texture()
    msg = info(model)
    g = info_geometry(msg, "raw", "", None, "rectified")
    rectified = g.rectifier.rectify(raw_image_of(pattern, model, LENSES[model]))
    inner = np.zeros((H, W), bool)
    inner[40:-40, 40:-40] = True
    err = np.abs(rectified.astype(int) - pattern.astype(int))[inner]
    assert np.mean(err) < 1.5 and np.quantile(err, 0.99) <= 6, (np.mean(err), np.quantile(err, 0.99))
    # And the maps are image_geometry's: cv2.initUndistortRectifyMap(K, D, R, P) (fisheye for equidistant).
    if model != "equidistant":
        m1, m2 = cv2.initUndistortRectifyMap(K_RAW, np.array(LENSES[model]), R_RECT, P_RECT[:, :3], (W, H),
                                             cv2.CV_16SC2)  # fmt: skip
        np.testing.assert_array_equal(g.rectifier.map1, m1)


def test_geometry_choices() -> None:
    # A rectified input (topic or D = 0) is used as is: no rectifier, published in rectified geometry.
    g = info_geometry(info("plumb_bob"), "auto", "/cam/image_rect_color")
    assert (g.kind, g.output, g.rectifier) == ("rectified", "rectified", None)
    g = info_geometry(info("plumb_bob", d=[0.0] * 5), "auto", "/cam/image_raw")
    assert (g.kind, g.output, g.rectifier) == ("rectified", "rectified", None)
    # A raw undistorted camera whose raw image is already the rectified one: nothing to resample.
    P0 = np.hstack([K_RAW, np.zeros((3, 1))])
    g = info_geometry(info("plumb_bob", d=[0.0] * 5, r=np.eye(3), p=P0), "raw", "")
    assert (g.kind, g.output, g.rectifier) == ("raw", "rectified", None)
    # ... but a rotation R alone (a stereo camera without distortion) needs resampling.
    g = info_geometry(info("plumb_bob", d=[0.0] * 5, p=P0), "raw", "")
    assert isinstance(g.rectifier, Rectifier)
    np.testing.assert_allclose(g.camera.K, K_RAW)
    with pytest.raises(ConversionError, match="depth_geometry"):
        info_geometry(info("plumb_bob"), "raw", "", None, "distorted")


def test_stereo_right_camera_keeps_the_baseline() -> None:
    """P's Tx (right camera of a stereo pair): the depth is rectified onto P and the cloud stays in the
    CameraInfo's frame; image_geometry back-projection with Tx lands on the points."""
    P = P_RECT.copy()
    P[0, 3] = -0.12 * P[0, 0]  # a 12 cm baseline
    msg = info("plumb_bob", p=P)
    points = wall_points()
    g, _, result = node_frame(msg, points, raw_image_of(texture(), "plumb_bob", LENSES["plumb_bob"]))
    sparse = scan_to_depth(points, np.eye(4), g.camera, occlusion=None).depth
    hit = sparse > 0
    # The returns' pixels as image_geometry's project3dToPixel puts them (Tx included).
    X, Y, Z = (points[:, i].astype(np.float64) for i in range(3))
    ui = np.rint((P[0, 0] * X + P[0, 3]) / Z + P[0, 2]).astype(int)
    vi = np.rint((P[1, 1] * Y + P[1, 3]) / Z + P[1, 2]).astype(int)
    ok = (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
    expected = np.zeros((H, W), bool)
    expected[vi[ok], ui[ok]] = True
    assert np.mean(expected[hit]) > 0.999 and hit.sum() > 10000
    assert np.nanmax(np.abs(result.depth[hit] - sparse[hit])) < 1e-4
