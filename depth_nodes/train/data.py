"""Training samples for completion: weighted sources, supervision targets, augmentation for real sensors.

A *source* is a KITTI depth-completion layout (``image/``, ``velodyne_raw/``, optional ``groundtruth_depth/``
and ``velodyne_raw_rings/``): what ``depth-nodes synth`` writes for synthetic drives (exact dense GT), what
``depth-nodes make-gt`` writes for a real drive (accumulated semi-dense GT), or KITTI DC itself. Supervision
per source (``kind``):

- ``gt``: the layout's ``groundtruth_depth`` (synthetic exact GT, make-gt's accumulated GT, KITTI DC's);
- ``self``: no GT used -- the LiDAR supervises itself: a share of its returns (random points, or whole rings
  when the ring sidecar exists) is withheld from the input and becomes the target;
- ``photo``: ``self`` plus photometric consistency with the previous and next frame (the layout's ``poses/``
  sidecar gives the ego-motion; :mod:`depth_nodes.train.photo_data`, :mod:`depth_nodes.train.photometric`).
  Photo samples are never flipped (the pose would have to be mirrored with them).

Every sample is a pure function of (seed, epoch, index): data-parallel ranks and resumed runs see the same
crops and augmentations, whatever the process count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_nodes.completion.conditioning import condition
from depth_nodes.data.kitti_depth import list_frames, read_depth_png, read_rgb
from depth_nodes.errors import DepthNodesError
from depth_nodes.eval.bench_frames import read_rings
from depth_nodes.train.photo_data import PhotoIndex, PhotoInputs
from depth_nodes.train.rescale import decimate_columns, draw_scale, rescale_sample

KINDS = ("gt", "self", "photo")


@dataclass(frozen=True)
class Source:
    """A layout, the frame indices used from it (None = all), its supervision and its sampling weight."""

    path: Path
    kind: str = "gt"
    weight: float = 1.0
    frames: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> Source:
        """``PATH[:kind[:weight[:frames]]]``, frames like ``0-34`` or ``0-34,50-60`` (indices in the layout)."""
        parts = text.split(":")
        path, kind = Path(parts[0]), (parts[1] if len(parts) > 1 and parts[1] else "gt")
        if kind not in KINDS:
            raise DepthNodesError(f"source {text!r}: kind must be one of {KINDS}, got {kind!r}")
        try:
            weight = float(parts[2]) if len(parts) > 2 and parts[2] else 1.0
        except ValueError:
            raise DepthNodesError(f"source {text!r}: weight must be a number") from None
        frames = parse_ranges(parts[3]) if len(parts) > 3 and parts[3] else None
        if weight <= 0:
            raise DepthNodesError(f"source {text!r}: weight must be > 0")
        return cls(path, kind, weight, frames)


def parse_ranges(text: str) -> tuple[int, ...]:
    """``"0-34,40"`` -> (0, 1, ..., 34, 40)."""
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise DepthNodesError(f"frame ranges must look like 0-34,40; got {text!r}") from None
    return tuple(out)


@dataclass
class Augment:
    """Augmentation for real sensors (probabilities / magnitudes)."""

    ring_dropout: float = 0.3  # P(keep 32 or 16 of 64 rings) when a ring sidecar exists
    point_dropout: float = 0.3  # max share of returns removed at random
    noise_rel: float = 0.005  # multiplicative depth noise sigma
    exposure: float = 0.3  # gain range +-, and gamma range
    flip: bool = True
    scale_prob: float = 0.5  # P(the crop is seen through another focal length, train/rescale.py)
    scale_range: tuple[float, float] = (0.5, 2.0)  # log-uniform focal-length factor
    azimuth_prob: float = 0.3  # P(returns kept in every 2nd-6th column only: a coarser LiDAR azimuth step)


@dataclass
class Sample:
    image: np.ndarray  # H x W x 3 uint8
    sparse: np.ndarray  # H x W float32 m, the network input
    target: np.ndarray  # H x W float32 m, 0 = no supervision
    photo: PhotoInputs | None = None  # photometric inputs (kind photo)


class FrameSet:
    """The frames of all sources, loaded lazily (a 1920x1080 frame is decoded when it is sampled).

    Decoded frames are kept in memory up to ``cache_mb`` (PNG decoding was half of a training step's time on a
    CPU); cached arrays are read-only, so a sample can never alter the frame it was cut from.
    """

    def __init__(self, sources: list[Source], cache_mb: float = 3000.0):
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: dict[int, tuple] = {}
        self._cached = 0
        if not sources:
            raise DepthNodesError("no training sources")
        self.items: list[tuple[Source, object]] = []
        weights = []
        for src in sources:
            frames = list_frames(src.path)
            picked = frames if src.frames is None else [frames[i] for i in src.frames if i < len(frames)]
            if src.kind == "gt":
                picked = [f for f in picked if f.groundtruth is not None]
            if not picked:
                raise DepthNodesError(f"source {src.path}: no usable frames (kind {src.kind!r})")
            for f in picked:
                self.items.append((src, f))
                weights.append(src.weight / len(picked))
        w = np.asarray(weights, np.float64)
        self.probs = w / w.sum()
        self.photo = PhotoIndex(self.items) if any(s.kind == "photo" for s in sources) else None

    def __len__(self) -> int:
        return len(self.items)

    def load(self, i: int) -> tuple[Source, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        hit = self._cache.get(i)
        if hit is not None:
            return hit
        src, f = self.items[i]
        # The network sees what the node feeds it: conditioned input. A raw layout (KITTI DC's
        # velodyne_raw) loses its see-through returns here; a conditioned one (make-gt, synth) is
        # unchanged (the filter is idempotent), so no declaration is needed.
        sparse = condition(read_depth_png(f.velodyne_raw)).depth
        gt = read_depth_png(f.groundtruth) if (src.kind == "gt" and f.groundtruth) else None
        out = (src, read_rgb(f.image), sparse, gt, read_rings(f.velodyne_raw, sparse.shape))
        arrays = [a for a in out[1:] if a is not None]
        size = sum(a.nbytes for a in arrays)
        if self._cached + size <= self.cache_bytes:
            for a in arrays:
                a.setflags(write=False)
            self._cache[i] = out
            self._cached += size
        return out


def _crop_window(sparse: np.ndarray, h: int, w: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left of an h x w crop centred near a random LiDAR return (so crops hold supervision)."""
    H, W = sparse.shape
    if H < h or W < w:
        raise DepthNodesError(f"frame {W}x{H} is smaller than the training crop {w}x{h}")
    ys, xs = np.nonzero(sparse > 0)
    if ys.size:
        j = rng.integers(ys.size)
        cy, cx = ys[j] + rng.integers(-h // 4, h // 4 + 1), xs[j]
    else:
        cy, cx = rng.integers(H), rng.integers(W)
    return int(np.clip(cy - h // 2, 0, H - h)), int(np.clip(cx - w // 2, 0, W - w))


def thin_rings(sparse: np.ndarray, rings: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Keep every 2nd or 4th ring (a 64-ring scan seen as 32 or 16 rings); unchanged without rings."""
    if rings is None:
        return sparse
    has = (sparse > 0) & (rings >= 0)
    if not has.any():
        return sparse
    step = int(rng.choice([2, 4])) if int(rings[has].max()) > 32 else 2
    offset = int(rng.integers(step))
    return np.where(has & (rings % step == offset), sparse, np.float32(0))


def held_out_split(
    sparse: np.ndarray, rings: np.ndarray | None, rng: np.random.Generator, share: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) for self-supervision: random returns, or whole rings (half the time) withheld."""
    has = sparse > 0
    if rings is not None and rng.random() < 0.5 and (rings[has] >= 0).any():
        n = int(rings[has].max()) + 1
        out_rings = rng.random(n) < share
        withheld = has & (rings >= 0) & out_rings[np.clip(rings, 0, n - 1)]
    else:
        withheld = has & (rng.random(sparse.shape) < share)
    z = np.float32(0)
    return np.where(withheld, z, sparse), np.where(withheld, sparse, z)


def make_sample(
    frames: FrameSet, index: int, seed: int, epoch: int, crop_hw: tuple[int, int], aug: Augment | None
) -> Sample:
    """Sample ``index`` of ``epoch``: a weighted frame pick, crop, supervision target and augmentation."""
    rng = np.random.default_rng([seed, epoch, index])
    item = int(rng.choice(len(frames), p=frames.probs))
    src, image, sparse, gt, rings = frames.load(item)
    scale = 1.0  # photo samples keep the camera: their intrinsics and poses warp the neighbours
    if aug is not None and src.kind != "photo" and rng.random() < aug.scale_prob:
        scale = draw_scale(rng, sparse.shape, crop_hw, aug.scale_range)
    win = (min(sparse.shape[0], round(crop_hw[0] / scale)), min(sparse.shape[1], round(crop_hw[1] / scale)))
    y0, x0 = _crop_window(sparse, *win, rng)
    sl = (slice(y0, y0 + win[0]), slice(x0, x0 + win[1]))
    photo = None
    if src.kind == "photo":
        photo = frames.photo.inputs(item, image[sl], (x0, y0), lambda j: frames.load(j)[1])
    image, sparse = image[sl], sparse[sl]
    gt = gt[sl] if gt is not None else None
    rings = rings[sl] if rings is not None else None
    if win != tuple(crop_hw):
        image, sparse, gt, rings = rescale_sample(image, sparse, gt, rings, crop_hw)
    if aug is not None and rng.random() < aug.azimuth_prob:
        sparse = decimate_columns(sparse, rng)
        rings = None if rings is None else np.where(sparse > 0, rings, -1)
    if aug is not None and rng.random() < aug.ring_dropout:
        sparse = thin_rings(sparse, rings, rng)
        rings = None if rings is None else np.where(sparse > 0, rings, -1)
    if gt is None:
        sparse, target = held_out_split(sparse, rings, rng)
    else:
        target = gt
    if aug is not None:
        keep = rng.random(sparse.shape) >= rng.uniform(0, aug.point_dropout)
        sparse = np.where(keep, sparse, np.float32(0))
        sparse = sparse * (1 + aug.noise_rel * rng.standard_normal(sparse.shape)).astype(np.float32)
        gain = rng.uniform(1 - aug.exposure, 1 + aug.exposure)
        gamma = rng.uniform(1 - aug.exposure, 1 + aug.exposure)
        image = np.clip(255.0 * (gain * (image / 255.0)) ** gamma, 0, 255).astype(np.uint8)
        if aug.flip and rng.random() < 0.5 and photo is None:
            image, sparse, target = image[:, ::-1], sparse[:, ::-1], target[:, ::-1]
    return Sample(
        np.ascontiguousarray(image), np.ascontiguousarray(sparse, np.float32), np.ascontiguousarray(target), photo
    )
