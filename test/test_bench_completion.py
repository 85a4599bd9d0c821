"""`depth-nodes bench completion`: frame preparation (16-beam thinning, GT restriction), scoring, output.

A small analytic scene (ground plane, a box, a far wall, sky above) ray-cast for a 64-ring LiDAR and a
KITTI-geometry camera stands in for the synthetic generator, so these tests check the bench's own logic
exactly; one test runs the real generator when it is installed.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from depth_nodes.cli import main
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.data.kitti_depth import write_frame
from depth_nodes.data.synthetic import lidar_visible_gt
from depth_nodes.eval import bench_completion as bc

K_KITTI = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])
T_CAM_VELO = np.array(
    [[0.0, -1.0, 0.0, -0.004], [0.0, 0.0, -1.0, -0.076], [1.0, 0.0, 0.0, -0.27], [0.0, 0.0, 0.0, 1.0]]
)
GROUND_Z = -1.73  # LiDAR frame, z up


def cast(origin: np.ndarray, dirs: np.ndarray, box_x: float) -> np.ndarray:
    """Ray parameter t of the first hit (inf = sky): ground, a box at x in [box_x, box_x+2], a wall at x=45."""
    dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    ox, oy, oz = origin
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(dz < 0, (GROUND_Z - oz) / dz, np.inf)
        t_wall = np.where(dx > 0, (45.0 - ox) / dx, np.inf)
        zw = oz + t_wall * dz
        t_wall = np.where(zw < 4.0, t_wall, np.inf)  # wall 5.7 m high: sky above it
        t_box = np.where(dx > 0, (box_x - ox) / dx, np.inf)
        yb, zb = oy + t_box * dy, oz + t_box * dz
        t_box = np.where((np.abs(yb - 1.0) < 2.0) & (zb < 0.5), t_box, np.inf)
    return np.minimum(np.minimum(t_ground, t_wall), t_box)


@dataclass
class FakeFrame:
    index: int
    stamp_ns: int
    image: np.ndarray
    points: np.ndarray
    rings: np.ndarray
    depth_gt: np.ndarray


def fake_calib() -> tuple[CameraModel, np.ndarray]:
    return CameraModel(1242, 375, K_KITTI), T_CAM_VELO.copy()


def fake_drive(seed: int, n_frames: int):
    camera, T = fake_calib()
    elev = np.deg2rad(np.linspace(2.0, -24.8, 64))
    az = np.deg2rad(np.arange(-50, 50, 0.17))
    ring, a = np.meshgrid(np.arange(64), az, indexing="ij")
    e = elev[ring]
    dirs = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1).reshape(-1, 3)
    rings = ring.reshape(-1).astype(np.int16)
    cam_origin = np.linalg.inv(T)[:3, 3]
    xy = camera.pixel_rays().reshape(-1, 2).astype(np.float64)
    rays_cam = np.concatenate([xy, np.ones((xy.shape[0], 1))], axis=1)
    rays_lidar = rays_cam @ T[:3, :3]  # R^T r: camera-frame rays in the LiDAR frame (z_cam = 1 -> t = depth)
    rng = np.random.default_rng(seed)
    for i in range(n_frames):
        box_x = 12.0 + 2.0 * i + seed % 3
        t = cast(np.zeros(3), dirs, box_x)
        hit = np.isfinite(t)
        pts = (dirs[hit] * t[hit, None]).astype(np.float32)
        points = np.concatenate([pts, np.ones((pts.shape[0], 1), np.float32)], axis=1)
        t_cam = cast(cam_origin, rays_lidar, box_x).reshape(camera.shape)
        depth_gt = np.where(np.isfinite(t_cam), t_cam, 0.0).astype(np.float32)
        image = rng.integers(0, 255, (375, 1242, 3), dtype=np.uint8)
        yield FakeFrame(i, i * 100_000_000, image, points, rings[hit], depth_gt)


def test_prepare_synthetic_thins_by_ring_and_restricts_gt() -> None:
    camera, T = fake_calib()
    raw = next(fake_drive(0, 1))
    frame = next(bc.prepare_synthetic([raw], camera, T))
    full, kept = frame.inputs["full"], frame.inputs["16beam"]
    held = frame.gts["16beam"]["held_out"]
    gt = frame.gts["full"]["dense"]
    assert full.shape == kept.shape == gt.shape == (352, 1216) and frame.image.shape == (352, 1216, 3)
    # kept and held-out returns partition the filtered full scan
    assert not ((kept > 0) & (held > 0)).any()
    np.testing.assert_array_equal(np.where(kept > 0, kept, held), full)
    assert 0.15 < (kept > 0).sum() / (full > 0).sum() < 0.35  # ~1/4 of the rings
    # every kept return is a return of a ring % 4 == 0, projected alone
    only16 = scan_to_depth(raw.points[raw.rings % 4 == 0], T, camera, occlusion=None).depth[23:, 13:1229]
    assert np.all(kept[kept > 0] == only16[kept > 0])
    # no held-out return comes from a kept ring at a pixel that ring alone would fill with that depth
    assert not np.any((held > 0) & (np.abs(only16 - held) <= 1e-5 * held))
    # GT: exact rendered depth, but none in the sky or above the LiDAR's field of view
    x0, y0 = 13, 23
    dense = raw.depth_gt[y0:, x0 : x0 + 1216]
    np.testing.assert_array_equal(gt[gt > 0], dense[gt > 0])
    assert (gt[dense == 0] == 0).all()
    # the wall above the highest ring is rendered but not GT: excluded pixels lie above the top returns
    # (the LiDAR's top ring is at +2 deg elevation)
    xy = camera.crop(x0, y0, 1216, 352).pixel_rays()
    pts_cam = np.concatenate([xy, np.ones((352, 1216, 1), np.float32)], axis=2) * dense[..., None]
    pts_lidar = pts_cam.reshape(-1, 3) @ np.linalg.inv(T)[:3, :3].T + np.linalg.inv(T)[:3, 3]
    elev = np.rad2deg(np.arctan2(pts_lidar[:, 2], np.hypot(pts_lidar[:, 0], pts_lidar[:, 1]))).reshape(
        352, 1216
    )
    excluded = (dense > 0) & (gt == 0)
    assert excluded.sum() > 5000
    assert elev[excluded].min() > 1.0 and elev[gt > 0].max() < 2.5
    # LiDAR returns agree with the rendered depth (same scene, parallax-filtered)
    on = full > 0
    assert np.median(np.abs(full[on] - dense[on])) < 0.05


def test_run_bench_rows_and_ratios() -> None:
    camera, T = fake_calib()
    frames = list(bc.prepare_synthetic(fake_drive(1, 2), camera, T))
    rows = bc.run_bench(frames, ["nearest", "ip_basic"], seed=0, progress=False)
    bc.add_ratios(rows)
    keys = {(r["method"], r["input"], r["gt"]) for r in rows}
    assert keys == {
        (m, i, g)
        for m in ("nearest", "ip_basic")
        for i, g in (("raw", "dense"), ("full", "dense"), ("16beam", "dense"), ("16beam", "held_out"))
    }
    for r in rows:
        assert 0 < r["mae_mm"] <= r["rmse_mm"], r
        if r["input"] == "full":  # a smooth scene with a dense scan: RMSE well under 2 m
            assert r["rmse_mm"] < 2000 and r["coverage"] > 0.95, r
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert 0 <= r["delta1"] <= 1 and r["ause_rmse_random"] > 0
        if r["method"] == "ip_basic":
            assert r["mae_mm_vs_ip_basic"] == pytest.approx(1.0)
    by = {(r["method"], r["input"], r["gt"]): r for r in rows}
    # thinning to 16 beams makes every method worse on the same dense GT
    for m in ("nearest", "ip_basic"):
        assert by[(m, "16beam", "dense")]["mae_mm"] > by[(m, "full", "dense")]["mae_mm"]
    # distance-to-LiDAR confidence predicts error better than random
    assert (
        by[("ip_basic", "16beam", "dense")]["ause_rmse"]
        < by[("ip_basic", "16beam", "dense")]["ause_rmse_random"]
    )
    table = bc.markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and "| ip_basic | 16beam | held_out |" in table


@pytest.fixture
def fake_synthetic(monkeypatch):
    mod = types.ModuleType("depth_nodes.data.synthetic")
    mod.generate_drive = fake_drive
    mod.synthetic_calib = fake_calib
    mod.lidar_visible_gt = lidar_visible_gt
    monkeypatch.setitem(sys.modules, "depth_nodes.data.synthetic", mod)


def test_cli_json_docs_and_skipped_methods(fake_synthetic, tmp_path: Path, capsys) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        f"# Benchmarks\n\n## Completion\n\n{bc.DOCS_START}\nold\n{bc.DOCS_END}\n\n## Node\n\nkept\n"
    )
    out = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            "completion",
            "--frames",
            "2",
            "--seed",
            "3",
            "--methods",
            "nearest,ip_basic,no_such_method",
            "--json",
            str(out),
            "--update-docs",
            "--docs",
            str(docs),
            "--projection-repeats",
            "3",
            "--plots",
            str(tmp_path / "plots"),
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert "no_such_method" in captured.err and "skipped" in captured.err
    data = json.loads(out.read_text())
    assert data["config"]["skipped"] == ["no_such_method"] and data["config"]["frames"] == 2
    assert set(data["machine"]) >= {"cpu", "cores", "python", "numpy", "opencv", "date"}
    p = data["projection"]
    assert (
        p["n_points"] == 120_000
        and p["median_ms_with_occlusion"] > 0
        and p["median_ms_without_occlusion"] > 0
    )
    assert len(data["results"]) == 8
    assert (tmp_path / "plots" / "bench_sparsification.png").stat().st_size > 5000
    assert (tmp_path / "plots" / "bench_latency.png").stat().st_size > 5000
    assert len(data["results"][0]["sparsification"]["curve"]) == 50
    text = docs.read_text()
    assert "old" not in text and "## Node\n\nkept" in text and "| ip_basic | full | dense |" in text
    assert "--seed 3" in text and data["machine"]["cpu"] in text


def test_kitti_dc_protocol(tmp_path: Path, capsys) -> None:
    camera, T = fake_calib()
    raw = next(fake_drive(2, 1))
    frame = next(bc.prepare_synthetic([raw], camera, T))
    K = camera.crop(13, 23, 1216, 352).K
    write_frame(
        tmp_path / "dc",
        "2011_09_26_drive_0001_sync",
        5,
        frame.image,
        frame.inputs["full"],
        frame.gts["full"]["dense"],
        K,
    )
    frames = list(bc.prepare_kitti_dc(tmp_path / "dc", 5, seed=0))
    f = frames[0]
    inp, held = f.inputs["held_out"], f.gts["held_out"]["held_out"]
    n_all = (frame.inputs["full"] > 0).sum()
    assert not ((inp > 0) & (held > 0)).any()
    assert (held > 0).sum() == pytest.approx(0.2 * n_all, rel=0.1)
    assert (inp > 0).sum() + (held > 0).sum() == n_all
    np.testing.assert_array_equal(f.inputs["scan"] > 0, frame.inputs["full"] > 0)
    assert set(f.gts["scan"]) == {"accumulated"} and "16beam" not in f.inputs  # no ring sidecar
    out = tmp_path / "dc.json"
    assert (
        main(
            [
                "bench",
                "completion",
                "--data",
                str(tmp_path / "dc"),
                "--methods",
                "ip_basic",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    assert {(r["input"], r["gt"]) for r in data["results"]} == {
        ("scan", "accumulated"),
        ("held_out", "held_out"),
    }


def test_errors(tmp_path: Path, capsys) -> None:
    assert main(["bench", "completion", "--methods", "bogus1,bogus2", "--frames", "1"]) == 1
    assert "none of the methods" in capsys.readouterr().err
    assert main(["bench", "completion", "--data", str(tmp_path / "nope"), "--methods", "nearest"]) == 1
    assert "not found" in capsys.readouterr().err


def test_real_synthetic_two_frames(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "completion",
                "--frames",
                "2",
                "--methods",
                "nearest,ip_basic",
                "--json",
                str(out),
                "--projection-repeats",
                "3",
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    rows = {(r["method"], r["input"], r["gt"]): r for r in data["results"]}
    assert len(rows) == 8
    assert rows[("ip_basic", "full", "dense")]["mae_mm"] < rows[("ip_basic", "16beam", "dense")]["mae_mm"]


@pytest.fixture(scope="module")
def written_drive(tmp_path_factory) -> Path:
    """One frame of the seed-5 drive written by `depth-nodes synth`'s writer."""
    from depth_nodes.data.synthetic import write_drive

    return write_drive(tmp_path_factory.mktemp("drive"), seed=5, n_frames=1, progress=False)


