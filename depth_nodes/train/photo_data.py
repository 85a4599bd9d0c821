"""Photometric samples (numpy side): which frames of a ``photo`` source neighbour each other, their poses.

A ``photo`` source is a layout with the ``poses/`` sidecar (``T_world_cam`` per frame, written by
``depth-nodes make-gt`` and ``depth-nodes synth``). Its frames are supervised like ``self`` (held-out returns)
plus the photometric term of :mod:`depth_nodes.train.photometric` against the previous and next frame of the
layout -- neighbours only when both are used by this source (a held-out block never lends its images) and
belong to the same drive (file-name prefix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_nodes.data.kitti_depth import POSES_DIR, list_frames, read_intrinsics, read_pose
from depth_nodes.errors import DepthNodesError


@dataclass
class PhotoInputs:
    """What one sample needs for the photometric term (images RGB uint8, not exposure-augmented)."""

    target: np.ndarray  # h x w x 3, the target crop
    K: np.ndarray  # 3 x 3 of the full image
    offset_xy: tuple[int, int]  # (x0, y0) of the crop in the full image
    sources: list[np.ndarray]  # full H x W x 3 images of the neighbouring frames
    T_src_tgt: list[np.ndarray]  # 4 x 4 each: target-camera coordinates -> source-camera coordinates


def drive_of(name: str) -> str:
    """The drive part of a layout file name (``<drive>_image_<frame>_image_02``): poses of different drives
    live in different world frames, so frames of two drives never neighbour each other."""
    return name.split("_image_", 1)[0]


class PhotoIndex:
    """Poses, intrinsics and neighbours of the items of ``photo`` sources (``FrameSet.items`` order)."""

    def __init__(self, items: list) -> None:
        self.neighbours: dict[int, list[int]] = {}
        self.K: dict[int, np.ndarray] = {}
        self.T_world_cam: dict[int, np.ndarray] = {}
        layout_pos: dict[str, dict[str, int]] = {}
        for i, (src, f) in enumerate(items):
            if src.kind != "photo":
                continue
            if f.pose is None:
                raise DepthNodesError(
                    f"source {src.path} (kind photo): frame {f.name} has no camera pose: the layout needs a "
                    f"{POSES_DIR}/ sidecar ({POSES_DIR}/<image name>.txt = 4x4 T_world_cam, written by "
                    "depth-nodes make-gt and depth-nodes synth); use kind self without poses"
                )
            if f.intrinsics is None:
                raise DepthNodesError(
                    f"source {src.path} (kind photo): frame {f.name} has no intrinsics/ file"
                )
            self.T_world_cam[i] = read_pose(f.pose)
            self.K[i] = read_intrinsics(f.intrinsics)
            key = str(src.path)
            if key not in layout_pos:
                layout_pos[key] = {g.name: k for k, g in enumerate(list_frames(src.path))}
        for i, (src, f) in enumerate(items):
            if src.kind != "photo":
                continue
            pos = layout_pos[str(src.path)]
            self.neighbours[i] = [
                j
                for j in (i - 1, i + 1)
                if 0 <= j < len(items)
                and items[j][0] is src
                and abs(pos[items[j][1].name] - pos[f.name]) == 1
                and drive_of(items[j][1].name) == drive_of(f.name)  # one world frame per drive
            ]

    def inputs(self, i: int, target_crop: np.ndarray, offset_xy: tuple[int, int], load) -> PhotoInputs:
        """The photometric inputs of item ``i`` (``load(j)`` gives item j's full RGB image)."""
        T_tgt = self.T_world_cam[i]
        srcs, rel = [], []
        for j in self.neighbours.get(i, []):
            srcs.append(load(j))
            rel.append(
                np.linalg.solve(self.T_world_cam[j], T_tgt)
            )  # T_src_tgt = inv(T_world_src) T_world_tgt
        return PhotoInputs(np.asarray(target_crop), self.K[i], offset_xy, srcs, rel)
