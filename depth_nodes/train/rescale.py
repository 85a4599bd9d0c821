"""Sensor augmentation: a training crop seen through another camera (focal length) or another LiDAR (azimuth
resolution).

A network trained on one camera learns that camera's spacing of LiDAR returns in pixels: KITTI's HDL-64E
rings are ~4 px apart at 1216 x 352, PandaSet's Pandar64 rings ~10 px apart at 1920 x 1080. Rescaling a crop
by ``s`` (the window ``h/s x w/s`` of the frame resized to ``h x w``) shows the network the same scene through
a camera with ``s`` times the focal length:

- the image is resized (``cv2.INTER_AREA`` down, ``INTER_LINEAR`` up);
- LiDAR returns and ground truth are *re-projected*, not interpolated: each return moves to the pixel its
  scaled coordinates fall in, and where several land in one pixel (``s < 1``) the nearest wins, as the
  z-buffer of a real projection into a lower-resolution camera does. Upscaling (``s > 1``) spreads the
  returns ``s`` times further apart, as a longer focal length does; supervision gets sparser the same way.

Azimuth resolution: KITTI's HDL-64E puts a return every 1-2 px along a ring at 1216 px width, PandaSet's
Pandar64 one every ~7 px at 1920 px (0.2 deg at 10 Hz and a 2.7x longer focal length). :func:`decimate_columns`
keeps the returns of every k-th image column, a LiDAR with k times coarser azimuth steps seen by the same camera.

A hand-written scatter because resizing a sparse depth map with OpenCV interpolates between returns and
holes (a 0 is not a depth), and ``INTER_NEAREST`` drops returns when downscaling.
"""

from __future__ import annotations

import cv2
import numpy as np


def scatter_nearest(
    values: np.ndarray,
    scale_yx: tuple[float, float],
    out_hw: tuple[int, int],
    payload: np.ndarray | None = None,
    fill: float = 0,
) -> np.ndarray:
    """Re-project the non-zero pixels of ``values`` (depth m) into an ``out_hw`` grid whose pixel (i, j) covers
    source rows ``i / sy .. (i + 1) / sy`` (and columns likewise); the nearest depth wins a shared pixel.

    ``payload`` (same shape, e.g. ring ids): scattered instead of the depths, in the depths' order, so each
    output pixel carries the payload of the return that won it; ``fill`` elsewhere.
    """
    src = values if payload is None else payload
    out = np.full(out_hw, fill, src.dtype)
    ys, xs = np.nonzero(values > 0)
    if ys.size == 0:
        return out
    oy = np.minimum(((ys + 0.5) * scale_yx[0]).astype(np.int64), out_hw[0] - 1)
    ox = np.minimum(((xs + 0.5) * scale_yx[1]).astype(np.int64), out_hw[1] - 1)
    # far first: of repeated indices the last (nearest) write wins
    order = np.argsort(-values[ys, xs], kind="stable")
    out[oy[order], ox[order]] = src[ys[order], xs[order]]
    return out


def rescale_sample(
    image: np.ndarray,
    sparse: np.ndarray,
    target: np.ndarray | None,
    rings: np.ndarray | None,
    out_hw: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Resize a window (image H x W x 3, sparse / target depth m, rings = ring id or -1) to ``out_hw``.

    Returns carry their ring ids along (the ring of the return that won its pixel); ``target`` (dense or
    semi-dense GT) is re-projected the same way as the returns.
    """
    h, w = out_hw
    H, W = sparse.shape
    sy, sx = h / H, w / W
    interp = cv2.INTER_AREA if sy * sx < 1.0 else cv2.INTER_LINEAR
    image_out = cv2.resize(image, (w, h), interpolation=interp)
    sparse_out = scatter_nearest(sparse, (sy, sx), out_hw)
    target_out = None if target is None else scatter_nearest(target, (sy, sx), out_hw)
    rings_out = None if rings is None else scatter_nearest(sparse, (sy, sx), out_hw, payload=rings, fill=-1)
    return image_out, sparse_out, target_out, rings_out


def draw_scale(
    rng: np.random.Generator,
    frame_hw: tuple[int, int],
    crop_hw: tuple[int, int],
    scale_range: tuple[float, float],
) -> float:
    """A log-uniform scale in ``scale_range``, raised where needed so the window ``crop / s`` fits the frame."""
    lo, hi = scale_range
    s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    s_min = max(crop_hw[0] / frame_hw[0], crop_hw[1] / frame_hw[1])
    return max(s, s_min)


def decimate_columns(
    sparse: np.ndarray, rng: np.random.Generator, steps: tuple[int, ...] = (2, 3, 4, 6)
) -> np.ndarray:
    """Keep the returns in every k-th column (k drawn from ``steps``, random phase): coarser azimuth steps."""
    k = int(rng.choice(steps))
    keep = (np.arange(sparse.shape[1]) + int(rng.integers(k))) % k == 0
    return np.where(keep[None, :], sparse, np.float32(0))