def test_bench_frames_match_the_written_data_set(written_drive: Path) -> None:
    """The bench scores the same input and GT pixels that `depth-nodes synth` writes (PNG: 1/256 m)."""
    from depth_nodes.data.kitti_depth import list_frames

    written = list_frames(written_drive / "val_selection_cropped")[0].load()
    frame = next(bc.synthetic_frames(5, 1))
    for ours, theirs in (
        (frame.inputs["full"], written["sparse"]),
        (frame.gts["full"]["dense"], written["groundtruth"]),
    ):
        np.testing.assert_array_equal(ours > 0, theirs > 0)
        np.testing.assert_allclose(ours, theirs, atol=1 / 512 + 1e-4)
    np.testing.assert_array_equal(frame.image, written["image"])


def test_data_dir_with_ring_sidecar_adds_16beam(written_drive: Path) -> None:
    # the synthetic writer's velodyne_raw is the node's filtered projection: declared conditioned
    dc = list(bc.prepare_kitti_dc(written_drive / "val_selection_cropped", 1, seed=0, conditioned=True))[0]
    assert dc.conditioned == frozenset(dc.inputs)
    ref = next(bc.synthetic_frames(5, 1))
    assert set(dc.inputs) == {"scan", "held_out", "16beam"}
    assert set(dc.gts["16beam"]) == {"rings_48of64", "rings_16of32", "accumulated"}
    # same thinning as the in-memory protocol (up to PNG quantisation)
    np.testing.assert_array_equal(dc.inputs["16beam"] > 0, ref.inputs["16beam"] > 0)
    np.testing.assert_array_equal(dc.gts["16beam"]["rings_48of64"] > 0, ref.gts["16beam"]["held_out"] > 0)
    # 16 of 32: the rings half-way between the kept ones (ring % 4 == 2), a subset of the 48
    from depth_nodes.data.kitti_depth import list_frames
    from depth_nodes.data.synthetic import read_ring_png

    rings = read_ring_png(list_frames(written_drive / "val_selection_cropped")[0].velodyne_raw)
    r32 = dc.gts["16beam"]["rings_16of32"] > 0
    assert r32.any() and np.all(rings[r32] % 4 == 2) and np.all(dc.gts["16beam"]["rings_48of64"][r32] > 0)


