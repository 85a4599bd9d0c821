"""Helpers of the install tests: a clean copy of the repository and a colcon build of it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: An existing colcon install space (``<ws>/install``) to check instead of building one (.ci/run sets it).
INSTALL_ENV = "DEPTH_NODES_COLCON_INSTALL"


def tracked_copy(dst: Path) -> Path:
    """The repository's files that git tracks or would (what a clean clone of the commit holds) in ``dst``."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


def env_colcon() -> list[str] | str:
    """``python -m colcon`` of this interpreter, or a string naming what is missing.

    colcon writes the interpreter it runs under into the ``#!`` line of the installed executables
    (``lib/depth_nodes/depth_node``), so a build with this environment's colcon starts the node with the
    interpreter that has rclpy (Debian's colcon writes ``#!/usr/bin/python3``, which has none on a pip-only
    machine). That is the pip user's flow: ``pip install colcon-common-extensions`` beside rclpy, then
    ``python -m colcon build``.
    """
    missing = [m for m in ("colcon_core", "colcon_ros") if importlib.util.find_spec(m) is None]
    if missing:
        return (
            f"{' and '.join(missing)} not importable by {sys.executable} "
            "(pip install colcon-common-extensions: scripts/test.sh does)"
        )
    return [sys.executable, "-m", "colcon"]


def colcon_build(workdir: Path, colcon: list[str], symlink: bool = False) -> Path:
    """``colcon build`` (``--symlink-install`` if asked) of a clean copy of this checkout in ``workdir``;
    returns the package's install prefix (``<workdir>/install/depth_nodes``)."""
    tracked_copy(workdir / "src" / "depth_nodes")
    cmd = [*colcon, "build", "--event-handlers", "console_cohesion+", *(["--symlink-install"] if symlink else [])]
    build = subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=600,
        env={**os.environ, "COLCON_HOME": str(workdir / ".colcon")},
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return workdir / "install" / "depth_nodes"


def colcon_install(workdir: Path) -> Path | str:
    """The package's install prefix (``<install>/depth_nodes``) from $DEPTH_NODES_COLCON_INSTALL, else from
    ``colcon build`` of a clean copy in ``workdir`` (the ``colcon`` on PATH, else this environment's
    ``python -m colcon``); a string saying what is missing when none can be had."""
    given = os.environ.get(INSTALL_ENV)
    if given:
        return Path(given) / "depth_nodes"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return "needs git and a git checkout (to copy the repository's files)"
    colcon = ["colcon"] if shutil.which("colcon") else env_colcon()
    if isinstance(colcon, str):
        return f"colcon is not installed (apt-get install colcon python3-colcon-ros), and {colcon}"
    return colcon_build(workdir, colcon)
