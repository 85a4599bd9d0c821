"""LiDAR -> sparse depth image (z-buffer + parallax occlusion filter) and depth image -> points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.transforms import transform_points
from depth_nodes.errors import EmptyInputError, InputShapeError, NonFiniteInputError, OcclusionFilterError


@dataclass(frozen=True)
class OcclusionFilter:
    """Removes LiDAR returns that the camera cannot see (camera/LiDAR parallax).

    A return is *hidden* when nearer returns enclose it in the image: nearer ones both above and below it
    (within ``vertical_px`` rows, searched in a column band of +-``band_px``) or both left and right of it
    (within ``horizontal_px`` columns, searched in its row and ``side_band_up_px`` rows above it), "nearer"
    meaning ``z > z_near * (1 + relative_margin) + absolute_margin_m``. A foreground surface sampled by
    LiDAR rings encloses the background returns that leak between its samples, while a visible slanted
    surface (the road) has nearer returns on one side only, so it is kept; the side search looks upwards
    only, because on the road the rows below are nearer. Angular LiDAR spacing maps to a fixed pixel
    spacing, so the windows are in pixels: ``vertical_px`` should exceed the ring spacing in the image
    (about 5 px for a 64-beam LiDAR on KITTI; scale it up for 32/16-beam sensors).
    Defaults measured on 6 synthetic KITTI-like frames (seed 5): 62 % of hidden returns removed, 1.3 % of
    visible ones (those in the ambiguous band along silhouettes).

    This is the project's one input conditioning (``docs/guided_completion.md``, "Input conditioning"):
    the node applies it while projecting (:func:`scan_to_depth`), make-gt too, and
    :meth:`depth_nodes.completion.Completer.complete` applies it to raw sparse depth (KITTI DC's
    ``velodyne_raw``) unless the caller declares the input conditioned. The defaults suit spinning
    LiDARs of 64 beams at KITTI's resolution; for other sensors keep ``vertical_px`` just above the ring
    spacing in the image (about 1.5x it: ~10 px for 32 beams, ~20 px for 16 beams at KITTI's resolution,
    scaled with the focal length) and ``horizontal_px`` above the column spacing of the returns.
    """

    vertical_px: int = 7
    horizontal_px: int = 4
    band_px: int = 2
    side_band_up_px: int = 2
    relative_margin: float = 0.10
    absolute_margin_m: float = 0.5

    def __post_init__(self) -> None:
        for name in ("vertical_px", "horizontal_px", "band_px", "side_band_up_px"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise OcclusionFilterError(f"occlusion filter: {name} must be an integer (px), got {value!r}")
        for name in ("relative_margin", "absolute_margin_m"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not np.isfinite(value):
                raise OcclusionFilterError(f"occlusion filter: {name} must be a finite number, got {value!r}")
        if self.vertical_px < 1 or self.horizontal_px < 1:
            raise OcclusionFilterError(
                f"occlusion filter: vertical_px and horizontal_px must be >= 1 px, got {self.vertical_px}, "
                f"{self.horizontal_px}"
            )
        if self.band_px < 0 or self.side_band_up_px < 0:
            raise OcclusionFilterError(
                f"occlusion filter: band_px and side_band_up_px must be >= 0 px, got {self.band_px}, "
                f"{self.side_band_up_px}"
            )
        if self.relative_margin < 0 or self.absolute_margin_m < 0:
            raise OcclusionFilterError(
                f"occlusion filter: relative_margin and absolute_margin_m must be >= 0, got "
                f"{self.relative_margin}, {self.absolute_margin_m}"
            )


@dataclass
class SparseDepth:
    """A sparse depth image: ``depth`` H x W float32 metres (0 = no return) and bookkeeping counts."""

    depth: np.ndarray
    n_points: int
    n_in_view: int
    n_occluded: int
    n_nonfinite: int = 0

    @property
    def valid(self) -> np.ndarray:
        return self.depth > 0


def _validate_points(points: np.ndarray, on_nonfinite: str) -> tuple[np.ndarray, int]:
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise InputShapeError(f"LiDAR points must be an N x 3 (or N x >=3) array, got shape {pts.shape}")
    if pts.shape[0] == 0:
        raise EmptyInputError("LiDAR scan is empty (0 points)")
    xyz = pts[:, :3]
    if np.isfinite(xyz.sum()):  # one fast reduction; only dirty scans pay for the per-point check
        return xyz, 0
    finite = np.isfinite(xyz).all(axis=1)
    n_bad = int(xyz.shape[0] - np.count_nonzero(finite))
    if n_bad:
        if on_nonfinite == "raise":
            raise NonFiniteInputError(
                f"LiDAR scan has {n_bad} of {xyz.shape[0]} points with NaN/inf coordinates"
            )
        xyz = xyz[finite]
        if xyz.shape[0] == 0:
            raise EmptyInputError(f"LiDAR scan has no finite points (all {n_bad} are NaN/inf)")
    return xyz, n_bad


def project_points(
    points_cam: np.ndarray, camera: CameraModel, min_depth_m: float = 0.1, max_depth_m: float = np.inf
) -> tuple[np.ndarray, np.ndarray]:
    """Project optical-frame points; returns ``(pixel_index, z)`` of those landing in the image.

    ``pixel_index`` is the flat index ``v * width + u`` of the pixel containing the point (nearest pixel
    centre), ``z`` the depth in metres (float32).
    """
    pts = np.asarray(points_cam)
    z = pts[:, 2]
    front = np.flatnonzero((z >= min_depth_m) & (z <= max_depth_m))
    if front.size < z.size:
        pts = pts.take(front, axis=0)
    u, v, z = camera.project(pts)
    ui = np.floor(u + 0.5)
    vi = np.floor(v + 0.5)
    ok = np.flatnonzero((ui >= 0) & (ui < camera.width) & (vi >= 0) & (vi < camera.height))
    idx = vi.take(ok).astype(np.int32) * np.int32(camera.width) + ui.take(ok).astype(np.int32)
    return idx, z.take(ok)


def zbuffer(pixel_index: np.ndarray, z: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest return per pixel; H x W float32 with 0 where no point landed."""
    buf = np.full(shape[0] * shape[1], np.inf, dtype=np.float32)
    np.minimum.at(buf, pixel_index, z.astype(np.float32, copy=False))
    np.putmask(buf, buf == np.inf, np.float32(0.0))
    return buf.reshape(shape)


