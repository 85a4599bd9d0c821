"""End to end: synthetic drive -> kitti2bag -> depth node process -> recorded bag -> metrics + report.

The accuracy bound is justified from the completer's own figures on the same frames: the node runs the
completer it reports in /diagnostics on the same projected scan, so its published depth must score like
that completer run offline on the same frames (within 10 % + 2 cm MAE / 5 cm RMSE for the node's
differences: measured LiDAR depth kept at its pixels, max_depth_m clipping, float32 transport).
"""

from __future__ import annotations

import json
import os
import random
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
    # A domain of its own per demo run (conftest's session domains are 1-100): the fixture's demo and the
    # user-bag demo after it once shared one, and the second node counted a 4th image of 3 played.
    env["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(101, 200))
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
    # The shipped defaults: recorded timing (rate 1) with flow control, shared-memory transport.
    proc = _demo("-o", str(out), "--frames", str(FRAMES))
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
    assert (acc["played"], acc["published"], acc["dropped"], acc["not_published"], acc["unaccounted"]) == (
        FRAMES, FRAMES, 0, 0, 0,
    ), acc  # fmt: skip
    assert f"PASS: {FRAMES} played, {FRAMES} published, 0 unaccounted" in proc.stdout
    assert "flow control on" in proc.stdout and "Fast DDS shared memory" in html
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
        "/depth/image_rect": "sensor_msgs/msg/Image",
        "/depth/confidence": "sensor_msgs/msg/Image",
        "/depth/colorized": "sensor_msgs/msg/Image",
        "/depth/points": "sensor_msgs/msg/PointCloud2",
        "/depth/camera_info": "sensor_msgs/msg/CameraInfo",
        "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
    }
    res = json.loads((out / "report" / "results.json").read_text())
    acc = res["accounting"]
    assert outb.topics["/depth/image_rect"].count == acc["published"] + acc["lidar_driven_outputs"]
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
    assert node["n_frames"] == len(res["frames"]) == FRAMES
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
        "-o", str(tmp_path / "user"), "--bag", str(out / "input_bag"), "--frames", "3"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no ground truth" in proc.stdout
    res = json.loads((tmp_path / "user" / "report" / "results.json").read_text())
    assert res["mean"] == {}
    assert res["accounting"]["played"] == res["accounting"]["published"] == 3
    assert res["accounting"]["unaccounted"] == 0
    assert "No ground truth" in (tmp_path / "user" / "report" / "index.html").read_text()
    assert not (tmp_path / "user" / "synthetic").exists()


# ---------------------------------------------------------------------------------------------- verdict, flow
def _acc(**kw) -> dict:
    acc = {"played": 20, "received_by_node": 20, "published": 20, "dropped": 0, "not_published": 0,
           "lidar_driven_outputs": 0, "rejected_messages_in_callbacks": 0, "unaccounted": 0}  # fmt: skip
    return {**acc, **kw}


def test_failures_name_every_cause_and_pass_only_when_all_published() -> None:
    from depth_nodes.demo import failures

    log = Path("logs/node.log")
    assert failures(_acc(), {}, log) == []
    diag = {"stage_estimate_p50_ms": "180.0", "last_not_published_reason": "no LiDAR scan received yet",
            "mode": "monocular"}  # fmt: skip
    dropped = failures(_acc(published=17, dropped=3), diag, log)
    assert len(dropped) == 1 and "3 frame(s) dropped" in dropped[0] and "estimate 180" in dropped[0]
    (np_,) = failures(_acc(published=2, not_published=18), diag, log)
    assert "18 frame(s) not published" in np_ and "no LiDAR scan received yet" in np_ and "monocular" in np_
    (lost,) = failures(_acc(published=18, unaccounted=2, received_by_node=18), diag, log)
    assert "2 frame(s) neither published nor counted" in lost and "took in 18" in lost
    assert len(failures(_acc(published=13, not_published=5, unaccounted=2), diag, log)) == 2
    assert failures(_acc(played=0, published=0, received_by_node=0), {}, log) == ["no image was played"]


class _FakeMonitor:
    """Diagnostics as the node would report them: ``done`` images finished so far."""

    def __init__(self) -> None:
        self.done = 0

    def latest(self):
        return 1, {"frames_published": str(self.done), "drops": "0", "frames_not_published": "0"}


def test_flow_control_holds_the_player_until_the_node_finished_every_earlier_image() -> None:
    import threading
    import time

    from depth_nodes.demo_run import FlowControl

    mon = _FakeMonitor()
    flow = FlowControl(mon, alive=lambda: None, max_wait_s=5.0)
    t0 = time.monotonic()
    flow.after_image()  # the first image: nothing earlier to wait for
    assert time.monotonic() - t0 < 0.05 and flow.holds == 0
    threading.Timer(0.3, lambda: setattr(mon, "done", 1)).start()
    t0 = time.monotonic()
    flow.after_image()  # the second: held until the node has finished the first
    assert 0.25 < time.monotonic() - t0 < 2.0 and flow.holds == 1
    # An image the node never counts is written off after max_wait_s and does not hold later ones.
    flow.max_wait_s = 0.2
    flow.after_image()  # needs 2 done, only 1: written off
    assert flow.written_off == 1
    mon.done = 2
    t0 = time.monotonic()
    flow.after_image()  # needs 3 - 1 written off = 2: goes on at once
    assert time.monotonic() - t0 < 0.05
    assert "1 image(s) never counted" in flow.summary()


def test_flow_control_stops_when_the_node_dies() -> None:
    from depth_nodes.demo_run import DemoError, FlowControl

    def dead() -> None:
        raise DemoError("the depth node exited (code 1)")

    flow = FlowControl(_FakeMonitor(), alive=dead)
    flow.after_image()
    with pytest.raises(DemoError, match="exited"):
        flow.after_image()
