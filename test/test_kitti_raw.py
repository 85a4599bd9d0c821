"""KITTI raw drives: exact timestamps, writer -> reader round trip, .bin/.txt scans, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.data.kitti_calib import compose_T_cam_velo, write_cam_to_cam, write_velo_to_cam
from depth_nodes.data.kitti_raw import (
    RawDrive,
    format_timestamp,
    parse_timestamp,
    read_timestamps,
    read_velodyne,
    write_raw_frame,
    write_raw_timestamps,
    write_velodyne,
)
from depth_nodes.data.synthetic import P_RECT_02, R_RECT_00, VELO_R, VELO_T, cam_to_cam_dict
from depth_nodes.errors import DataFormatError

STAMP0 = 1317042145_964389445  # 2011-09-26 13:02:25.964389445 UTC


def test_timestamp_parses_to_exact_nanoseconds():
    assert parse_timestamp("2011-09-26 13:02:25.964389445") == STAMP0
    assert parse_timestamp("  2011-09-26 13:02:25.964389445\n") == STAMP0
    # 1 ns apart stays 1 ns apart (a float64 of seconds would round this away).
    assert parse_timestamp("2011-09-26 13:02:25.964389446") - STAMP0 == 1
    assert parse_timestamp("2011-09-26 13:02:25.5") == 1317042145_500000000
    assert parse_timestamp("2011-09-26 13:02:25") == 1317042145_000000000
    assert format_timestamp(STAMP0) == "2011-09-26 13:02:25.964389445"
    assert format_timestamp(1317042145_000000001) == "2011-09-26 13:02:25.000000001"
    for bad in (
        "2011-09-26T13:02:25.1",
        "yesterday",
        "2011-09-26 13:02:25.12345678901",
        "2011-09-26 13:02:25.x",
    ):
        with pytest.raises(DataFormatError, match="timestamp"):
            parse_timestamp(bad)


def test_read_timestamps_names_file_and_line(tmp_path):
    p = tmp_path / "timestamps.txt"
    p.write_text("2011-09-26 13:02:25.964389445\nnot a time\n")
    with pytest.raises(DataFormatError, match=r"timestamps.txt:2"):
        read_timestamps(p)
    with pytest.raises(DataFormatError, match="not found"):
        read_timestamps(tmp_path / "missing.txt")


def _write_drive(root, n=3, suffix=".bin", name="2011_09_26_drive_0005_sync", seed=0):
    rng = np.random.default_rng(seed)
    date = root / name[:10]
    drive = date / name
    drive.mkdir(parents=True)
    write_cam_to_cam(date / "calib_cam_to_cam.txt", cam_to_cam_dict())
    write_velo_to_cam(date / "calib_velo_to_cam.txt", VELO_R, VELO_T)
    frames = []
    for i in range(n):
        img = rng.integers(0, 256, (375, 1242, 3), dtype=np.uint8)
        pts = (rng.normal(0, 10, (1000 + 10 * i, 4))).astype(np.float32)
        rings = rng.integers(0, 64, pts.shape[0]).astype(np.int16)
        oxts = rng.normal(size=30)
        write_raw_frame(drive, i, img, pts, rings, oxts, velodyne_suffix=suffix)
        frames.append((img, pts, rings, oxts))
    stamps = STAMP0 + np.arange(n, dtype=np.int64) * 103_456_789
    write_raw_timestamps(drive, stamps, stamps + 7, oxts_stamps_ns=stamps)
    return drive, frames, stamps


def test_raw_writer_reader_round_trip(tmp_path):
    drive_dir, frames, stamps = _write_drive(tmp_path)
    drive = RawDrive(drive_dir)
    assert drive.n_frames == drive.n_scans == 3 and drive.synced and drive.has_oxts
    np.testing.assert_array_equal(drive.image_stamps_ns, stamps)
    np.testing.assert_array_equal(drive.scan_stamps_ns, stamps + 7)
    np.testing.assert_array_equal(drive.oxts_stamps_ns, stamps)
    start = read_timestamps(drive_dir / "velodyne_points" / "timestamps_start.txt")
    np.testing.assert_array_equal(start, stamps + 7 - 50_000_000)
    for i, (img, pts, rings, oxts) in enumerate(frames):
        np.testing.assert_array_equal(drive.image(i), img)
        np.testing.assert_array_equal(drive.scan(i), pts)
        np.testing.assert_array_equal(drive.rings(i), rings)
        np.testing.assert_array_equal(drive.oxts(i), oxts)
    cam = drive.camera()
    assert (cam.width, cam.height) == (1242, 375)
    np.testing.assert_allclose(cam.K, P_RECT_02[:, :3])
    np.testing.assert_allclose(
        drive.T_cam_velo, compose_T_cam_velo(P_RECT_02, R_RECT_00, VELO_R, VELO_T), atol=1e-9
    )


def test_txt_velodyne_and_extract_layout(tmp_path):
    drive_dir, frames, _ = _write_drive(tmp_path, n=2, suffix=".txt", name="2011_09_26_drive_0005_extract")
    # Unsynced: one more scan than images is legal.
    extra = frames[0][1][:5]
    write_velodyne(drive_dir / "velodyne_points" / "data" / "0000000002.txt", extra)
    stamps = STAMP0 + np.arange(3) * 100_000_000
    write_raw_timestamps(drive_dir, stamps[:2], stamps)
    drive = RawDrive(drive_dir)
    assert not drive.synced and drive.n_frames == 2 and drive.n_scans == 3
    np.testing.assert_allclose(drive.scan(0), frames[0][1], atol=1e-5)
    np.testing.assert_allclose(drive.scan(2), extra, atol=1e-5)
    assert read_velodyne(drive_dir / "velodyne_points" / "data" / "0000000000.txt").dtype == np.float32


def test_bin_and_txt_readers_agree(tmp_path):
    pts = np.array([[1.5, -2.25, 0.125, 0.5], [10.0, 20.0, -1.0, 0.0]], np.float32)
    write_velodyne(tmp_path / "a.bin", pts)
    assert (tmp_path / "a.bin").stat().st_size == 32
    (tmp_path / "a.txt").write_text("1.5 -2.25 0.125 0.5\n10 20 -1 0\n")
    np.testing.assert_array_equal(read_velodyne(tmp_path / "a.bin"), pts)
    np.testing.assert_array_equal(read_velodyne(tmp_path / "a.txt"), pts)
    (tmp_path / "b.txt").write_text("1 2 3\n")
    with pytest.raises(DataFormatError, match="4 values"):
        read_velodyne(tmp_path / "b.txt")
    (tmp_path / "a.pcd").write_text("x")
    with pytest.raises(DataFormatError, match="expected .bin or .txt"):
        read_velodyne(tmp_path / "a.pcd")


def test_corrupt_png_and_wrong_bin_size(tmp_path):
    drive_dir, _, _ = _write_drive(tmp_path, n=2)
    (drive_dir / "image_02" / "data" / "0000000001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    bin_path = drive_dir / "velodyne_points" / "data" / "0000000000.bin"
    bin_path.write_bytes(bin_path.read_bytes()[:-3])
    drive = RawDrive(drive_dir)
    drive.image(0)
    with pytest.raises(DataFormatError, match=r"unreadable.*0000000001.png"):
        drive.image(1)
    with pytest.raises(DataFormatError, match="not a multiple of 16"):
        drive.scan(0)
    drive.scan(1)


def test_layout_errors(tmp_path):
    drive_dir, _, _ = _write_drive(tmp_path, n=2)
    # Timestamp count mismatch.
    ts = drive_dir / "image_02" / "timestamps.txt"
    good = ts.read_text()
    ts.write_text(good.splitlines()[0] + "\n")
    with pytest.raises(DataFormatError, match="1 timestamps for 2 data files"):
        RawDrive(drive_dir)
    # Missing timestamps.
    ts.unlink()
    with pytest.raises(DataFormatError, match=r"timestamps file not found.*image_02"):
        RawDrive(drive_dir)
    ts.write_text(good)
    # Synced drive with a missing scan.
    (drive_dir / "velodyne_points" / "data" / "0000000001.bin").unlink()
    with pytest.raises(DataFormatError, match="2 timestamps for 1 data files"):
        RawDrive(drive_dir)
    vts = drive_dir / "velodyne_points" / "timestamps.txt"
    vts.write_text(vts.read_text().splitlines()[0] + "\n")
    with pytest.raises(DataFormatError, match="synced drive has 2 images but 1 scans"):
        RawDrive(drive_dir)
    # Missing calibration.
    drive2, _, _ = _write_drive(tmp_path / "b", n=1)
    (drive2.parent / "calib_velo_to_cam.txt").unlink()
    with pytest.raises(DataFormatError, match="calib_velo_to_cam.txt"):
        RawDrive(drive2)
    with pytest.raises(DataFormatError, match="not found"):
        RawDrive(tmp_path / "nope")
    # Missing rings sidecar is not an error: rings() is None.
    drive3, _, _ = _write_drive(tmp_path / "c", n=1)
    (drive3 / "velodyne_points" / "rings" / "0000000000.npy").unlink()
    assert RawDrive(drive3).rings(0) is None
