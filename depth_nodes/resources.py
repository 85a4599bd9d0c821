"""Shipped configuration files (parameter presets, RViz config, Fast DDS profiles), in every install kind.

The one canonical copy is the checkout's top-level ``config/`` (the package card's layout: package.xml, setup.py,
depth_nodes, launch, config, test). ``setup.py`` ships it as the package data of ``depth_nodes.config``
(``package_dir`` maps that package onto ``config/``), so an installed copy sits at ``depth_nodes/config/`` in
site-packages, and also installs it to ``share/depth_nodes/config`` for launch files (``FindPackageShare``).

Where :func:`config_root` finds it, per install kind:

- wheel, ``pip install .``, ``colcon build``: the package data, through :mod:`importlib.resources`
  (``<site-packages>/depth_nodes/config``; a zipped install too);
- a source checkout on ``PYTHONPATH``, ``pip install -e .``, ``colcon build --symlink-install``: these import
  ``depth_nodes`` from the checkout (or colcon's symlinked build directory), which holds no package data copy,
  so the ``config/`` beside the package (a directory with ``package.xml`` and ``setup.py``) is the one read.
  A ``package_dir`` mapping is not followed by setuptools' legacy ``develop`` (what ``--symlink-install``
  runs), hence this second place rather than importing ``depth_nodes.config``.

No ROS import here.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import MutableMapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from depth_nodes.errors import DataFormatError

if TYPE_CHECKING:  # importlib.resources.abc is 3.11+; python_requires is 3.10
    from importlib.resources.abc import Traversable

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


def config_root() -> Traversable:
    """The shipped config directory: the installed package data, else the checkout's top-level ``config/``
    (see the module docstring); the package-data location (which then does not exist) when neither is there."""
    installed = resources.files(PACKAGE).joinpath(CONFIG_DIR)
    if installed.is_dir():
        return installed
    checkout = Path(__file__).parent.parent  # the directory that holds the depth_nodes package
    if all((checkout / f).is_file() for f in ("package.xml", "setup.py")) and (checkout / CONFIG_DIR).is_dir():
        return checkout / CONFIG_DIR
    return installed


def config_dir() -> Path:
    """The directory that holds the shipped config files (a real directory for every non-zipped install)."""
    return Path(str(config_root()))


def config_names() -> list[str]:
    """Names of every shipped config file."""
    root = config_root()
    return sorted(p.name for p in root.iterdir() if p.is_file()) if root.is_dir() else []


def config_path(name: str) -> Path:
    """A real file-system path to the shipped config file ``name`` (e.g. ``"kitti.yaml"``).

    Raises :class:`ConfigNotFoundError` naming the file and where it was looked for.
    """
    ref = config_root().joinpath(name)
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
