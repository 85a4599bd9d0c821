"""End to end: synthetic drive -> kitti2bag -> depth node process -> recorded bag -> metrics + report.

The accuracy bound is justified from the completer's own figures on the same frames: the node runs the
completer it reports in /diagnostics on the same projected scan, so its published depth must score like
that completer run offline on the same frames (within 10 % + 2 cm MAE / 5 cm RMSE for the node's
differences: measured LiDAR depth kept at its pixels, max_depth_m clipping, float32 transport).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from depth_nodes.data import kitti2bag as k2b
from depth_nodes.data import rosbag_io as rb

pytest.importorskip("rclpy")
REPO = Path(__file__).resolve().parents[1]
FRAMES = 6
PNGS = ("frame.png", "image.png", "sparse.png", "depth.png", "confidence.png", "error.png", "cloud.png",
        "latency.png", "timeline.png", "per_frame.png")  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = "44"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _demo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "depth_nodes.cli", "demo", *args],
        env=_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    # --rate 0.5: the test shares 2 cores with the rest of the suite; half speed keeps drops rare.
    proc = _demo("-o", str(out), "--frames", str(FRAMES), "--rate", "0.5")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


@pytest.mark.ros
@pytest.mark.slow
def test_demo_accounts_for_every_frame_and_writes_the_report(demo_run):
    out, proc = demo_run
    report = out / "report" / "index.html"
    assert str(report.resolve()) in proc.stdout
    html = report.read_text()
    for png in PNGS:
        assert (out / "report" / png).stat().st_size > 5000, png
        assert f'src="{png}"' in html, png
    res = json.loads((out / "report" / "results.json").read_text())
    acc = res["accounting"]
    assert acc["played"] == FRAMES
    assert acc["unaccounted"] == 0
    assert acc["published"] + acc["dropped"] + acc["not_published"] == FRAMES
    assert acc["published"] >= FRAMES // 2, acc
    lat = res["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] < 5000


@pytest.mark.ros
@pytest.mark.slow
def test_demo_bags_match_their_metadata(demo_run, tmp_path):
    out, _ = demo_run
    inp = rb.verify_bag(out / "input_bag")
    assert {
        t: inp.topics[t].count for t in (k2b.IMAGE_TOPIC, k2b.INFO_TOPIC, k2b.POINTS_TOPIC)
    } == dict.fromkeys((k2b.IMAGE_TOPIC, k2b.INFO_TOPIC, k2b.POINTS_TOPIC), FRAMES)
    assert inp.duration_ns == (FRAMES - 1) * 100_000_000  # 10 Hz synthetic stamps
    outb = rb.verify_bag(out / "output_bag")
    meta = yaml.safe_load((out / "output_bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap"
    types = {
        t["topic_metadata"]["name"]: t["topic_metadata"]["type"] for t in meta["topics_with_message_count"]
    }
    assert types == {
        "/depth/image": "sensor_msgs/msg/Image",
        "/depth/confidence": "sensor_msgs/msg/Image",
        "/depth/colorized": "sensor_msgs/msg/Image",
        "/depth/points": "sensor_msgs/msg/PointCloud2",
        "/depth/camera_info": "sensor_msgs/msg/CameraInfo",
        "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
    }
    res = json.loads((out / "report" / "results.json").read_text())
    acc = res["accounting"]
    assert outb.topics["/depth/image"].count == acc["published"] + acc["lidar_driven_outputs"]
    assert meta["message_count"] == sum(t["message_count"] for t in meta["topics_with_message_count"])
    # The synthetic drive also converts to sqlite3, and that bag holds the same messages.
    drive = k2b.load_drive(out / "synthetic" / "raw" / "2011_09_26" / "2011_09_26_drive_0001_sync")
    sq = rb.verify_bag(k2b.convert(drive, tmp_path / "sq", "sqlite3", progress=False))
    assert sq.storage == "sqlite3"
    assert {t: s.count for t, s in sq.topics.items()} == {t: s.count for t, s in inp.topics.items()}
    assert (sq.start_ns, sq.duration_ns) == (inp.start_ns, inp.duration_ns)


@pytest.mark.ros
@pytest.mark.slow
def test_published_depth_scores_like_the_completer_offline(demo_run):
    from depth_nodes import completion
    from depth_nodes.core.projection import scan_to_depth
    from depth_nodes.data.kitti_depth import crop_bottom_centre
    from depth_nodes.data.kitti_raw import RawDrive
    from depth_nodes.demo import ground_truth_lookup
    from depth_nodes.eval.metrics import depth_metrics, mean_metrics

    out, _ = demo_run
    res = json.loads((out / "report" / "results.json").read_text())
    name = res["diagnostics"]["estimator_guided"]
    completer = completion.create(name)
    raw = RawDrive(out / "synthetic" / "raw" / "2011_09_26" / "2011_09_26_drive_0001_sync")
    gt_of = ground_truth_lookup(out / "synthetic")
    index = {int(s): i for i, s in enumerate(raw.image_stamps_ns)}
    offline = []
    for f in res["frames"]:
        i = index[f["stamp_ns"]]
        sparse = scan_to_depth(raw.scan(i)[:, :3], raw.T_cam_velo, raw.camera()).depth
        pred = completer.complete(sparse, raw.image(i)).depth
        x0, y0 = crop_bottom_centre(pred.shape)
        win = (slice(y0, y0 + 352), slice(x0, x0 + 1216))
        offline.append(depth_metrics(pred[win], gt_of(f["stamp_ns"])[win]))
    ref = mean_metrics(offline)
    node = res["mean"]
    print(f"node ({name}): MAE {node['mae_mm']:.0f} mm RMSE {node['rmse_mm']:.0f} mm; "
          f"offline: MAE {ref['mae_mm']:.0f} mm RMSE {ref['rmse_mm']:.0f} mm")  # fmt: skip
    assert node["n_frames"] == len(res["frames"]) >= FRAMES // 2
    assert node["mae_mm"] <= 1.10 * ref["mae_mm"] + 20
    assert node["rmse_mm"] <= 1.10 * ref["rmse_mm"] + 50
    assert node["delta1"] >= ref["delta1"] - 0.02
    assert np.isfinite(node["irmse_per_km"])


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("make", "needle"),
    [
        ("missing", "bag not found"),
        ("empty", "empty"),
        ("wrong_type", "has type std_msgs/msg/String, expected sensor_msgs/msg/Image"),
        ("truncated", "truncated or corrupt"),
    ],
)
def test_demo_on_bad_bags_fails_before_starting_anything(tmp_path, make, needle):
    bag = tmp_path / "bag"
    if make == "empty":
        with rb.BagWriteSession(bag) as w:
            w.add_topic(k2b.IMAGE_TOPIC, "sensor_msgs/msg/Image")
    elif make == "wrong_type":
        with rb.BagWriteSession(bag) as w:
            w.add_topic(k2b.IMAGE_TOPIC, "std_msgs/msg/String")
            w.write(k2b.IMAGE_TOPIC, 1, rb.msg_class("std_msgs/msg/String")(data="not an image"))
    elif make == "truncated":
        with rb.BagWriteSession(bag) as w:
            w.add_topic("/x", "std_msgs/msg/String")
            for i in range(50):
                w.write("/x", i, rb.msg_class("std_msgs/msg/String")(data="x" * 100))
        data = bag / "bag.mcap"
        data.write_bytes(data.read_bytes()[:300])
    proc = _demo("-o", str(tmp_path / "out"), "--bag", str(bag), timeout=60)
    assert proc.returncode == 1
    assert needle in proc.stderr and "error" in proc.stderr
    assert not (tmp_path / "out" / "output_bag").exists()
    assert not (tmp_path / "out" / "report").exists()


@pytest.mark.ros
@pytest.mark.slow
def test_demo_on_a_user_bag_reports_without_metrics(demo_run, tmp_path):
    out, _ = demo_run
    proc = _demo(
        "-o", str(tmp_path / "user"), "--bag", str(out / "input_bag"), "--frames", "3", "--rate", "0.5"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no ground truth" in proc.stdout
    res = json.loads((tmp_path / "user" / "report" / "results.json").read_text())
    assert res["mean"] == {}
    assert res["accounting"]["played"] == 3 and res["accounting"]["unaccounted"] == 0
    assert "No ground truth" in (tmp_path / "user" / "report" / "index.html").read_text()
    assert not (tmp_path / "user" / "synthetic").exists()
