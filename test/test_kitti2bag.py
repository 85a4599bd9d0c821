"""kitti2bag: topics, counts, stamps and geometry of the written bag; rosbag_io errors on bad bags."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from _bag_fixtures import HEIGHT, WIDTH, make_raw_drive, scaled_p_rect

from depth_nodes.cli import main
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.data import kitti2bag as k2b
from depth_nodes.data import rosbag_io as rb
from depth_nodes.data.kitti_calib import read_calib_file
from depth_nodes.data.kitti_raw import read_timestamps
from depth_nodes.msgs.camera_info import camera_info_to_model
from depth_nodes.msgs.cloud import pointcloud2_to_arrays
from depth_nodes.msgs.image import image_to_rgb

N = 3


def _convert(drive: Path, out: Path, *extra: str) -> int:
    return main(["kitti2bag", str(drive), "-o", str(out), *extra])


def _messages(bag: Path, topic: str) -> list:
    with rb.open_bag(bag) as reader:
        return [rb.deserialize(raw, t) for _, t, _, raw in rb.iter_messages(reader, bag, [topic])]


def _leftovers(out: Path) -> list[Path]:
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(out.name))


@pytest.fixture(scope="module")
def sync_drive(tmp_path_factory) -> Path:
    return make_raw_drive(tmp_path_factory.mktemp("raw"), n=N, layout="sync")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_sync_drive_metadata_matches_rosbag2_format(sync_drive, tmp_path, storage):
    out = tmp_path / "bag"
    assert _convert(sync_drive, out, "--storage", storage) == 0
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == storage
    assert meta["version"] == 9
    files = meta["relative_file_paths"]
    assert files == [f"bag{rb.STORAGE_SUFFIX[storage]}"] and (out / files[0]).is_file()
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    expected = {
        k2b.IMAGE_TOPIC: ("sensor_msgs/msg/Image", N),
        k2b.INFO_TOPIC: ("sensor_msgs/msg/CameraInfo", N),
        k2b.POINTS_TOPIC: ("sensor_msgs/msg/PointCloud2", N),
        k2b.TF_STATIC_TOPIC: ("tf2_msgs/msg/TFMessage", 1),
        k2b.TF_TOPIC: ("tf2_msgs/msg/TFMessage", N),
    }
    assert {k: (v["topic_metadata"]["type"], v["message_count"]) for k, v in topics.items()} == expected
    assert meta["message_count"] == sum(c for _, c in expected.values())
    assert (
        topics[k2b.TF_STATIC_TOPIC]["topic_metadata"]["offered_qos_profiles"][0]["durability"]
        == "transient_local"
    )
    # Start and duration: first/last stamp over all sensors, read back from the timestamps files.
    stamps = np.concatenate(
        [read_timestamps(sync_drive / s / "timestamps.txt") for s in ("image_02", "velodyne_points", "oxts")]
    )
    assert meta["starting_time"]["nanoseconds_since_epoch"] == stamps.min()
    assert meta["duration"]["nanoseconds"] == stamps.max() - stamps.min()
    # The storage file really holds what metadata.yaml says, and every message decodes.
    summary = rb.verify_bag(out)
    assert summary.storage == storage and summary.message_count == meta["message_count"]
    assert not (tmp_path / "bag.partial").exists()


def test_messages_carry_kitti_data_and_nanosecond_stamps(sync_drive, tmp_path):
    out = tmp_path / "bag"
    assert _convert(sync_drive, out) == 0
    images = _messages(out, k2b.IMAGE_TOPIC)
    stamps = read_timestamps(sync_drive / "image_02" / "timestamps.txt")
    assert [rb.stamp_to_ns(m.header.stamp) for m in images] == stamps.tolist()
    assert stamps[0] % 1000 == 375  # the fixture's stamps use all 9 decimals: no rounding to microseconds
    from depth_nodes.data.kitti_depth import read_rgb

    for i, msg in enumerate(images):
        assert (msg.encoding, msg.header.frame_id, msg.width, msg.height) == (
            "rgb8",
            "camera_color_left",
            WIDTH,
            HEIGHT,
        )
        np.testing.assert_array_equal(image_to_rgb(msg), read_rgb(sync_drive / f"image_02/data/{i:010d}.png"))
    clouds = _messages(out, k2b.POINTS_TOPIC)
    for i, msg in enumerate(clouds):
        assert msg.header.frame_id == "velo_link"
        assert [f.name for f in msg.fields] == ["x", "y", "z", "intensity"]
        raw = np.fromfile(sync_drive / f"velodyne_points/data/{i:010d}.bin", np.float32).reshape(-1, 4)
        cloud = pointcloud2_to_arrays(msg)
        np.testing.assert_array_equal(np.column_stack([cloud.xyz, cloud.intensity]), raw)


def test_camera_info_and_tf_static_reproduce_the_kitti_devkit_projection(sync_drive, tmp_path):
    """Projecting with CameraInfo.K and the /tf_static transform equals P_rect_02 R_rect_00 T_velo_to_cam X."""
    out = tmp_path / "bag"
    assert _convert(sync_drive, out) == 0
    info = _messages(out, k2b.INFO_TOPIC)[0]
    (tf_msg,) = _messages(out, k2b.TF_STATIC_TOPIC)
    tf = {(t.header.frame_id, t.child_frame_id): t for t in tf_msg.transforms}
    T_velo_cam = rb.transform_to_matrix(tf[("velo_link", "camera_color_left")].transform)
    assert ("imu_link", "velo_link") in tf
    assert info.distortion_model == "plumb_bob" and not np.any(info.d)
    np.testing.assert_allclose(info.r, np.eye(3).ravel())
    K = info.k.reshape(3, 3)
    np.testing.assert_allclose(info.p.reshape(3, 4), np.hstack([K, np.zeros((3, 1))]))

    pts = np.fromfile(sync_drive / "velodyne_points/data/0000000000.bin", np.float32).reshape(-1, 4)[:, :3]
    X = np.hstack([pts, np.ones((len(pts), 1))]).astype(np.float64)
    calib = read_calib_file(sync_drive.parent / "calib_cam_to_cam.txt")
    velo = read_calib_file(sync_drive.parent / "calib_velo_to_cam.txt")
    R_rect = np.eye(4)
    R_rect[:3, :3] = calib["R_rect_00"].reshape(3, 3)
    T_cam0_velo = np.vstack([np.hstack([velo["R"].reshape(3, 3), velo["T"][:, None]]), [0, 0, 0, 1]])
    ref = (scaled_p_rect() @ R_rect @ T_cam0_velo @ X.T).T
    ours = (K @ (np.linalg.inv(T_velo_cam) @ X.T)[:3]).T
    np.testing.assert_allclose(ours[:, :2] / ours[:, 2:], ref[:, :2] / ref[:, 2:], atol=2e-3)  # pixels
    np.testing.assert_allclose(ours[:, 2], ref[:, 2], atol=1e-3)  # depth (m): R_rect re-orthonormalised


def test_oxts_poses_start_at_identity_and_follow_heading(sync_drive, tmp_path):
    out = tmp_path / "bag"
    assert _convert(sync_drive, out) == 0
    tfs = [m.transforms[0] for m in _messages(out, k2b.TF_TOPIC)]
    assert all((t.header.frame_id, t.child_frame_id) == ("world", "imu_link") for t in tfs)
    T0, T2 = (rb.transform_to_matrix(t.transform) for t in (tfs[0], tfs[2]))
    np.testing.assert_allclose(T0, np.eye(4), atol=1e-9)
    yaw = np.arctan2(T2[1, 0], T2[0, 0])
    assert yaw == pytest.approx(0.02, abs=1e-6)  # fixture's yaw grows 0.01 rad per packet
    # Packet 2 moved 2e-5 deg north and 4e-5 deg east (at 49.015 deg N): Mercator-scaled metres
    east = np.cos(np.deg2rad(49.015)) * k2b.EARTH_RADIUS_M * np.deg2rad(4e-5)
    north = k2b.EARTH_RADIUS_M * np.deg2rad(2e-5)
    assert np.linalg.norm(T2[:3, 3]) == pytest.approx(np.hypot(east, north), rel=1e-4)
    assert T2[2, 3] == pytest.approx(0.0, abs=1e-9)  # same altitude


def test_extract_layout_unsynced_counts_and_distortion(tmp_path):
    drive = make_raw_drive(tmp_path / "raw", n=N, layout="extract", oxts=False)
    out = tmp_path / "bag"
    assert _convert(drive, out, "--storage", "sqlite3") == 0
    summary = rb.verify_bag(out)
    assert summary.topics[k2b.POINTS_TOPIC].count == N + 1
    assert summary.topics[k2b.IMAGE_TOPIC].count == N
    assert k2b.TF_TOPIC not in summary.topics
    info = _messages(out, k2b.INFO_TOPIC)[0]
    calib = read_calib_file(drive.parent / "calib_cam_to_cam.txt")
    np.testing.assert_allclose(info.d, calib["D_02"])
    np.testing.assert_allclose(info.k, calib["K_02"])
    np.testing.assert_allclose(info.r, calib["R_rect_02"])
    P = calib["P_rect_02"].reshape(3, 4)
    np.testing.assert_allclose(info.p.reshape(3, 4), np.hstack([P[:, :3], np.zeros((3, 1))]))
    # CameraInfo read as image_geometry does (raw: K, D after R^T) + /tf_static = KITTI's raw camera 2
    # projection: K_02, D_02 of [R_02 | T_02] T_cam0_velo X (OpenCV).
    (tf_msg,) = _messages(out, k2b.TF_STATIC_TOPIC)
    tf = {(t.header.frame_id, t.child_frame_id): t for t in tf_msg.transforms}
    T_velo_cam = rb.transform_to_matrix(tf[("velo_link", "camera_color_left")].transform)
    cam = camera_info_to_model(info, image_topic=k2b.IMAGE_TOPIC)
    assert cam.distortion_model == "plumb_bob"
    velo = read_calib_file(drive.parent / "calib_velo_to_cam.txt")
    T_raw = k2b.rigid_from(calib["R_02"].reshape(3, 3), calib["T_02"]) @ k2b.rigid_from(
        velo["R"].reshape(3, 3), velo["T"]
    )
    pts = np.array([[8.0, 1.0, -0.5], [15.0, -3.0, 0.2], [30.0, 4.0, 1.0]])
    ref, _ = cv2.projectPoints(
        pts.reshape(-1, 1, 3), cv2.Rodrigues(T_raw[:3, :3])[0], T_raw[:3, 3], calib["K_02"].reshape(3, 3),
        calib["D_02"],
    )  # fmt: skip
    sparse = scan_to_depth(pts, np.linalg.inv(T_velo_cam), cam, occlusion=None).depth
    ref = np.floor(ref.reshape(-1, 2) + 0.5).astype(int)
    z_raw = (pts @ T_raw[:3, :3].T + T_raw[:3, 3])[:, 2]
    np.testing.assert_allclose(sparse[ref[:, 1], ref[:, 0]], z_raw, rtol=1e-4)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda d: (d.parent / "calib_velo_to_cam.txt").unlink(), "calib_velo_to_cam.txt"),
        (lambda d: (d / "image_02" / "timestamps.txt").unlink(), "image_02/timestamps.txt"),
        (
            lambda d: (d / "velodyne_points/timestamps.txt").write_text("not a time\n"),
            "velodyne_points/timestamps.txt",
        ),
        (lambda d: (d / "image_02/data/0000000002.png").unlink(), "3 timestamps for 2 data files"),
        (lambda d: (d / "image_02/data/0000000002.png").write_bytes(b"\x89PNG broken"), "0000000002.png"),
        (lambda d: (d / "velodyne_points/data/0000000001.bin").write_bytes(b"\0" * 7), "0000000001.bin"),
        (
            lambda d: (d.parent / "calib_cam_to_cam.txt").write_text(
                (d.parent / "calib_cam_to_cam.txt").read_text().replace("P_rect_02", "P_rect_99")
            ),
            "P_rect_02",
        ),
    ],
    ids=[
        "no-velo-calib",
        "no-timestamps",
        "bad-timestamp",
        "count-mismatch",
        "corrupt-png",
        "truncated-scan",
        "no-P_rect_02",
    ],
)
def test_bad_drive_fails_clearly_and_leaves_no_bag(tmp_path, capsys, damage, needle):
    drive = make_raw_drive(tmp_path / "raw", n=N)
    damage(drive)
    out = tmp_path / "out" / "bag"
    out.parent.mkdir()
    assert _convert(drive, out) == 1
    err = capsys.readouterr().err
    assert "error" in err and needle in err
    assert _leftovers(out) == []


def test_existing_output_is_not_overwritten_without_flag(sync_drive, tmp_path, capsys):
    out = tmp_path / "bag"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    assert _convert(sync_drive, out) == 1
    assert "exists already" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "user data"
    assert _convert(sync_drive, out, "--overwrite") == 1  # not a bag: refused even with --overwrite
    assert (out / "keep.txt").exists()


# ---------------------------------------------------------------------------------------------- reading bad bags
@pytest.fixture(scope="module")
def good_bags(sync_drive, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    bags = {}
    for storage in ("mcap", "sqlite3"):
        drive = k2b.load_drive(sync_drive)
        bags[storage] = k2b.convert(drive, root / storage, storage, progress=False)
    return bags


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_is_reported_with_its_path(good_bags, tmp_path, storage):
    bag = tmp_path / "trunc"
    shutil.copytree(good_bags[storage], bag)
    data = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    data.rename(bag / f"trunc{data.suffix}")
    meta = (bag / "metadata.yaml").read_text().replace(f"{storage}{data.suffix}", f"trunc{data.suffix}")
    (bag / "metadata.yaml").write_text(meta)
    rb.verify_bag(bag)  # sanity: renamed copy is fine
    raw = (bag / f"trunc{data.suffix}").read_bytes()
    (bag / f"trunc{data.suffix}").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(rb.BagError, match="trunc"):
        rb.verify_bag(bag)


def test_garbage_and_missing_bags(tmp_path):
    with pytest.raises(rb.BagError, match="not found"):
        rb.read_summary(tmp_path / "nope")
    (tmp_path / "dir").mkdir()
    with pytest.raises(rb.BagError, match="no metadata.yaml"):
        rb.read_summary(tmp_path / "dir")
    (tmp_path / "dir" / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9}\n")
    with pytest.raises(rb.BagError, match="dir"):
        rb.read_summary(tmp_path / "dir")
    (tmp_path / "x.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 40)
    with pytest.raises(rb.BagError, match="x.mcap"):
        rb.verify_bag(tmp_path / "x.mcap")


def test_empty_bag_and_wrong_topic_type(tmp_path, good_bags):
    with rb.BagWriteSession(tmp_path / "empty") as bag:
        bag.add_topic("/kitti/velo/pointcloud", "sensor_msgs/msg/PointCloud2")
    with pytest.raises(rb.BagError, match="empty"):
        rb.verify_bag(tmp_path / "empty")
    summary = rb.read_summary(good_bags["mcap"])
    with pytest.raises(
        rb.TopicTypeError, match=r"/kitti/velo/pointcloud has type sensor_msgs/msg/PointCloud2"
    ):
        summary.require_topic(k2b.POINTS_TOPIC, "sensor_msgs/msg/Image")
    with pytest.raises(rb.BagError, match="/nope not in the bag"):
        summary.require_topic("/nope")


def test_write_session_aborts_on_error(tmp_path):
    out = tmp_path / "bag"
    with pytest.raises(RuntimeError), rb.BagWriteSession(out) as bag:
        bag.add_topic("/a", "std_msgs/msg/String")
        bag.write("/a", 1, rb.msg_class("std_msgs/msg/String")(data="x"))
        raise RuntimeError("boom")
    assert _leftovers(out) == []
