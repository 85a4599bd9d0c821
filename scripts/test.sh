#!/usr/bin/env bash
# Install everything the tests need (ROS 2 Jazzy rclpy + messages from PyPI, rosbags, dev tools) and run them.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[ros,dev]"
python3 -m ruff check .
set +e
python3 -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