def test_ring_protocol_by_ring_count() -> None:
    from depth_nodes.eval.bench_frames import ring_protocol

    sparse = np.zeros((64, 8), np.float32)
    sparse[:, ::2] = 10.0
    rings64 = np.repeat(np.arange(64, dtype=np.int16)[:, None], 8, axis=1)
    inp, gts = ring_protocol(sparse, rings64)
    assert np.all((inp > 0).any(axis=1) == (np.arange(64) % 4 == 0))
    assert np.all((gts["rings_16of32"] > 0).any(axis=1) == (np.arange(64) % 4 == 2))
    assert np.all((gts["rings_48of64"] > 0).any(axis=1) == (np.arange(64) % 4 != 0))
    inp32, gts32 = ring_protocol(sparse[:32], rings64[:32])  # a 32-ring sensor: even rings in, odd are GT
    assert set(gts32) == {"rings_16of32"}
    assert np.all((inp32 > 0).any(axis=1) == (np.arange(32) % 2 == 0))
    assert ring_protocol(sparse[:16], rings64[:16]) is None


def test_folder_of_layouts_and_real_docs_section(tmp_path: Path) -> None:
    camera, T = fake_calib()
    frame = next(bc.prepare_synthetic([next(fake_drive(2, 1))], camera, T))
    K = camera.crop(13, 23, 1216, 352).K
    for name in ("pandar64", "pandargt"):
        write_frame(
            tmp_path / "ps" / name, "d", 0, frame.image, frame.inputs["full"], frame.gts["full"]["dense"], K
        )
    (f,) = list(bc.prepare_dc(tmp_path / "ps"))[:1]
    assert {"pandar64/scan", "pandar64/held_out"} == set(f.inputs)
    assert len(list(bc.prepare_dc(tmp_path / "ps"))) == 2
    with pytest.raises(bc.DepthNodesError, match="no KITTI depth-completion layout"):
        list(bc.prepare_dc(tmp_path))  # no layout below tmp_path/ (ps/ holds them one level deeper)
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\nintro\n\n## Completion\n\n{bc.DOCS_START}\nsynthetic\n{bc.DOCS_END}\n")
    bc.update_docs(docs, "real rows v1", "kitti")
    bc.update_docs(docs, "real rows v2", "kitti")
    text = docs.read_text()
    assert text.index("real rows v2") < text.index("## Completion\n") and "v1" not in text
    assert text.count("## Completion on real data: kitti") == 1 and "synthetic" in text


