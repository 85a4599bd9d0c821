"""Install truth: the shipped config files (top-level ``config/``) are found in every install kind.

The lookup (``depth_nodes.resources``) is checked in the source tree, in a real wheel installed to a scratch
directory and imported from there (the way ``pip install .`` runs it), with the source tree out of reach, and
in an editable install (``pip install -e .``). The colcon/ament install spaces (plain and
``--symlink-install``) are checked by ``test_colcon_install.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from install_tools import tracked_copy

from depth_nodes import resources

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("depth_nodes.yaml", "kitti.yaml", "depth_nodes.rviz", "fastdds_shm.xml")


def test_every_shipped_config_file_is_found_and_parses() -> None:
    assert set(SHIPPED) <= set(resources.config_names())
    for name in SHIPPED:
        path = resources.config_path(name)
        assert path.is_file() and path.name == name
    params = resources.config_yaml(resources.PARAMS_FILE)["/**"]["ros__parameters"]
    assert params["completer"] == "guided"
    assert [p.name for p in resources.node_params_files()] == ["depth_nodes.yaml", "kitti.yaml"]


def test_missing_config_and_unknown_transport_name_the_problem() -> None:
    with pytest.raises(resources.ConfigNotFoundError, match="no_such.yaml"):
        resources.config_path("no_such.yaml")
    with pytest.raises(resources.ConfigNotFoundError, match="carrier_pigeon"):
        resources.fastdds_profile("carrier_pigeon")


def test_use_fastdds_profile_sets_the_environment_it_is_given() -> None:
    env: dict[str, str] = {}
    path = resources.use_fastdds_profile("shm", env)
    assert env[resources.PROFILES_ENV] == str(path) and path.name == "fastdds_shm.xml"
    assert env["RMW_FASTRTPS_USE_QOS_FROM_XML"] == "0"


def test_wheel_install_finds_config_without_the_source_tree(tmp_path: Path) -> None:
    """Builds a wheel (setuptools, no network; ~3 s) and imports the package from its install target."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout (to copy the tracked files)")
    src = tracked_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), "."],
        cwd=src, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("depth_nodes-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = next(n.split("/")[0] for n in names if n.endswith(".data/data/share/depth_nodes/package.xml"))
    for name in SHIPPED:
        assert f"depth_nodes/config/{name}" in names, f"{name} missing from the package data"
        assert f"{data}/data/share/depth_nodes/config/{name}" in names, f"{name} missing from share/"
    assert f"{data}/data/share/ament_index/resource_index/packages/depth_nodes" in names
    assert any(n.startswith(f"{data}/data/share/depth_nodes/launch/") for n in names)

    target = tmp_path / "site"
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert inst.returncode == 0, inst.stderr[-3000:]
    probe = (
        "import depth_nodes, json; from depth_nodes import resources as r; "
        "print(json.dumps([depth_nodes.__file__, str(r.fastdds_profile('shm')), "
        "[str(p) for p in r.node_params_files()]]))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-3000:]
    module, profile, params = yaml.safe_load(run.stdout)
    for p in (module, profile, *params):
        assert Path(p).is_relative_to(target), f"{p} is not from the installed wheel"
        assert Path(p).is_file()


def test_editable_install_reads_the_checkout_config(tmp_path: Path) -> None:
    """`pip install -e .` (PEP 660; setuptools maps the packages onto the checkout): the package imports from
    the checkout, which holds no package-data copy, so the lookup reads its top-level config/. Probed with
    `python -S` plus only the install's site directory, so no other install of depth_nodes can answer."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout (to copy the tracked files)")
    src = tracked_copy(tmp_path / "src")
    prefix = tmp_path / "prefix"
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--prefix", str(prefix),
         "-e", "."],
        cwd=src, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert inst.returncode == 0, inst.stderr[-3000:]
    (site_dir,) = prefix.glob("lib/python3*/site-packages")
    probe = (
        f"import site, json; site.addsitedir({str(site_dir)!r}); from depth_nodes import resources as r; "
        "print(json.dumps([r.__file__, [str(r.config_path(n)) for n in r.config_names()]]))"
    )
    run = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=tmp_path, env={k: v for k, v in os.environ.items()
                                                                 if k != "PYTHONPATH"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    module, paths = yaml.safe_load(run.stdout)
    assert Path(module) == src / "depth_nodes" / "resources.py"
    assert sorted(Path(p).name for p in paths) == sorted(SHIPPED + ("fastdds_udp.xml",))
    assert all(Path(p).parent == src / "config" for p in paths), paths


def test_resources_cli_prints_installed_paths(capsys) -> None:
    assert resources.main(["kitti.yaml"]) == 0
    assert Path(capsys.readouterr().out.strip()) == resources.config_path("kitti.yaml")
    assert resources.main(["nope.yaml"]) == 1
    assert "nope.yaml" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- package.xml
#: rosdep key of each third-party Python library the code imports (ROS packages: the module name is the key).
PYTHON_KEYS = {
    "numpy": "python3-numpy",
    "scipy": "python3-scipy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "matplotlib": "python3-matplotlib",
    "tqdm": "python3-tqdm",
    "psutil": "python3-psutil",
    "rosbags": "python3-rosbags-pip",
}
#: Learned-model backends: imported lazily, only by the optional estimators (pip extras), never required.
OPTIONAL = {"torch", "onnx", "onnxruntime", "onnxscript", "transformers", "tensorrt", "safetensors", "kiss_icp",
            "pycuda", "cuda", "huggingface_hub", "modelopt", "onnxconverter_common"}  # fmt: skip
#: Dependencies that are used without an import statement, with the text that shows the use.
USED_WITHOUT_IMPORT = {
    "tf2_msgs": (ROOT / "depth_nodes", '"tf2_msgs/msg/TFMessage"'),  # msg class imported by name for play
    "ros2bag": (ROOT / "launch", '["ros2", "bag", "play"'),
    "rosbag2_storage_mcap": (ROOT / "depth_nodes" / "data" / "kitti2bag.py", '"mcap"'),  # the default storage
    "rviz2": (ROOT / "launch", 'executable="rviz2"'),
}


def _imported_top_level_modules() -> set[str]:
    import ast

    mods: set[str] = set()
    for path in [*(ROOT / "depth_nodes").rglob("*.py"), *(ROOT / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return mods - set(sys.stdlib_module_names) - {"depth_nodes"}


def test_package_xml_lists_exactly_what_the_code_imports() -> None:
    import xml.etree.ElementTree as ET

    root = ET.parse(ROOT / "package.xml").getroot()
    declared = [e.text for e in root.iter("exec_depend")]
    assert len(declared) == len(set(declared)), "duplicate exec_depend"
    assert [e.text for e in root.iter("depend")] == [], "use exec_depend (ament_python: nothing to build)"
    imported = _imported_top_level_modules() - OPTIONAL
    needed = {PYTHON_KEYS.get(m, m) for m in imported}
    for key, (where, text) in USED_WITHOUT_IMPORT.items():
        files = [where] if where.is_file() else [*where.rglob("*.py")]
        assert any(text in f.read_text() for f in files), f"{key} is declared but {text} is not in {where}"
        needed.add(key)
    assert set(declared) == needed, (
        f"package.xml lacks {sorted(needed - set(declared))} and lists unused {sorted(set(declared) - needed)}"
    )


# ---------------------------------------------------------------------------------------------- transport option
def test_node_transport_option_selects_the_shipped_profile(monkeypatch, capsys) -> None:
    import argparse

    from depth_nodes.errors import DepthNodesError
    from depth_nodes.ros import node_main

    monkeypatch.delenv(resources.PROFILES_ENV, raising=False)  # restored after the test
    monkeypatch.delenv("RMW_FASTRTPS_USE_QOS_FROM_XML", raising=False)
    assert node_main.main(["depth_node", "--transport"]) == 1
    assert "--transport needs one of ['shm', 'udp']" in capsys.readouterr().err
    assert node_main.main(["depth_node", "--transport", "carrier_pigeon"]) == 1
    assert "carrier_pigeon" in capsys.readouterr().err
    parser = argparse.ArgumentParser()
    node_main.add_arguments(parser)
    with pytest.raises(DepthNodesError, match="contradict"):
        node_main.run(parser.parse_args(["--shm", "--transport", "udp"]))
    spun = []
    monkeypatch.setattr(node_main, "spin_node", lambda argv: spun.append(argv) or 0)
    assert node_main.main(["depth_node", "--transport", "udp", "--ros-args", "-p", "x:=1"]) == 0
    assert spun[-1] == ["depth_node", "--ros-args", "-p", "x:=1"]
    assert os.environ[resources.PROFILES_ENV] == str(resources.fastdds_profile("udp"))
    assert node_main.run(parser.parse_args(["--transport", "shm"])) == 0
    assert os.environ[resources.PROFILES_ENV] == str(resources.fastdds_profile("shm"))
