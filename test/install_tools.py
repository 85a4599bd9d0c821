"""Helpers of the install tests: a clean copy of the repository and a colcon build of it."""

from __future__ import annotations

import os
import shutil
import subprocess
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


def colcon_install(workdir: Path) -> Path | str:
    """The package's install prefix (``<install>/depth_nodes``) from $DEPTH_NODES_COLCON_INSTALL, else from
    ``colcon build`` of a clean copy in ``workdir``; a string saying what is missing when neither can be had."""
    given = os.environ.get(INSTALL_ENV)
    if given:
        return Path(given) / "depth_nodes"
    if shutil.which("colcon") is None:
        return "colcon is not installed (apt-get install colcon python3-colcon-ros)"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return "needs git and a git checkout (to copy the repository's files)"
    tracked_copy(workdir / "src" / "depth_nodes")
    build = subprocess.run(
        ["colcon", "build", "--event-handlers", "console_cohesion+"],
        cwd=workdir, capture_output=True, text=True, timeout=600,
        env={**os.environ, "COLCON_HOME": str(workdir / ".colcon")},
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return workdir / "install" / "depth_nodes"
