"""Frames of ``depth-nodes bench completion``: inputs and ground-truth variants per protocol.

Synthetic (the default): a seeded synthetic drive, 1216x352 crop; inputs ``raw`` (the scan projected with
a plain z-buffer, see-through returns included: KITTI DC's ``velodyne_raw`` protocol, conditioned by each
completer), ``full`` (the occlusion-filtered scan, declared conditioned, as the node's) and ``16beam`` (rings
% 4 == 0 of it); GT ``dense`` (exact depth where the LiDAR could see) and, for ``16beam``, ``held_out``
(the other rings' returns).

Real data (``--data DIR``: a KITTI DC layout, e.g. written by ``depth-nodes make-gt``, or a folder of such
layouts such as make-gt's PandaSet output ``pandar64/`` + ``pandargt/``):

- input ``scan`` (the frame's ``velodyne_raw``), GT ``accumulated`` (``groundtruth_depth``: make-gt's
  registered neighbouring scans, or KITTI's own); with raw input (the default, KITTI DC's protocol) each
  completer conditions it; held-out and ring GT are taken from the conditioned scan (the default filter),
  so a see-through return is never a target, while the inputs stay raw;
- input ``held_out``: 20 % of the returns (seeded) removed; GT = those returns;
- input ``16beam`` where a ``velodyne_raw_rings/`` sidecar gives rings: a 64-ring scan keeps rings % 4 == 0,
  GT ``rings_48of64`` (the other 48 rings' returns), ``rings_16of32`` (rings % 4 == 2: what a 32-ring
  sensor had between the kept rings), ``accumulated``; a 32-ring scan keeps rings % 2 == 0, GT
  ``rings_16of32`` = the odd rings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from depth_nodes.completion.conditioning import condition
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.data.kitti_depth import crop_bottom_centre, list_frames
from depth_nodes.errors import DepthNodesError

CROP_W, CROP_H = 1216, 352
RINGS_DIR = "velodyne_raw_rings"
HELD_OUT_FRACTION = 0.2


@dataclass
class BenchFrame:
    """One frame of the bench: RGB image, sparse inputs by name, ground-truth variants per input."""

    image: np.ndarray
    inputs: dict[str, np.ndarray]
    gts: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: Inputs already conditioned (see-through returns removed): completers do not filter them again.
    conditioned: frozenset[str] = frozenset()


# --------------------------------------------------------------------------- synthetic
def thin_by_ring(
    points: np.ndarray,
    rings: np.ndarray,
    full_depth: np.ndarray,
    T_cam_lidar: np.ndarray,
    camera: CameraModel,
    keep_every: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Split an occlusion-filtered full projection into (kept rings' returns, held-out rings' returns).

    The kept rings (``ring % keep_every == 0``) are projected alone without filtering; a pixel is kept
    where that depth is the one the filtered full scan kept there (so returns hidden in the full scan,
    including by a nearer return of another ring on the same pixel, are dropped). Everything else the
    full scan kept is held out.
    """
    sel = (np.asarray(rings) % keep_every) == 0
    if not sel.any():
        raise DepthNodesError(
            f"no LiDAR points on rings % {keep_every} == 0 (rings {rings.min()}..{rings.max()})"
        )
    kept_raw = scan_to_depth(points[sel], T_cam_lidar, camera, occlusion=None, on_nonfinite="drop").depth
    same = (kept_raw > 0) & (full_depth > 0) & (np.abs(kept_raw - full_depth) <= 1e-5 * full_depth)
    kept = np.where(same, full_depth, 0.0).astype(np.float32)
    held_out = np.where((full_depth > 0) & ~same, full_depth, 0.0).astype(np.float32)
    return kept, held_out


def prepare_synthetic(frames: Iterable, camera: CameraModel, T_cam_lidar: np.ndarray) -> Iterator[BenchFrame]:
    """SynthFrame-like objects (``image``, ``points``, ``rings``, ``depth_gt``) -> cropped BenchFrames.

    The dense GT is restricted by ``data.synthetic.lidar_visible_gt``, the rule ``write_drive`` uses for
    its ``groundtruth_depth``, so the bench and the written data set score the same pixels.
    """
    from depth_nodes.data.synthetic import lidar_visible_gt

    x0, y0 = crop_bottom_centre(camera.shape, CROP_W, CROP_H)
    crop = (slice(y0, y0 + CROP_H), slice(x0, x0 + CROP_W))
    for f in frames:
        raw = scan_to_depth(f.points, T_cam_lidar, camera, occlusion=None, on_nonfinite="drop").depth
        full = condition(raw).depth  # = scan_to_depth with the filter (the node's projection)
        kept, held = thin_by_ring(f.points, f.rings, full, T_cam_lidar, camera)
        gt = lidar_visible_gt(np.asarray(f.depth_gt, np.float32), camera, T_cam_lidar)[crop]
        yield BenchFrame(
            image=np.ascontiguousarray(f.image[crop]),
            inputs={
                "raw": np.ascontiguousarray(raw[crop]),
                "full": np.ascontiguousarray(full[crop]),
                "16beam": np.ascontiguousarray(kept[crop]),
            },
            gts={
                "raw": {"dense": gt},
                "full": {"dense": gt},
                "16beam": {"dense": gt, "held_out": np.ascontiguousarray(held[crop])},
            },
            conditioned=frozenset({"full", "16beam"}),
        )


