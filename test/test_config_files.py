"""The shipped config files (top-level ``config/``): parameter files, the RViz config, the Fast DDS profiles.

What these files hold is checked here; that the launch files load them into a running node is checked by
``test_launch_files.py`` (launch run for real from a colcon install).
"""

from __future__ import annotations

import ast
import fnmatch
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from depth_nodes.ros import params
from depth_nodes.ros.node_main import TOPICS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"  # the one canonical copy (package data of depth_nodes.config; also installed to share/)


def test_config_is_one_top_level_copy_that_setup_py_ships() -> None:
    """The package card's layout: config/ beside depth_nodes/, no second copy inside the package; every file
    matches setup.py's CONFIG_GLOBS (what it ships; test_install / test_colcon_install check real installs)."""
    assert not (ROOT / "depth_nodes" / "config").exists()
    names = sorted(p.name for p in CONFIG.iterdir() if p.is_file())
    assert names == ["depth_nodes.rviz", "depth_nodes.yaml", "fastdds_shm.xml", "fastdds_udp.xml", "kitti.yaml"]
    tree = ast.parse((ROOT / "setup.py").read_text())
    (globs,) = [
        ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
        for t in n.targets if getattr(t, "id", "") == "CONFIG_GLOBS"
    ]  # fmt: skip
    assert all(any(fnmatch.fnmatch(n, g) for g in globs) for n in names), (names, globs)


def test_rviz_config_shows_image_depth_and_cloud() -> None:
    rviz = yaml.safe_load((CONFIG / "depth_nodes.rviz").read_text())
    displays = rviz["Visualization Manager"]["Displays"]
    topics = {d["Class"].split("/")[-1] + ":" + d["Topic"]["Value"] for d in displays if "Topic" in d}
    assert "Image:/kitti/camera_color_left/image_raw" in topics
    assert f"Image:/{TOPICS['colorized']}" in topics
    assert f"PointCloud2:/{TOPICS['cloud']}" in topics
    cloud = next(d for d in displays if d.get("Topic", {}).get("Value") == f"/{TOPICS['cloud']}")
    assert cloud["Color Transformer"] == "RGB8"
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == "camera_color_left"


def test_parameter_files_hold_only_known_valid_parameters() -> None:
    base = yaml.safe_load((CONFIG / "depth_nodes.yaml").read_text())["/**"]["ros__parameters"]
    kitti = yaml.safe_load((CONFIG / "kitti.yaml").read_text())["/**"]["ros__parameters"]
    assert set(base) == {s.name for s in params.SPECS}  # the defaults file lists every parameter
    assert params.from_values(base) == params.from_values({})  # ... with the code's defaults
    merged = params.from_values({**base, **kitti})
    assert merged.lidar_frame == "velo_link"
    from depth_nodes.data.kitti_calib import compose_T_cam_velo

    # The hard-coded KITTI matrix is the devkit composition of the 2011_09_26 calibration.
    P_rect_02 = [721.5377, 0, 609.5593, 44.85728, 0, 721.5377, 172.854, 0.2163791, 0, 0, 1, 0.002745884]
    R_rect_00 = [0.9999239, 0.00983776, -0.007445048, -0.009869795, 0.9999421, -0.004278459, 0.007402527,
                 0.004351614, 0.9999631]  # fmt: skip
    R = [0.007533745, -0.9999714, -0.000616602, 0.01480249, 0.0007280733, -0.9998902, 0.9998621, 0.00752379,
         0.01480755]  # fmt: skip
    T = [-0.004069766, -0.07631618, -0.2717806]
    import numpy as np

    M = compose_T_cam_velo(np.reshape(P_rect_02, (3, 4)), R_rect_00, R, T)
    np.testing.assert_allclose(np.reshape(merged.lidar_to_camera_matrix, (4, 4)), M, atol=1e-8)


def test_fastdds_profile_has_a_64mb_shared_memory_segment() -> None:
    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(CONFIG / "fastdds_shm.xml").getroot()
    shm = [
        d
        for d in root.iterfind(".//f:transport_descriptor", ns)
        if d.findtext("f:type", namespaces=ns) == "SHM"
    ]
    assert len(shm) == 1 and int(shm[0].findtext("f:segment_size", namespaces=ns)) == 64 * 1024 * 1024
    part = root.find(".//f:participant", ns)
    assert part.get("is_default_profile") == "true"
    ids = [e.text for e in part.iterfind(".//f:userTransports/f:transport_id", ns)]
    assert shm[0].findtext("f:transport_id", namespaces=ns) in ids and len(ids) == 2  # + UDP for other hosts


def test_fastdds_udp_profile_is_udp_only_with_large_buffers_and_fast_repair() -> None:
    """What the UDP loss measurements (docs/node_bench.md) rest on: UDPv4 only (what crosses hosts), large
    socket buffers, and a heartbeat period far below Fast DDS's 3 s default (a lost fragment of a reliable
    1-2 MB message is repaired only after the writer's next heartbeat)."""
    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(CONFIG / "fastdds_udp.xml").getroot()
    (desc,) = root.iterfind(".//f:transport_descriptor", ns)
    assert desc.findtext("f:type", namespaces=ns) == "UDPv4"
    for tag in ("sendBufferSize", "receiveBufferSize"):
        assert int(desc.findtext(f"f:{tag}", namespaces=ns)) >= 16 * 2**20, tag
    part = root.find(".//f:participant", ns)
    assert part.get("is_default_profile") == "true"
    assert part.findtext(".//f:useBuiltinTransports", namespaces=ns) == "false"
    ids = [e.text for e in part.iterfind(".//f:userTransports/f:transport_id", ns)]
    assert ids == [desc.findtext("f:transport_id", namespaces=ns)]
    for tag in ("sendSocketBufferSize", "listenSocketBufferSize"):
        assert int(part.findtext(f".//f:{tag}", namespaces=ns)) >= 16 * 2**20, tag
    writer = root.find(".//f:data_writer", ns)
    assert writer.get("is_default_profile") == "true"
    hb = writer.find(".//f:times/f:heartbeatPeriod", ns)
    period_s = int(hb.findtext("f:sec", namespaces=ns)) + int(hb.findtext("f:nanosec", namespaces=ns)) * 1e-9
    assert 0 < period_s <= 0.1
