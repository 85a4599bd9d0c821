#!/usr/bin/env bash
# Install everything the tests need (ROS 2 Jazzy rclpy + messages from PyPI, rosbags, dev tools, torch +
# ONNX Runtime for the learned-model runtime) and run them.
# Usage: bash scripts/test.sh [pytest args...]
# Python: the active virtual environment, else python3 -- unless that one is "externally managed" (Debian's
# /usr/bin/python3, PEP 668), then a .venv here is created and used.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=python3
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  PY=$PWD/.venv/bin/python
fi
# torch first, pinned: `.[ml]` then finds it satisfied instead of pulling another build.
"$PY" -m pip install --quiet "torch==2.13.0"
"$PY" -m pip install --quiet -e ".[ros,dev,ml]"
# (further installs go here, e.g. extras for optional backends: "$PY" -m pip install --quiet ...)
# --- launch: begin (test/test_launch_files.py runs the launch files for real; test_colcon_install.py builds) ---
# `launch` + `launch_ros` are pure Python but not on PyPI: wheels in ../shared/wheels/ros2_launch (its README).
# --no-deps: launch_ros requires the name `ament_index_python`, which PyPI ships as ros-jazzy-ament-index-python
# (pip then reports "launch-ros requires ament_index_python, which is not installed": expected, harmless).
# The [launch] extra: their PyPI dependencies, and colcon (colcon-common-extensions) for `python -m colcon build`
# with this interpreter. Without the wheels the launch tests skip, naming what is missing.
LAUNCH_WHEELS=../shared/wheels/ros2_launch
if compgen -G "$LAUNCH_WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install --quiet --no-deps "$LAUNCH_WHEELS"/*.whl
fi
"$PY" -m pip install --quiet -e ".[launch]"
# --- launch: end ---
"$PY" -m ruff check .
# ---- TensorRT bindings conformance (issue 22; owner: runtime/TensorRT) -------------------------------------
# The real tensorrt-cu12-bindings wheels (10.3.0, 10.13.3.9, 11.4.0.106) unpacked into .cache/trt_bindings/ with
# stub native libraries (gcc): test/test_runtime_trt_api.py checks every TensorRT name the backend uses against
# them. Offline / no gcc: the script says why and the tests skip, naming what is missing. Shown verbosely here so
# the log lists each version; the same tests run again (quietly) in the full run below.
bash scripts/trt_bindings.sh "$PY"
"$PY" -m pytest -v -p no:cacheprovider -rs test/test_runtime_trt_api.py
# ---- end TensorRT bindings conformance ---------------------------------------------------------------------
set +e
"$PY" -m pytest -q -p no:cacheprovider -rs "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