def synthetic_frames(seed: int, n_frames: int) -> Iterator[BenchFrame]:
    """The default source: ``data.synthetic.generate_drive(seed, n_frames)`` prepared for the bench."""
    from depth_nodes.data.synthetic import generate_drive, synthetic_calib

    camera, T = synthetic_calib()
    return prepare_synthetic(generate_drive(seed, n_frames), camera, T)


# --------------------------------------------------------------------------- real data (DC layouts)
def dc_layouts(data_dir: str | Path) -> list[tuple[str, Path]]:
    """(label, directory) of the KITTI DC layouts under ``data_dir``: itself, or its sub-folders."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DepthNodesError(f"data directory not found: {root}")
    if (root / "image").is_dir():
        return [("", root)]
    subs = sorted(p for p in root.iterdir() if (p / "image").is_dir())
    if not subs:
        raise DepthNodesError(
            f"{root}: no KITTI depth-completion layout (image/, velodyne_raw/, groundtruth_depth/) in it "
            "or its sub-folders"
        )
    return [(p.name, p) for p in subs]


def read_rings(velodyne_raw: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """Ring id per pixel (int16, -1 = none) from the ``velodyne_raw_rings/`` sidecar, or None."""
    path = (
        velodyne_raw.parent.parent
        / RINGS_DIR
        / velodyne_raw.name.replace("_velodyne_raw_", f"_{RINGS_DIR}_", 1)
    )
    if not path.is_file():
        return None
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.shape != shape:
        raise DepthNodesError(f"{path}: unreadable or not {shape[1]}x{shape[0]}")
    return raw.astype(np.int16) - 1


def ring_protocol(
    sparse: np.ndarray, rings: np.ndarray, clean: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """(16-beam input, ring GT variants) of a 64- or 32-ring scan; None for other ring counts.

    The input keeps ``sparse``'s returns of the kept rings; the GT variants take ``clean``'s (the
    conditioned scan, default ``sparse``) of the other rings."""
    clean = sparse if clean is None else clean
    has = (sparse > 0) & (rings >= 0)
    n_rings = int(rings[has].max()) + 1 if has.any() else 0
    if n_rings > 32:  # 64-ring sensor (ids 0..63)
        kept, gts = (
            has & (rings % 4 == 0),
            {"rings_48of64": has & (rings % 4 != 0), "rings_16of32": has & (rings % 4 == 2)},
        )
    elif n_rings > 16:
        kept, gts = has & (rings % 2 == 0), {"rings_16of32": has & (rings % 2 == 1)}
    else:
        return None
    z = np.float32(0.0)
    return np.where(kept, sparse, z), {k: np.where(m & (clean > 0), clean, z) for k, m in gts.items()}


def prepare_dc(
    data_dir: str | Path,
    n_frames: int | None = None,
    seed: int = 0,
    held_out_fraction: float = HELD_OUT_FRACTION,
    conditioned: bool = False,
) -> Iterator[BenchFrame]:
    """The real protocols (module docstring) on every layout under ``data_dir``; inputs are named
    ``<layout>/<input>`` when there are several layouts. Frames of a layout: the first ``n_frames``.

    ``conditioned``: the layouts' ``velodyne_raw`` is already filtered (make-gt's default), else raw
    (KITTI DC's): the inputs are then marked raw and the held-out / ring GT come from its conditioning."""
    rng = np.random.default_rng(seed)
    layouts = dc_layouts(data_dir)
    for label, root in layouts:
        prefix = f"{label}/" if len(layouts) > 1 else ""
        for frame in list_frames(root)[:n_frames]:
            d = frame.load()
            sparse, acc = d["sparse"], d["groundtruth"]
            clean = sparse if conditioned else condition(sparse).depth
            ys, xs = np.nonzero(clean > 0)
            if ys.size == 0:
                raise DepthNodesError(f"{frame.velodyne_raw}: no LiDAR returns")
            out = rng.random(ys.size) < held_out_fraction
            inp, held = sparse.copy(), np.zeros_like(sparse)
            inp[ys[out], xs[out]] = 0.0
            held[ys[out], xs[out]] = clean[ys[out], xs[out]]
            with_acc = {"accumulated": acc} if acc is not None else {}
            inputs = {f"{prefix}scan": sparse, f"{prefix}held_out": inp}
            gts = {f"{prefix}scan": with_acc, f"{prefix}held_out": {"held_out": held}}
            rings = read_rings(frame.velodyne_raw, sparse.shape)
            thinned = ring_protocol(sparse, rings, clean) if rings is not None else None
            if thinned is not None:
                inputs[f"{prefix}16beam"] = thinned[0]
                gts[f"{prefix}16beam"] = {**thinned[1], **with_acc}
            inputs = {k: v for k, v in inputs.items() if gts[k]}
            yield BenchFrame(
                image=d["image"],
                inputs=inputs,
                gts={k: gts[k] for k in inputs},
                conditioned=frozenset(inputs) if conditioned else frozenset(),
            )


def prepare_kitti_dc(
    data_dir: str | Path,
    n_frames: int,
    seed: int,
    held_out_fraction: float = HELD_OUT_FRACTION,
    conditioned: bool = False,
) -> Iterator[BenchFrame]:
    """Compatibility name of :func:`prepare_dc` (one layout)."""
    return prepare_dc(data_dir, n_frames, seed, held_out_fraction, conditioned)
