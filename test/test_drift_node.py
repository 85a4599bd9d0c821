"""The node feeds its calibration-drift alarm and reports it in ``/diagnostics`` (real node process)."""

from __future__ import annotations

import pytest
from node_io import feed_until, start_node, stop_node

pytestmark = pytest.mark.ros


def test_drift_check_runs_in_the_node_and_stays_quiet_on_a_calibrated_rig():
    proc, client, sender = start_node()
    try:
        d = feed_until(client, sender.send, lambda d: d.get("drift_check", "waiting") != "waiting")
        assert d["drift_check"] in ("ok", "too few depth edges"), d
        assert "extrinsics look drifted" not in d["message"], d  # (the level also reflects start-up frames)
        assert int(d["drift_edge_returns"]) >= 0
    finally:
        stop_node(proc, client)
