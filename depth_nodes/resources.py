"""Shipped configuration files (parameter presets, RViz config, Fast DDS profiles), in every install kind.

The one canonical copy lives inside the package (``depth_nodes/config/``) and is read through
:mod:`importlib.resources`, so the lookup is the same for a source checkout on ``PYTHONPATH``, an editable
install, a wheel (``pip install .``) and a colcon/ament install. ``setup.py`` also installs the same files to
``share/depth_nodes/config`` for launch files, which find them with ``get_package_share_directory``.
No ROS import here.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import MutableMapping
from importlib import resources
from pathlib import Path

from depth_nodes.errors import DataFormatError

PACKAGE = "depth_nodes"
CONFIG_DIR = "config"
PARAMS_FILE = "depth_nodes.yaml"  # the node's shipped defaults
KITTI_PARAMS_FILE = "kitti.yaml"  # KITTI preset, loaded after PARAMS_FILE
RVIZ_FILE = "depth_nodes.rviz"
#: Fast DDS profile per transport: ``shm`` = 64 MB shared-memory segment + UDPv4 (one host, large messages),
#: ``udp`` = UDPv4 only with 32 MB socket buffers (several hosts; needs the sysctl in docs/robot.md).
FASTDDS_PROFILES = {"shm": "fastdds_shm.xml", "udp": "fastdds_udp.xml"}
PROFILES_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"

# Files extracted from a zipped install live until the process exits (see config_path).
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


class ConfigNotFoundError(DataFormatError):
    """A shipped config file is missing from the installed package."""


def config_dir() -> Path:
    """The directory that holds the shipped config files (a real directory for every non-zipped install)."""
    return Path(str(resources.files(PACKAGE).joinpath(CONFIG_DIR)))


def config_names() -> list[str]:
    """Names of every shipped config file."""
    root = resources.files(PACKAGE).joinpath(CONFIG_DIR)
    return sorted(p.name for p in root.iterdir() if p.is_file()) if root.is_dir() else []


def config_path(name: str) -> Path:
    """A real file-system path to the shipped config file ``name`` (e.g. ``"kitti.yaml"``).

    Raises :class:`ConfigNotFoundError` naming the file and where it was looked for.
    """
    ref = resources.files(PACKAGE).joinpath(CONFIG_DIR, name)
    if not ref.is_file():
        raise ConfigNotFoundError(
            f"config file {name!r} is not in the installed package ({ref}); shipped: {config_names()} "
            f"- reinstall depth_nodes (pip install . / colcon build)"
        )
    if isinstance(ref, Path):
        return ref
    # A zipped install: Fast DDS and rclpy need a real file, so extract it once for this process.
    return _extracted.enter_context(resources.as_file(ref))


def config_yaml(name: str) -> dict:
    """A shipped YAML file, parsed."""
    import yaml

    data = yaml.safe_load(config_path(name).read_text())
    if not isinstance(data, dict):
        raise ConfigNotFoundError(f"config file {name!r} is not a YAML mapping")
    return data


def node_params_files(kitti: bool = True) -> list[Path]:
    """The node's shipped parameter files in load order (defaults, then the KITTI preset)."""
    return [config_path(PARAMS_FILE)] + ([config_path(KITTI_PARAMS_FILE)] if kitti else [])


def fastdds_profile(transport: str) -> Path:
    """The shipped Fast DDS profile for ``transport`` (``"shm"`` or ``"udp"``)."""
    if transport not in FASTDDS_PROFILES:
        raise ConfigNotFoundError(
            f"no Fast DDS profile for transport {transport!r}; choose one of {sorted(FASTDDS_PROFILES)}"
        )
    return config_path(FASTDDS_PROFILES[transport])


def use_fastdds_profile(transport: str, env: MutableMapping[str, str] | None = None) -> Path:
    """Point Fast DDS at the shipped profile for ``transport`` in ``env`` (default: this process, which must
    be before ``rclpy.init``; child processes inherit it). Returns the profile path."""
    target = os.environ if env is None else env
    path = fastdds_profile(transport)
    target[PROFILES_ENV] = str(path)
    # The profile sets transports only; QoS stays what the code asks for.
    target.setdefault("RMW_FASTRTPS_USE_QOS_FROM_XML", "0")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python3 -m depth_nodes.resources [NAME ...]``: print the installed path of each shipped config file
    (all of them without arguments), e.g. ``--params-file $(python3 -m depth_nodes.resources kitti.yaml)``."""
    import sys

    names = (sys.argv[1:] if argv is None else argv) or config_names()
    try:
        for name in names:
            print(config_path(name))
    except ConfigNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
