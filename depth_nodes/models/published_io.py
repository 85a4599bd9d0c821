"""Pre/post-processing a real camera needs for ENet / PENet: any image size and K -> the official inputs -> depth.

The networks take ``rgb`` (0..255, not normalised), ``d`` (sparse depth in metres, 0 = none), a ``position`` map
(u, v in [-1, 1], AddCoordsNp style: ``2 * index / (size - 1) - 1``) and ``K``, on an input whose H and W are
multiples of 32. :func:`camera_inputs` fits a camera frame to that:

- ``fit="pad"`` (default; what the runtime does): pad bottom/right (image: replicated border, depth: no returns);
  K is unchanged because the origin stays top-left; every camera pixel gets an estimate.
- ``fit="crop"``: the largest multiple of 32 cut bottom-centre (KITTI 375 x 1242 -> 352 x 1216: 23 rows from the
  top, 13 columns each side); K's principal point moves by the cut (cx - left, cy - top); pixels outside the crop
  get NaN.

``cy_offset_px`` adds to cy afterwards: 11.5 gives the K the released weights were trained with (see
:mod:`depth_nodes.models.published`); 0, the default, the true K. :func:`to_camera` brings a network output back to
the camera's resolution: NaN outside the crop and where the depth is not positive and finite (REP 118).
The in-graph contract of :class:`depth_nodes.models.enet.CameraContract` is the ``fit="pad"`` case with the K of
the config; a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_nodes.runtime.errors import ModelError

STRIDE = 32
KITTI_HW = (352, 1216)


@dataclass(frozen=True)
class Placement:
    """Where the network input sits in the camera image, and its K."""

    camera_hw: tuple[int, int]
    net_hw: tuple[int, int]
    top_px: int  # camera rows above the network input (crop), 0 for pad
    left_px: int
    K_net: np.ndarray  # 3 x 3 intrinsics of the network input (px)


def fit_to_stride(h: int, w: int, stride: int = STRIDE, fit: str = "pad") -> tuple[int, int, int, int]:
    """(top_px, left_px, net_h, net_w) of the network input for an ``h`` x ``w`` camera frame."""
    if fit == "pad":
        return 0, 0, -(-h // stride) * stride, -(-w // stride) * stride
    if fit == "crop":
        nh, nw = h // stride * stride, w // stride * stride
        if nh == 0 or nw == 0:
            raise ModelError(f"a {h}x{w} frame is smaller than the network's multiple of {stride}: use fit='pad'")
        return h - nh, (w - nw) // 2, nh, nw
    raise ModelError(f"fit must be 'pad' or 'crop', got {fit!r}")


def position_map(net_h: int, net_w: int, geometry: str = "image", top_px: int = 0, left_px: int = 0) -> np.ndarray:
    """2 x H x W float32 (u, v). ``image``: normalised over the network input itself; ``kitti_352x1216``: over the
    352 x 1216 frame the official loader assumes, the input sitting at (``top_px``, ``left_px``) in it."""
    if geometry == "image":
        ref_h, ref_w, top_px, left_px = net_h, net_w, 0, 0
    elif geometry == "kitti_352x1216":
        ref_h, ref_w = KITTI_HW
    else:
        raise ModelError(f"geometry must be 'image' or 'kitti_352x1216', got {geometry!r}")
    # the official AddCoordsNp's arithmetic (float32 index / (size - 1), then * 2 - 1), bit for bit
    u = (np.arange(left_px, left_px + net_w).astype(np.float32) / np.float32(ref_w - 1)) * 2 - 1
    v = (np.arange(top_px, top_px + net_h).astype(np.float32) / np.float32(ref_h - 1)) * 2 - 1
    return np.stack([np.broadcast_to(u[None, :], (net_h, net_w)), np.broadcast_to(v[:, None], (net_h, net_w))])


def camera_inputs(
    rgb: np.ndarray, sparse_m: np.ndarray, K: np.ndarray, fit: str = "pad", geometry: str = "image",
    cy_offset_px: float = 0.0, stride: int = STRIDE,
) -> tuple[dict[str, np.ndarray], Placement]:  # fmt: skip
    """The official inputs (``rgb``, ``d``, ``position``, ``K``; batch 1, float32) of one camera frame.

    ``rgb``: H x W x 3 uint8 RGB; ``sparse_m``: H x W metres (0 / NaN = no return); ``K``: 3 x 3 of that image.
    """
    rgb = np.asarray(rgb)
    sparse = np.asarray(sparse_m, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.shape[:2] != sparse.shape:
        raise ModelError(f"need an H x W x 3 image and an H x W depth of the same size, got {rgb.shape}, {sparse.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ModelError(f"K must be a 3 x 3 intrinsics matrix with positive focal lengths, got {K.tolist()}")
    h, w = sparse.shape
    top, left, nh, nw = fit_to_stride(h, w, stride, fit)
    if fit == "crop":
        img = rgb[top : top + nh, left : left + nw, :3].astype(np.float32)
        d = sparse[top : top + nh, left : left + nw]
    else:  # pad bottom / right: the image by its border (more image, not a black bar), the depth with "no return"
        img = np.pad(rgb[..., :3].astype(np.float32), ((0, nh - h), (0, nw - w), (0, 0)), mode="edge")
        d = np.pad(sparse, ((0, nh - h), (0, nw - w)))
    d = np.where(np.isfinite(d) & (d > 0), d, 0.0).astype(np.float32)
    K_net = K.copy()
    K_net[0, 2] -= left
    K_net[1, 2] -= top
    K_net[1, 2] += cy_offset_px
    feed = {
        "rgb": np.ascontiguousarray(img.transpose(2, 0, 1)[None]),
        "d": d[None, None],
        "position": position_map(nh, nw, geometry)[None].copy(),
        "K": K_net.astype(np.float32)[None],
    }
    return feed, Placement((h, w), (nh, nw), top, left, K_net)


def geometry_hw(placement: Placement, geometry: str) -> tuple[float, float]:
    """The ``hw`` argument of ``official()``: the network input's size, or the official hard-coded 352 x 1216."""
    return (float(placement.net_hw[0]), float(placement.net_hw[1])) if geometry == "image" else KITTI_HW


def to_camera(depth: np.ndarray, placement: Placement) -> np.ndarray:
    """H x W float32 depth (m) at the camera's resolution; NaN where there is no estimate."""
    d = np.asarray(depth, dtype=np.float32).reshape(placement.net_hw)
    h, w = placement.camera_hw
    out = np.full((h, w), np.nan, np.float32)
    t, le = placement.top_px, placement.left_px
    vh, vw = min(h - t, d.shape[0]), min(w - le, d.shape[1])
    out[t : t + vh, le : le + vw] = d[:vh, :vw]
    out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


def predict(model, rgb, sparse_m, K, fit: str = "pad", cy_offset_px: float = 0.0) -> np.ndarray:
    """Depth (m, NaN = none) at the camera's resolution from a torch ENet / PENet (``models.load``)."""
    import torch

    geometry = model.geometry_mode
    feed, place = camera_inputs(rgb, sparse_m, K, fit, geometry, cy_offset_px)
    with torch.inference_mode():
        out = model.official(*(torch.from_numpy(feed[n]) for n in ("rgb", "d", "position", "K")),
                             hw=geometry_hw(place, geometry))  # fmt: skip
    depth = out[-1] if isinstance(out, tuple) else out
    return to_camera(depth.numpy(), place)
