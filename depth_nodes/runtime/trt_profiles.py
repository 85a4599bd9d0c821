"""Optimization profiles that fit a camera: min/opt/max ranges around each configured resolution.

A configured resolution is a camera size: it is padded up to the model stride (KITTI's 375x1242 and the docs'
376x1248 both become 384x1248), never refused for not being a multiple. For a dynamic-H/W ONNX each resolution
gets a profile from ``MIN_SCALE`` to ``MAX_SCALE`` times its size (rounded to the stride) with the resolution
as ``opt`` (the shape TensorRT tunes for), so the default 352x1216 profile (160x608 .. 448x1536) already holds
a KITTI raw camera's 384x1248. A size outside every profile is a :class:`ProfileMismatchError` carrying the
size; the guarded estimator then rebuilds the engine for it in the background while ONNX Runtime serves frames.
A fixed-shape ONNX gets its one exact profile.
"""

from __future__ import annotations

import logging

from depth_nodes.runtime.onnx_io import OnnxInfo
from depth_nodes.runtime.trt_build import Profile
from depth_nodes.runtime.trt_errors import ProfileMismatchError

log = logging.getLogger(__name__)
MIN_SCALE = 0.5
MAX_SCALE = 1.25


def round_up(v: int, stride: int) -> int:
    return -(-int(v) // stride) * stride


def padded(resolutions: list[tuple[int, int]], stride: int) -> list[tuple[int, int]]:
    """Resolutions padded up to the stride, duplicates dropped, order kept."""
    s = max(1, int(stride))
    return list(dict.fromkeys((round_up(h, s), round_up(w, s)) for h, w in resolutions))


def profiles_for(
    info: OnnxInfo, resolutions: list[tuple[int, int]], span: tuple[float, float] = (MIN_SCALE, MAX_SCALE)
) -> list[Profile]:
    """One profile per (padded) resolution: a min..max range around it (dynamic ONNX), exact (fixed ONNX)."""
    stride = max(1, info.stride)
    sizes = padded(resolutions, stride)
    if not info.dynamic_hw:
        fixed = info.resolution
        if fixed and any(r != fixed for r in sizes):
            log.warning("%s has fixed shapes %dx%d: profiles for other resolutions dropped", info.path.name, *fixed)
        sizes = [fixed] if fixed else sizes
        span = (1.0, 1.0)
    out = []
    for h, w in sizes:
        lo = (max(stride, int(h * span[0]) // stride * stride), max(stride, int(w * span[0]) // stride * stride))
        hi = (round_up(h * span[1], stride), round_up(w * span[1], stride))
        shapes = []
        for name, dims in info.inputs.items():
            head = tuple(int(d) if isinstance(d, int) else 1 for d in dims[:2])
            shapes.append((name, head + lo, head + (h, w), head + hi))
        out.append(Profile(tuple(shapes)))
    return out


def select_profile(profiles: list[Profile], shapes: dict[str, tuple]) -> int:
    """The profile whose opt is the input shape, else the first that covers it; :class:`ProfileMismatchError`."""
    fits = [i for i, p in enumerate(profiles) if p.covers(shapes)]
    if not fits:
        have = ", ".join(p.describe() for p in profiles)
        dims = next(iter(shapes.values()))
        got = "x".join(map(str, dims[2:]))
        raise ProfileMismatchError(
            f"profile mismatch: the engine has profiles {have}; input is {got}. The engine is rebuilt for it "
            "(add it to the configured resolutions to build it up front)",
            (int(dims[2]), int(dims[3])),
        )
    exact = [i for i in fits if all(tuple(s[2]) == tuple(shapes[s[0]]) for s in profiles[i].shapes)]
    return (exact or fits)[0]