def test_model_dirs_join_the_bench_as_methods(tmp_path: Path, capsys) -> None:
    """``--model NAME=DIR@torch``: a trained model directory is benched next to the registered methods."""
    pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0 then .[ml])")
    pytest.importorskip("safetensors", reason="safetensors not installed (pip install '.[ml]')")
    from depth_nodes import models

    camera, T = fake_calib()
    frame = next(bc.prepare_synthetic([next(fake_drive(2, 1))], camera, T))
    K = camera.crop(13, 23, 1216, 352).K
    write_frame(tmp_path / "dc", "drive", 0, frame.image, frame.inputs["full"], frame.gts["full"]["dense"], K)
    net = models.create("learned", {"width": 4, "levels": 1, "head_hidden": 4, "iterations": 2})
    models.save(net, tmp_path / "tiny")
    out = tmp_path / "b.json"
    argv = ["bench", "completion", "--data", str(tmp_path / "dc"), "--methods", "nearest", "--json", str(out)]
    assert main(argv + ["--model", f"tiny={tmp_path / 'tiny'}@torch"]) == 0
    data = json.loads(out.read_text())
    rows = {(r["method"], r["input"], r["gt"]): r for r in data["results"]}
    tiny, ref = rows[("tiny", "scan", "accumulated")], rows[("nearest", "scan", "accumulated")]
    assert 0 < tiny["mae_mm"] < 5 * ref["mae_mm"]  # an untrained net starts at its in-graph prefill
    assert f"--model tiny={tmp_path / 'tiny'}@torch" in data["config"]["command"]
    assert main(argv + ["--model", "tiny"]) == 1
    assert "expected NAME=DIR" in capsys.readouterr().err
    assert main(argv + ["--model", f"x={tmp_path / 'missing'}"]) == 1
    assert "is not a directory" in capsys.readouterr().err
