"""KITTI calibration files: parsing hand-written files in KITTI's exact format, composition, errors."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.data.kitti_calib import (
    find_calib_files,
    kitti_velo_to_cam,
    read_cam_to_cam,
    read_velo_to_cam,
    write_cam_to_cam,
    write_velo_to_cam,
)
from depth_nodes.errors import CalibrationError, DataFormatError

# Abridged from KITTI 2011_09_26 (cam 0 and 2 only, exact text layout of the originals).
CAM_TO_CAM = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_00: 1.392000e+03 5.120000e+02
K_00: 9.842439e+02 0.000000e+00 6.900000e+02 0.000000e+00 9.808141e+02 2.331966e+02 0.000000e+00 0.000000e+00 1.000000e+00
D_00: -3.728755e-01 2.037299e-01 2.219027e-03 1.383707e-03 -7.233722e-02
R_00: 1.000000e+00 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00
T_00: 2.573699e-16 -1.059758e-16 1.614870e-16
S_rect_00: 1.242000e+03 3.750000e+02
R_rect_00: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
P_rect_00: 7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_02: 1.392000e+03 5.120000e+02
K_02: 9.597910e+02 0.000000e+00 6.960217e+02 0.000000e+00 9.569251e+02 2.241806e+02 0.000000e+00 0.000000e+00 1.000000e+00
D_02: -3.691481e-01 1.968681e-01 1.353473e-03 5.677587e-04 -6.770705e-02
R_02: 9.999758e-01 -5.267463e-03 -4.552439e-03 5.251945e-03 9.999804e-01 -3.413835e-03 4.570332e-03 3.389843e-03 9.999838e-01
T_02: 5.956621e-02 2.900141e-04 2.577209e-03
S_rect_02: 1.242000e+03 3.750000e+02
R_rect_02: 9.998817e-01 1.511453e-02 -2.841595e-03 -1.511724e-02 9.998853e-01 -9.338510e-04 2.827154e-03 9.766976e-04 9.999955e-01
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
"""

VELO_TO_CAM = """calib_time: 15-Mar-2012 11:37:16
R: 7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 9.998621e-01 7.523790e-03 1.480755e-02
T: -4.069766e-03 -7.631618e-02 -2.717806e-01
delta_f: 0.000000e+00 0.000000e+00
delta_c: 0.000000e+00 0.000000e+00
"""


@pytest.fixture
def calib_dir(tmp_path):
    date = tmp_path / "2011_09_26"
    (date / "2011_09_26_drive_0001_sync").mkdir(parents=True)
    (date / "calib_cam_to_cam.txt").write_text(CAM_TO_CAM)
    (date / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
    return date


def test_parse_cam_to_cam(calib_dir):
    c = read_cam_to_cam(calib_dir / "calib_cam_to_cam.txt", cams=(0, 2))
    assert c["calib_time"] == "09-Jan-2012 13:57:47"
    assert c["corner_dist"] == pytest.approx(0.0995)
    assert c["P_rect_02"].shape == (3, 4) and c["K_00"].shape == (3, 3) and c["D_02"].shape == (5,)
    assert c["P_rect_02"][0, 3] == pytest.approx(44.85728)
    assert c["P_rect_02"][2, 3] == pytest.approx(2.745884e-03)
    assert c["R_rect_00"][1, 0] == pytest.approx(-9.869795e-03)
    np.testing.assert_array_equal(c["S_rect_02"], [1242, 375])


def test_parse_velo_to_cam(calib_dir):
    R, T = read_velo_to_cam(calib_dir / "calib_velo_to_cam.txt")
    assert R.shape == (3, 3) and R[2, 0] == pytest.approx(0.9998621)
    np.testing.assert_allclose(T, [-4.069766e-03, -7.631618e-02, -2.717806e-01])


def test_velo_to_cam_composition_matches_hand_computation(calib_dir):
    camera, T = kitti_velo_to_cam(calib_dir, cam=2)
    assert (camera.width, camera.height) == (1242, 375)
    assert camera.fx == pytest.approx(721.5377) and camera.cy == pytest.approx(172.854)
    # By hand: T_cam2_rect0 translation = K^-1 P[:, 3] for an upper-triangular K with zero skew.
    fx, cx, cy = 721.5377, 609.5593, 172.854
    tz = 2.745884e-03
    t2 = np.array([(44.85728 - cx * tz) / fx, (0.2163791 - cy * tz) / fx, tz])
    R_rect = np.array(
        [
            [9.999239e-01, 9.837760e-03, -7.445048e-03],
            [-9.869795e-03, 9.999421e-01, -4.278459e-03],
            [7.402527e-03, 4.351614e-03, 9.999631e-01],
        ]
    )
    R, Tv = read_velo_to_cam(calib_dir / "calib_velo_to_cam.txt")
    np.testing.assert_allclose(T[:3, :3], R_rect @ R, atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], R_rect @ Tv + t2, atol=1e-12)
    np.testing.assert_array_equal(T[3], [0, 0, 0, 1])
    # The LiDAR sits 0.27 m behind and 0.08 m above camera 0: a point 10 m ahead of it is 9.73 m deep.
    p = T @ [10.0, 0.0, 0.0, 1.0]
    assert p[2] == pytest.approx(9.73, abs=0.01)
    assert -0.2 < p[1] < 0.1 and abs(p[0]) < 0.1


