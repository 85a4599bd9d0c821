"""The colcon/ament install space: what ``ros2 run`` / ``ros2 launch`` find, and the installed node running.

The install space is ``$DEPTH_NODES_COLCON_INSTALL`` (``.ci/run`` builds one from the clean clone with Debian's
colcon), else a ``colcon build`` of a clean copy of this checkout (~3 s; ``colcon`` on PATH, else this
environment's ``python -m colcon``). A ``--symlink-install`` build (this environment's colcon) is checked for
the config lookup too. The node is started from the installed
``lib/depth_nodes/depth_node`` script (what ``ros2 run depth_nodes depth_node`` executes) with the installed
``share/depth_nodes/config/depth_nodes.yaml``, the installed package on ``PYTHONPATH`` and not this source
tree, and must publish depth for a test publisher. The script runs under this interpreter (the one with
rclpy): its ``#!/usr/bin/python3`` line names Debian's Python, which has no rclpy on a pip-only machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from install_tools import colcon_build, colcon_install, env_colcon

LAUNCH_FILES = ("depth_nodes.launch.py", "kitti_playback.launch.py")
CONFIG_FILES = ("depth_nodes.yaml", "kitti.yaml", "depth_nodes.rviz", "fastdds_shm.xml")


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    got = colcon_install(tmp_path_factory.mktemp("colcon_ws"))
    if isinstance(got, str):
        pytest.skip(got)
    assert got.is_dir(), f"no install prefix at {got}"
    return got


def _site_packages(prefix: Path) -> Path:
    (site,) = prefix.glob("lib/python3*/site-packages")
    return site


def _installed_env(prefix: Path) -> dict[str, str]:
    """This environment with the install space in front and the source tree out of it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(_site_packages(prefix))
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(filter(None, [str(prefix), os.environ.get("AMENT_PREFIX_PATH")]))
    return env


def test_install_space_holds_what_ros2_run_and_launch_need(prefix: Path) -> None:
    share = prefix / "share" / "depth_nodes"
    assert "<name>depth_nodes</name>" in (share / "package.xml").read_text()
    for name in LAUNCH_FILES:
        assert (share / "launch" / name).is_file(), name
    for name in CONFIG_FILES:
        assert (share / "config" / name).is_file(), name
        assert (_site_packages(prefix) / "depth_nodes" / "config" / name).is_file(), name  # package data
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "depth_nodes").is_file()
    exe = prefix / "lib" / "depth_nodes" / "depth_node"
    assert exe.is_file() and os.access(exe, os.X_OK)


def test_ament_index_finds_the_package_share(prefix: Path) -> None:
    pytest.importorskip("ament_index_python", reason="ament_index_python (ros-jazzy-ament-index-python)")
    probe = "from ament_index_python.packages import get_package_share_directory as g; print(g('depth_nodes'))"
    run = subprocess.run(
        [sys.executable, "-c", probe], env=_installed_env(prefix), capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert Path(run.stdout.strip()) == prefix / "share" / "depth_nodes"


def test_the_config_lookup_uses_the_installed_package(prefix: Path, tmp_path: Path) -> None:
    probe = "import depth_nodes.resources as r; print(r.config_path('depth_nodes.yaml'))"
    run = subprocess.run(
        [sys.executable, "-c", probe], env=_installed_env(prefix), cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert Path(run.stdout.strip()).is_relative_to(_site_packages(prefix))


@pytest.mark.ros
def test_installed_depth_node_publishes_depth(prefix: Path, tmp_path: Path) -> None:
    pytest.importorskip("rclpy")
    import node_scene as scene
    from node_io import TEST_PARAMS, SceneSender, depth_array, ros_env, stop_node

    from depth_nodes.ros.tools.node_harness import NodeClient, NodeProcess

    exe = prefix / "lib" / "depth_nodes" / "depth_node"

    class InstalledNode(NodeProcess):
        def command(self) -> list[str]:
            cmd = super().command()  # [python, -m, depth_nodes.cli, node, --ros-args, ...]
            return [sys.executable, str(exe), *cmd[cmd.index("--ros-args") :]]

    env = {**ros_env(), **_installed_env(prefix)}
    env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(prefix / "share" / "depth_nodes" / "config" / "fastdds_shm.xml")
    shipped = prefix / "share" / "depth_nodes" / "config" / "depth_nodes.yaml"
    proc = InstalledNode(TEST_PARAMS, env=env, params_files=[shipped]).start()
    client = NodeClient(outputs=("depth/image_rect",))
    try:
        client.wait_matched(30.0, inputs=("image", "camera_info", "points"))
        sender = SceneSender(client)
        depth = None
        for _ in range(8):  # the first frames can race discovery of the outputs
            stamp = sender.send()
            try:
                depth = depth_array(client.wait_stamp("depth/image_rect", stamp, timeout=5.0))
                break
            except TimeoutError:
                continue
        assert depth is not None, f"no depth/image_rect from the installed node:\n{proc.output()[-3000:]}"
        gt = scene.dense_depth()
        both = np.isfinite(gt) & np.isfinite(depth)
        assert both.sum() > 0.3 * depth.size
        assert np.median(np.abs(depth[both] - gt[both]) / gt[both]) < 0.02
    finally:
        stop_node(proc, client)
    # The script's sys.path: its own directory, then PYTHONPATH (the install space): ask the same interpreter.
    probe = "import depth_nodes.ros.depth_node as m; print(m.__file__)"
    run = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert Path(run.stdout.strip()).is_relative_to(_site_packages(prefix)), run.stdout + run.stderr


def test_symlink_install_finds_the_checkout_config(tmp_path: Path) -> None:
    """`colcon build --symlink-install` runs setuptools' legacy `develop`, which does not follow package_dir:
    the package is imported from colcon's build directory (its pythonpath_develop hook), whose config/ holds
    symlinks into the source's top-level config/; the share/ files link there too. ~8 s."""
    colcon = env_colcon()
    if isinstance(colcon, str):
        pytest.skip(colcon)
    if not (Path(__file__).resolve().parents[1] / ".git").exists():
        pytest.skip("needs a git checkout (to copy the repository's files)")
    prefix = colcon_build(tmp_path, colcon, symlink=True)
    src_config = tmp_path / "src" / "depth_nodes" / "config"
    for name in CONFIG_FILES:
        assert (prefix / "share" / "depth_nodes" / "config" / name).resolve() == src_config / name, name
    for name in LAUNCH_FILES:
        assert (prefix / "share" / "depth_nodes" / "launch" / name).is_file(), name
    # What `source install/setup.bash` puts on PYTHONPATH for a symlink install (hook/pythonpath_develop.dsv).
    dsv = tmp_path / "build" / "depth_nodes" / "share" / "depth_nodes" / "hook" / "pythonpath_develop.dsv"
    build_dir = dsv.read_text().strip().rsplit(";", 1)[-1]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = build_dir
    probe = "import depth_nodes.resources as r, json; print(json.dumps([r.__file__, str(r.config_path('kitti.yaml'))]))"
    run = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    module, kitti = (Path(p) for p in yaml.safe_load(run.stdout))
    assert module.is_relative_to(build_dir) and module.resolve() == src_config.parent / "depth_nodes" / "resources.py"
    assert kitti.resolve() == src_config / "kitti.yaml"

