"""Photometric self-supervision: exact warping of a rendered scene, out-of-view and auto-masking, the poses/
sidecar of make-gt and synth, and a ``photo`` source training end to end."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0 then .[ml])")
pytest.importorskip("safetensors", reason="safetensors not installed (pip install '.[ml]')")

from depth_nodes.core.transforms import invert  # noqa: E402
from depth_nodes.data.kitti_depth import list_frames, read_pose, write_frame  # noqa: E402
from depth_nodes.errors import DepthNodesError  # noqa: E402
from depth_nodes.train.data import Augment, FrameSet, Source, make_sample  # noqa: E402
from depth_nodes.train.loop import TrainConfig, train  # noqa: E402
from depth_nodes.train.photometric import photometric_loss_one, photometric_term  # noqa: E402

H, W = 96, 160  # full image
K = np.array([[120.0, 0, 79.5], [0, 120.0, 47.5], [0, 0, 1]])
CROP = (64, 128)
OFF = (16, 20)  # (x0, y0) of the crop


def render(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8, depth m) seen by a camera at ``C`` (world = target camera axes, no rotation) of a textured
    slanted wall z = 7 + 0.25 x (world metres): exact ray-plane intersection, a smooth texture of the
    wall's (x, y), so any view is rendered exactly (no resampling of another image)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    # plane: z - 0.25 x = 7 -> (C + t r) . n = 7 with n = (-0.25, 0, 1)
    n = np.array([-0.25, 0.0, 1.0])
    t = (7.0 - C @ n) / (rays @ n)
    X = C + t[..., None] * rays
    x, y = X[..., 0], X[..., 1]
    chans = []
    for k, (a, b) in enumerate(((3.1, 2.3), (2.2, 4.1), (4.7, 1.7))):
        c = (
            0.5
            + 0.22 * np.sin(a * x + 1.3 * k) * np.cos(b * y - 0.7 * k)
            + 0.18 * np.sin(1.9 * x - 2.9 * y + k)
        )
        chans.append(c)
    img = np.clip(np.stack(chans, -1) * 255, 0, 255).astype(np.uint8)
    return img, t.astype(np.float32)  # t is the depth (rays have z = 1)


def _unit(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


def _T_src_tgt(C_src: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = -C_src  # the target camera sits at the world origin
    return T


def _scene(C_srcs):
    tgt, depth = render(np.zeros(3))
    x0, y0 = OFF
    crop = (slice(y0, y0 + CROP[0]), slice(x0, x0 + CROP[1]))
    sources = torch.cat([_unit(render(np.asarray(C))[0]) for C in C_srcs])
    T = torch.from_numpy(np.stack([_T_src_tgt(np.asarray(C)) for C in C_srcs])).float()
    return _unit(tgt[crop]), torch.from_numpy(depth[crop])[None, None], sources, T


def _loss(target, depth, sources, T, **kw):
    return photometric_loss_one(target, depth, torch.from_numpy(K).float(), OFF, sources, T, **kw)


def test_exact_depth_and_pose_warp_best_and_the_scale_gradient_points_to_it() -> None:
    target, depth, sources, T = _scene([(-0.6, 0.05, -0.7), (0.6, -0.05, 0.7)])
    losses = {s: float(_loss(target, depth * s, sources, T)[0]) for s in (0.7, 1.0, 1.4)}
    assert losses[1.0] < 0.25 * min(losses[0.7], losses[1.4]), losses
    assert losses[1.0] < 0.02, losses  # bilinear resampling of a smooth texture: nearly exact
    for s0, sign in ((0.8, -1), (1.25, 1)):  # d loss / d scale < 0 below the true scale, > 0 above
        s = torch.tensor(s0, requires_grad=True)
        _loss(target, depth * s, sources, T)[0].backward()
        assert np.sign(float(s.grad)) == sign, (s0, float(s.grad))


def test_pixels_outside_a_source_are_excluded() -> None:
    # 2 m to the right at ~7 m depth: the crop's left columns fall outside the source image.
    target, depth, sources, T = _scene([(2.0, 0.0, 0.0)])
    loss, kept = _loss(target, depth, sources, T, automask=False)
    Kt = torch.from_numpy(K).float()
    u = torch.arange(CROP[1]).float() + OFF[0]
    z = depth[0, 0]
    x_cam = (u[None, :] - K[0, 2]) / K[0, 0] * z - 2.0
    u_src = Kt[0, 0] * x_cam / z + K[0, 2]
    inside = (u_src >= 0) & (u_src <= W - 1)
    assert (~inside).sum() > 500 and inside.sum() > 2000  # the case exercises both sides
    assert torch.equal(kept[0, 0], inside), "kept pixels must be exactly those seen by the source"
    assert float(loss) < 0.02  # the excluded pixels (sampled at the border) do not pollute the loss
    far = torch.from_numpy(_T_src_tgt(np.array([500.0, 0, 0]))).float()[None]  # sees nothing of the crop
    loss, kept = _loss(target, depth, sources, far, automask=False)
    assert int(kept.sum()) == 0 and float(loss) == 0.0
    behind = far.clone()
    behind[0, :3, :3] = torch.diag(torch.tensor([-1.0, 1.0, -1.0]))  # turned around: everything behind it
    behind[0, :3, 3] = 0
    loss, kept = _loss(target, depth, sources, behind, automask=False)
    assert int(kept.sum()) == 0 and float(loss) == 0.0


def test_automask_drops_pixels_the_unwarped_frame_already_explains() -> None:
    tgt, depth = render(np.zeros(3))
    x0, y0 = OFF
    crop = (slice(y0, y0 + CROP[0]), slice(x0, x0 + CROP[1]))
    target, d = _unit(tgt[crop]), torch.from_numpy(depth[crop])[None, None]
    same = torch.cat([_unit(tgt), _unit(tgt)])  # a car standing still: the neighbours are the same image
    moved = torch.from_numpy(np.stack([_T_src_tgt(np.array([0.5, 0, 0.8]))] * 2)).float()  # odometry drift
    loss, kept = _loss(target, d, same, moved)
    assert float(loss) == 0.0 and int(kept.sum()) == 0
    loss_unmasked, _ = _loss(target, d, same, moved, automask=False)
    assert float(loss_unmasked) > 0.05  # without the mask the wrong pose would be learned from
    # a real motion is not masked: most pixels kept
    target, d, sources, T = _scene([(-0.6, 0.0, -0.7), (0.6, 0.0, 0.7)])
    _, kept = _loss(target, d, sources, T)
    assert float(kept.float().mean()) > 0.7


def _write_scene_layout(root, with_poses: bool = True) -> None:
    """3 frames moving 0.7 m forward and 0.3 m right each, sparse = every 4th row of the exact depth."""
    for i in range(3):
        C = np.array([0.3 * i, 0.0, 0.7 * i])
        img, depth = render(C)
        T_world_cam = np.eye(4)
        T_world_cam[:3, 3] = C
        sparse = np.where(np.arange(H)[:, None] % 4 == 0, depth, 0).astype(np.float32)
        write_frame(root, "drive", i, img, sparse, depth, K, T_world_cam if with_poses else None)


def test_photo_source_samples_and_trains_and_needs_poses(tmp_path) -> None:
    _write_scene_layout(tmp_path / "a")
    fs = FrameSet([Source.parse(f"{tmp_path / 'a'}:photo:1")])
    assert fs.photo.neighbours == {0: [1], 1: [0, 2], 2: [1]}
    a = make_sample(fs, 0, seed=1, epoch=0, crop_hw=CROP, aug=Augment())
    b = make_sample(fs, 0, seed=1, epoch=0, crop_hw=CROP, aug=Augment())
    assert np.array_equal(a.image, b.image) and np.array_equal(a.photo.target, b.photo.target)
    assert a.photo.sources and all(s.shape == (H, W, 3) for s in a.photo.sources)
    assert a.photo.target.shape == (*CROP, 3) and a.photo.offset_xy[0] <= W - CROP[1]
    for k in range(12):  # photo samples are never flipped (the pose is not mirrored with them)
        s = make_sample(fs, k, seed=2, epoch=0, crop_hw=CROP, aug=Augment())
        img, ref = s.image.astype(float).ravel(), s.photo.target.astype(float).ravel()
        mirrored = s.image[:, ::-1].astype(float).ravel()
        assert np.corrcoef(img, ref)[0, 1] > max(0.9, np.corrcoef(mirrored, ref)[0, 1])
    full = list_frames(tmp_path / "a")
    x0, y0 = OFF
    crop = (slice(y0, y0 + CROP[0]), slice(x0, x0 + CROP[1]))
    for i in range(3):  # each frame's exact depth explains its neighbours far better than a wrong scale
        p = fs.photo.inputs(i, fs.load(i)[1][crop], OFF, lambda j: fs.load(j)[1])
        d = torch.from_numpy(full[i].load()["groundtruth"][crop].copy())[None, None]
        exact, wrong = photometric_term(torch.cat([d, d * 1.4]), [p, p])
        assert float(exact) < 0.25 * float(wrong), (i, float(exact), float(wrong))
    cfg = TrainConfig(
        sources=[f"{tmp_path / 'a'}:photo:1"], out_dir=str(tmp_path / "run"), epochs=1, steps_per_epoch=4,
        batch=2, crop_hw=(32, 64), lr=3e-3, threads=1, progress=False,
        params={"width": 4, "levels": 1, "head_hidden": 4, "iterations": 2},
    )  # fmt: skip
    losses = train(cfg)  # the shipped default weight
    assert len(losses) == 4 and np.all(np.isfinite(losses))
    losses0 = train(TrainConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "r0"), "photo_weight": 0.0}))
    losses5 = train(TrainConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "r5"), "photo_weight": 5.0}))
    # same samples, same init: the photometric term (> 0 on a textured moving scene) is all that differs
    assert losses0[0] < losses[0] < losses5[0] - 1e-3, (losses0[0], losses[0], losses5[0])
    _write_scene_layout(tmp_path / "b", with_poses=False)
    with pytest.raises(DepthNodesError, match="poses/"):
        FrameSet([Source.parse(f"{tmp_path / 'b'}:photo:1")])
    FrameSet([Source.parse(f"{tmp_path / 'b'}:self:1")])  # self needs no poses
    _write_scene_layout(tmp_path / "c")
    img, depth = render(np.zeros(3))  # another drive in the same folder: its own world frame
    write_frame(tmp_path / "c", "drive2", 7, img, depth, depth, K, np.eye(4))
    fs = FrameSet([Source.parse(f"{tmp_path / 'c'}:photo:1")])
    names = [f.name.split("_image_")[0] for _, f in fs.items]
    assert fs.photo.neighbours == {
        i: [] if names[i] == "drive2" else fs.photo.neighbours[i] for i in range(4)
    }
    assert sum(len(v) for v in fs.photo.neighbours.values()) == 4  # drive's 3 frames: 0-1, 1-0, 1-2, 2-1


def test_make_gt_and_synth_write_camera_poses(tmp_path) -> None:
    from depth_nodes.data.gt_sources import Drive, DriveFrame
    from depth_nodes.data.make_gt import GTParams, make_gt
    from depth_nodes.data.synthetic import DC_DIR, generate_drive, synthetic_calib, write_drive

    camera, T_cam_lidar = synthetic_calib()
    frames = list(generate_drive(3, 2))
    poses = np.stack([f.T_world_velo for f in frames])
    drive = Drive(
        "2011_09_26_drive_0003_sync",
        [DriveFrame(f.index, f.image, f.points[:, :3], camera, T_cam_lidar, f.rings) for f in frames],
        poses=poses, crop=(1216, 352), pose_source="given",
    )  # fmt: skip
    make_gt(drive, tmp_path / "gt", GTParams(neighbours=1, refine=False), progress=False)
    got = [read_pose(f.pose) for f in list_frames(tmp_path / "gt")]
    for f, T in zip(frames, got, strict=True):
        assert np.allclose(T, f.T_world_velo @ invert(T_cam_lidar), atol=1e-6)
    assert read_pose(tmp_path / "nope.txt") is None
    # synth: the exact poses and the exact depth explain its rendered frames photometrically
    write_drive(tmp_path / "synth", seed=3, n_frames=3, progress=False)
    dc = list_frames(tmp_path / "synth" / DC_DIR)
    d = [f.load() for f in dc]
    assert all(x["T_world_cam"] is not None for x in d)
    for x, f in zip(d, got, strict=False):
        assert np.allclose(x["T_world_cam"], f, atol=1e-6)  # same rig poses as make-gt's sidecar
    h, w, x0, y0 = 160, 640, 300, 150
    gt = d[1]["groundtruth"][y0 : y0 + h, x0 : x0 + w]
    srcs = torch.cat([_unit(d[j]["image"]) for j in (0, 2)])
    T = torch.from_numpy(
        np.stack([np.linalg.solve(d[j]["T_world_cam"], d[1]["T_world_cam"]) for j in (0, 2)])
    )
    tgt = _unit(d[1]["image"][y0 : y0 + h, x0 : x0 + w])
    Kt = torch.from_numpy(d[1]["K"]).float()
    assert (gt > 0).mean() > 0.3
    res = {}
    for s in (0.7, 0.9, 1.0, 1.1, 1.4):
        depth = torch.from_numpy(gt * s)[None, None]
        res[s] = float(photometric_loss_one(tgt, depth, Kt, (x0, y0), srcs, T.float())[0])
    # rendering noise, occlusions and texture-less road leave a floor (0.039 here, 0.051 at 0.7x / 1.4x),
    # but the exact depth with the exact poses is the minimum: a wrong pose convention would move it
    assert min(res, key=res.get) == 1.0 and res[1.0] < 0.85 * min(res[0.7], res[1.4]), res