def test_find_calib_files_from_drive_dir_date_dir_and_pair(calib_dir):
    drive = calib_dir / "2011_09_26_drive_0001_sync"
    expected = (calib_dir / "calib_cam_to_cam.txt", calib_dir / "calib_velo_to_cam.txt")
    assert find_calib_files(drive) == expected
    assert find_calib_files(calib_dir) == expected
    assert find_calib_files(expected) == expected
    # Files inside the drive directory take precedence.
    (drive / "calib_cam_to_cam.txt").write_text(CAM_TO_CAM)
    (drive / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
    assert find_calib_files(drive)[0] == drive / "calib_cam_to_cam.txt"


@pytest.mark.parametrize("key", ["P_rect_02", "S_rect_02", "R_rect_00"])
def test_missing_cam_key_names_key_and_file(calib_dir, key):
    path = calib_dir / "calib_cam_to_cam.txt"
    path.write_text(
        "".join(line + "\n" for line in CAM_TO_CAM.splitlines() if not line.startswith(key + ":"))
    )
    with pytest.raises(CalibrationError, match=key) as err:
        kitti_velo_to_cam(calib_dir, cam=2)
    assert "calib_cam_to_cam.txt" in str(err.value)


def test_missing_velo_key_and_bad_values(calib_dir):
    path = calib_dir / "calib_velo_to_cam.txt"
    path.write_text(VELO_TO_CAM.replace("T: ", "X: "))
    with pytest.raises(CalibrationError, match=r"'T'.*|calib_velo_to_cam") as err:
        kitti_velo_to_cam(calib_dir)
    assert "'T'" in str(err.value) and "calib_velo_to_cam.txt" in str(err.value)
    path.write_text(VELO_TO_CAM.replace("T: -4.069766e-03", "T: abc"))
    with pytest.raises(CalibrationError, match="non-numeric"):
        read_velo_to_cam(path)
    path.write_text(VELO_TO_CAM.replace("T: -4.069766e-03 ", "T: "))
    with pytest.raises(CalibrationError, match="needs 3 values, has 2"):
        read_velo_to_cam(path)
    path.write_text("R 1 2 3\n")
    with pytest.raises(CalibrationError, match="KEY: values"):
        read_velo_to_cam(path)


def test_missing_files(tmp_path):
    with pytest.raises(DataFormatError, match="calib_cam_to_cam.txt"):
        kitti_velo_to_cam(tmp_path)
    with pytest.raises(CalibrationError, match="not found"):
        read_cam_to_cam(tmp_path / "nope.txt")
    with pytest.raises(CalibrationError, match="0..3"):
        kitti_velo_to_cam(tmp_path, cam=5)


def test_writer_round_trip(calib_dir, tmp_path):
    c = read_cam_to_cam(calib_dir / "calib_cam_to_cam.txt", cams=(0, 2))
    R, T = read_velo_to_cam(calib_dir / "calib_velo_to_cam.txt")
    out = tmp_path / "out"
    out.mkdir()
    write_cam_to_cam(out / "calib_cam_to_cam.txt", c)
    write_velo_to_cam(out / "calib_velo_to_cam.txt", R, T)
    # The written files have KITTI's exact line layout.
    text = (out / "calib_cam_to_cam.txt").read_text().splitlines()
    assert text[0] == "calib_time: 09-Jan-2012 13:57:47" and text[1] == "corner_dist: 9.950000e-02"
    assert "P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01" in "\n".join(text)
    c2 = read_cam_to_cam(out / "calib_cam_to_cam.txt", cams=(0, 2))
    assert set(c2) == set(c)
    for k in c:
        np.testing.assert_array_equal(c2[k], c[k])
    cam_a, T_a = kitti_velo_to_cam(calib_dir)
    cam_b, T_b = kitti_velo_to_cam(out)
    np.testing.assert_array_equal(T_a, T_b)
    assert cam_a.same_as(cam_b)