def _shift(img: np.ndarray, axis: int, k: int) -> np.ndarray:
    """``out[p] = img[p + k * e_axis]``, inf where that falls outside the image."""
    out = np.empty_like(img)
    n = img.shape[axis]
    k = max(-n, min(n, k))
    src, dst, pad = [slice(None)] * 2, [slice(None)] * 2, [slice(None)] * 2
    src[axis] = slice(max(k, 0), n + min(k, 0))
    dst[axis] = slice(max(-k, 0), n - max(k, 0))
    pad[axis] = slice(n - k, n) if k > 0 else slice(0, -k)
    out[tuple(dst)] = img[tuple(src)]
    out[tuple(pad)] = np.inf
    return out


def _one_sided_min(img: np.ndarray, axis: int, reach: int, sign: int) -> np.ndarray:
    """Min over ``img[p + sign * k * e_axis]`` for k = 1..reach, by doubling (O(log reach) passes).

    Hand-written: OpenCV's erode only takes windows that contain the anchor pixel, and these exclude it.
    """
    acc = _shift(img, axis, sign)  # covers k = 1
    span = 1
    while span < reach:
        step = min(span, reach - span)
        np.minimum(acc, _shift(acc, axis, sign * step), out=acc)
        span += step
    return acc


def remove_occluded(
    depth: np.ndarray, flt: OcclusionFilter = OcclusionFilter()
) -> tuple[np.ndarray, np.ndarray]:
    """Apply :class:`OcclusionFilter` to a sparse depth image (0 = empty).

    Returns ``(filtered_depth, hidden_mask)``. For speed the occluder search runs on a 2x2 min-pooled
    image (windows rounded up to whole blocks, the point's own block excluded) and the test is evaluated
    only at the returns: ~4x less memory traffic than full-resolution sweeps, same decisions except
    for occluders inside a point's own 2x2 block.
    """
    flat = np.flatnonzero(depth.ravel() > 0)
    ys, xs = np.divmod(flat, depth.shape[1])
    hidden = np.zeros(depth.shape, dtype=bool)
    if ys.size == 0:
        return depth.copy(), hidden
    r0 = (int(ys.min()) // 2) * 2
    h = -(-(int(ys.max()) + 1 - r0) // 2) * 2
    w = depth.shape[1] + depth.shape[1] % 2
    d = depth[ys, xs]
    sub = np.full((h, w), np.inf, dtype=np.float32)
    sub[ys - r0, xs] = d
    pooled = np.minimum(
        np.minimum(sub[0::2, 0::2], sub[0::2, 1::2]), np.minimum(sub[1::2, 0::2], sub[1::2, 1::2])
    )
    vb, hb = -(-flt.vertical_px // 2), -(-flt.horizontal_px // 2)
    cband = pooled
    for k in range(1, flt.band_px // 2 + 1):
        cband = np.minimum(cband, np.minimum(_shift(pooled, 1, k), _shift(pooled, 1, -k)))
    rband = pooled
    for k in range(1, flt.side_band_up_px // 2 + 1):
        rband = np.minimum(rband, _shift(pooled, 0, -k))
    by, bx = (ys - r0) // 2, xs // 2
    thr = (d - np.float32(flt.absolute_margin_m)) / np.float32(1.0 + flt.relative_margin)

    def occluded(img: np.ndarray, axis: int, reach: int, sign: int) -> np.ndarray:
        return _one_sided_min(img, axis, reach, sign)[by, bx] < thr

    hid = (occluded(cband, 0, vb, -1) & occluded(cband, 0, vb, 1)) | (
        occluded(rband, 1, hb, -1) & occluded(rband, 1, hb, 1)
    )
    hidden.ravel()[flat[hid]] = True
    out = depth.copy()
    out.ravel()[flat[hid]] = 0.0
    return out, hidden


def scan_to_depth(
    points: np.ndarray,
    T_cam_lidar: np.ndarray,
    camera: CameraModel,
    *,
    occlusion: OcclusionFilter | None = OcclusionFilter(),
    min_depth_m: float = 0.1,
    max_depth_m: float = np.inf,
    on_nonfinite: str = "raise",
) -> SparseDepth:
    """Project a LiDAR scan (N x >=3, LiDAR frame) into ``camera`` as a sparse depth image.

    Keeps the nearest return per pixel and, unless ``occlusion`` is None, removes returns hidden from the
    camera. ``on_nonfinite`` is ``"raise"`` (clear error) or ``"drop"`` (organized clouds with NaN holes).
    """
    if on_nonfinite not in ("raise", "drop"):
        raise ValueError("on_nonfinite must be 'raise' or 'drop'")
    xyz, n_bad = _validate_points(points, on_nonfinite)
    T = np.asarray(T_cam_lidar, dtype=np.float64)
    if camera.T_proj_frame is not None:  # CameraInfo R / P's Tx, Ty: into the frame K projects from
        T = camera.T_proj_frame @ T
    T = T.astype(np.float32)
    # Depth first (one mat-vec), so that only points in front of the camera are fully transformed.
    z = xyz.astype(np.float32, copy=False) @ T[2, :3] + T[2, 3]
    front = np.flatnonzero((z >= min_depth_m) & (z <= max_depth_m))
    pts_cam = transform_points(T, xyz.take(front, axis=0))
    idx, z = project_points(pts_cam, camera, min_depth_m, max_depth_m)
    depth = zbuffer(idx, z, camera.shape)
    n_occ = 0
    if occlusion is not None:
        depth, hidden = remove_occluded(depth, occlusion)
        n_occ = int(np.count_nonzero(hidden))
    return SparseDepth(
        depth, n_points=int(xyz.shape[0]), n_in_view=int(z.size), n_occluded=n_occ, n_nonfinite=n_bad
    )


def depth_to_points(
    depth: np.ndarray,
    camera: CameraModel,
    rgb: np.ndarray | None = None,
    *,
    stride: int = 1,
    organized: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Back-project a depth image (metres; NaN or <= 0 = none) to optical-frame points.

    ``organized=True`` returns H' x W' x 3 with NaN for missing depth; otherwise N x 3 of valid pixels
    only. Points are in the camera's TF frame (``camera.T_proj_frame`` undone). ``stride`` decimates rows and columns. Colours (uint8 H x W x 3) follow the same layout.
    """
    depth = np.asarray(depth)
    if depth.shape != camera.shape:
        raise InputShapeError(f"depth shape {depth.shape} does not match the camera's {camera.shape}")
    if stride < 1:
        raise ValueError("stride must be >= 1")
    if rgb is not None and rgb.shape[:2] != depth.shape:
        raise InputShapeError(f"rgb shape {rgb.shape[:2]} does not match depth shape {depth.shape}")
    rx, ry = _decimated_rays(camera, stride)
    d = depth[::stride, ::stride].astype(np.float32, copy=False)
    colors = rgb[::stride, ::stride] if rgb is not None else None
    if organized:
        dz = np.where((d > 0) & (d < np.inf), d, np.float32(np.nan))  # NaN compares False
        xyz = np.stack([rx.reshape(d.shape) * dz, ry.reshape(d.shape) * dz, dz], axis=-1)
        return _to_camera_frame(xyz, camera), colors
    # Flat indices of the valid pixels, then 1-D gathers from contiguous arrays: 2.2x faster than boolean
    # masks on the strided views (1.7 vs 3.7 ms at 1216x352, stride 2, measured on the 2-core dev VM).
    flat = d.ravel()  # a copy when strided, contiguous either way
    ok = np.flatnonzero((flat > 0) & (flat < np.inf))  # NaN compares False
    dz = flat.take(ok)
    xyz = np.empty((ok.size, 3), np.float32)
    np.multiply(rx.take(ok), dz, out=xyz[:, 0])
    np.multiply(ry.take(ok), dz, out=xyz[:, 1])
    xyz[:, 2] = dz
    col = colors.reshape(-1, colors.shape[-1]).take(ok, axis=0) if colors is not None else None
    return _to_camera_frame(xyz, camera), col


#: Contiguous decimated ray components per (camera rays array, stride): the per-frame cloud reads them
#: instead of strided views of :meth:`CameraModel.pixel_rays` (bounded; a new camera model evicts all).
_RAYS_BY_STRIDE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _decimated_rays(camera: CameraModel, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of ``camera.pixel_rays()[::stride, ::stride]`` as flat contiguous float32 arrays (cached)."""
    rays = camera.pixel_rays()
    key = (id(rays), stride)
    hit = _RAYS_BY_STRIDE.get(key)
    if hit is None or hit[0] is not rays:  # the id of a freed array may be reused: check identity
        if len(_RAYS_BY_STRIDE) >= 8:
            _RAYS_BY_STRIDE.clear()
        sub = rays[::stride, ::stride]
        hit = (rays, np.ascontiguousarray(sub[..., 0]).ravel(), np.ascontiguousarray(sub[..., 1]).ravel())
        _RAYS_BY_STRIDE[key] = hit
    return hit[1], hit[2]


def _to_camera_frame(xyz: np.ndarray, camera: CameraModel) -> np.ndarray:
    """Points of the projection frame back in the camera's TF frame (undoes ``camera.T_proj_frame``)."""
    if camera.T_proj_frame is None:
        return xyz
    T = np.linalg.inv(camera.T_proj_frame).astype(np.float32)
    shape = xyz.shape
    return transform_points(T, xyz.reshape(-1, 3)).reshape(shape)
