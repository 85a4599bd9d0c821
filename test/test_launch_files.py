"""Launch files, parameter files, the RViz config and the Fast DDS profile.

``launch`` / ``launch_ros`` are not installable from PyPI, so the launch files are checked statically
(parsed, every referenced file exists, remaps name the node's real topics, declared arguments are used and
used ones declared); where ``launch`` is importable they are also loaded and built.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from depth_nodes.ros import params
from depth_nodes.ros.node_main import NODE_NAME, TOPICS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
CONFIG = ROOT / "depth_nodes" / "config"  # the one canonical copy (package data; also installed to share/)
SHARE_SOURCES = {"config": CONFIG, "launch": LAUNCH}  # installed share/depth_nodes/<folder> -> source folder
LAUNCH_FILES = ("depth_nodes.launch.py", "kitti_playback.launch.py")
NODE_INPUTS = {TOPICS["image"], TOPICS["camera_info"], TOPICS["points"]}


class LaunchInfo(ast.NodeVisitor):
    """What a launch file declares, uses and references (from its syntax tree)."""

    def __init__(self, path: Path) -> None:
        self.tree = ast.parse(path.read_text(), str(path))
        self.declared: list[str] = []
        self.used: set[str] = set()
        self.paths: list[tuple[str, str]] = []  # (folder, file name) joined onto the package share
        self.remaps: list[str] = []
        self.include_args: set[str] = set()
        self.calls: dict[str, list[ast.Call]] = {}
        self.constants = {
            t.id: n.value.value
            for n in self.tree.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        self.visit(self.tree)

    def _str(self, node) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id]
        return None

    def visit_Call(self, node: ast.Call) -> None:
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        self.calls.setdefault(name, []).append(node)
        first = self._str(node.args[0]) if node.args else None
        if name == "DeclareLaunchArgument" and first:
            self.declared.append(first)
        elif name == "LaunchConfiguration" and first:
            self.used.add(first)
        elif name == "PathJoinSubstitution" and node.args and isinstance(node.args[0], ast.List):
            parts = [self._str(e) for e in node.args[0].elts[1:]]
            if len(parts) == 2 and all(parts):
                self.paths.append((parts[0], parts[1]))
        for kw in node.keywords:
            if kw.arg == "remappings" and isinstance(kw.value, ast.List):
                self.remaps += [self._str(t.elts[0]) for t in kw.value.elts if isinstance(t, ast.Tuple)]
            if kw.arg == "launch_arguments":
                d = kw.value.func.value if isinstance(kw.value, ast.Call) else kw.value
                if isinstance(d, ast.Dict):
                    self.include_args |= {self._str(k) for k in d.keys}
        self.generic_visit(node)

    def keyword(self, call: str, kw: str) -> list:
        return [k.value for c in self.calls.get(call, []) for k in c.keywords if k.arg == kw]


@pytest.fixture(scope="module")
def infos() -> dict[str, LaunchInfo]:
    return {name: LaunchInfo(LAUNCH / name) for name in LAUNCH_FILES}


def test_launch_files_parse_and_define_the_entry_point(infos) -> None:
    for name, info in infos.items():
        fns = [n.name for n in info.tree.body if isinstance(n, ast.FunctionDef)]
        assert "generate_launch_description" in fns, name


def _setup_constant(name: str):
    tree = ast.parse((ROOT / "setup.py").read_text())
    values = [
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == name for t in n.targets)
    ]
    assert len(values) == 1, f"setup.py defines {name} {len(values)} times"
    return values[0]


def test_referenced_files_exist(infos) -> None:
    config_globs = _setup_constant("CONFIG_GLOBS")
    setup = (ROOT / "setup.py").read_text()
    for name, info in infos.items():
        assert info.paths, name
        for folder, fname in info.paths:
            assert (SHARE_SOURCES[folder] / fname).is_file(), (
                f"{name} references {folder}/{fname}, which does not exist in {SHARE_SOURCES[folder]}"
            )
            # Installed by setup.py's data_files (the install tests check a real install space too).
            if folder == "config":
                assert any(fnmatch.fnmatch(fname, g) for g in config_globs), (
                    f"setup.py does not install {fname}"
                )
            else:
                assert re.search(r'glob\("launch/\*\.launch\.py', setup), f"setup.py does not install {fname}"


def test_declared_arguments_are_used_and_used_ones_declared(infos) -> None:
    for name, info in infos.items():
        assert len(info.declared) == len(set(info.declared)), name
        assert set(info.declared) == info.used, (
            f"{name}: declared {info.declared} vs used {sorted(info.used)}"
        )


def test_remaps_name_the_node_topics_and_executable_exists(infos) -> None:
    main = infos["depth_nodes.launch.py"]
    assert set(main.remaps) == NODE_INPUTS
    assert [main._str(k) for k in main.keyword("Node", "package")] == ["depth_nodes"]
    assert [main._str(k) for k in main.keyword("Node", "executable")] == [NODE_NAME]
    assert f"{NODE_NAME} = depth_nodes.ros.depth_node:main" in (ROOT / "setup.py").read_text()
    assert "<name>depth_nodes</name>" in (ROOT / "package.xml").read_text()
    # The playback file passes only arguments the included file declares, and kitti2bag's topic names.
    play = infos["kitti_playback.launch.py"]
    assert play.include_args <= set(main.declared)
    assert {play.constants["IMAGE"], play.constants["CAMERA_INFO"], play.constants["POINTS"]} == {
        "/kitti/camera_color_left/image_raw",
        "/kitti/camera_color_left/camera_info",
        "/kitti/velo/pointcloud",
    }


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


def test_launch_files_build_with_real_launch() -> None:
    pytest.importorskip("launch")
    pytest.importorskip("launch_ros")
    from launch import LaunchDescription

    for name in LAUNCH_FILES:
        spec = importlib.util.spec_from_file_location(name.replace(".", "_"), LAUNCH / name)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        ld = mod.generate_launch_description()
        assert isinstance(ld, LaunchDescription) and ld.entities


@pytest.mark.ros
def test_node_starts_with_both_parameter_files_and_remaps() -> None:
    from node_io import ros_env

    from depth_nodes.ros.tools.node_harness import NodeProcess, wait_until

    proc = NodeProcess(
        env=ros_env(),
        params_files=[CONFIG / "depth_nodes.yaml", CONFIG / "kitti.yaml"],
        extra_ros_args=[
            "-r",
            "image:=/kitti/camera_color_left/image_raw",
            "-r",
            "points:=/kitti/velo/pointcloud",
        ],
    )
    with proc:
        wait_until(lambda: "estimators:" in proc.output() or not proc.alive(), 30.0, "the node to start")
        assert proc.alive(), proc.output()
        assert "extrinsics source: parameters (lidar_to_camera_matrix)" in proc.output()
    proc.cleanup()


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


def test_launch_transport_argument_selects_each_shipped_profile() -> None:
    from launch_config import _Reader

    r = _Reader(LAUNCH / "depth_nodes.launch.py")
    assert r.value(r.defaults["transport"]) == "shm"
    chosen = {}
    for choice in ("shm", "udp", "default"):
        r.defaults["transport"] = ast.Constant(choice)
        chosen[choice] = [
            Path(str(r.value(a.args[1]))).name
            for a in r.calls("SetEnvironmentVariable")
            if r.value({k.arg: k.value for k in a.keywords}["condition"].args[0])
        ]
    assert chosen == {"shm": ["fastdds_shm.xml"], "udp": ["fastdds_udp.xml"], "default": []}


def test_kitti_playback_gets_its_profile_from_the_included_launch_file() -> None:
    """kitti_playback sets no profile itself: it forwards ``transport`` to depth_nodes.launch.py, whose
    SetEnvironmentVariable stays in the launch context after the (unscoped) include, so every action listed
    after the include (bag player, RViz) gets the same profile as the node."""
    from launch_config import _Reader

    r = _Reader(LAUNCH / "kitti_playback.launch.py")
    assert r.value(r.defaults["transport"]) == "shm"
    assert not r.calls("SetEnvironmentVariable")
    (include,) = r.calls("IncludeLaunchDescription")
    (source,) = include.args
    (path,) = source.args  # PathJoinSubstitution([share, "launch", name])
    assert [r.value(e) for e in path.args[0].elts[1:]] == ["launch", "depth_nodes.launch.py"]
    forwarded = {k.arg: k.value for k in include.keywords}["launch_arguments"].func.value
    args = dict(zip([r.value(k) for k in forwarded.keys], forwarded.values, strict=True))
    assert getattr(args["transport"], "id", "") == "transport"  # the LaunchConfiguration("transport") variable
    assert r.value(args["transport"]) == "shm"
    (ld,) = [c for c in r.calls("LaunchDescription") if c.args]
    order = [getattr(e, "id", None) for e in ld.args[0].elts]
    processes = [n for n in ("play", "play_loop", "rviz") if n in order]
    assert "depth" in order and len(processes) == 3
    assert all(order.index("depth") < order.index(n) for n in processes), order
