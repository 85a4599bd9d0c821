"""The calibration-drift alarm (pipeline.drift) on synthetic frames: detects a 1 deg drift, quiet without."""

import numpy as np
import pytest

from depth_nodes.eval.robustness.frames import synthetic_frames
from depth_nodes.eval.robustness.misalignment import rotation_drift, translation_drift
from depth_nodes.pipeline.drift import ERROR, OK, WARN, DriftMonitor, DriftStatus, merge_status


@pytest.fixture(scope="module")
def frames():
    return list(synthetic_frames(3, 10))


def _window(frames, T_of):
    mon = DriftMonitor()
    for f in frames:
        status = mon.update(f.image, f.sparse(f.all_points, T_of(f.T_cam_lidar)))
    return status


def test_quiet_at_zero_drift(frames):
    st = _window(frames, lambda T: T)
    assert st.level == OK, st.values
    assert st.values["drift_check"] == "ok" and st.values["drift_edge_returns"] > 500


@pytest.mark.parametrize("axis", [(0, 1, 0), (1, 0, 0), (0, 0, 1)])
def test_detects_a_1_deg_rotation_about_each_axis(frames, axis):
    st = _window(frames, lambda T: rotation_drift(T, 1.0, np.array(axis, float)))
    assert st.level >= WARN, st.values
    assert "drifted" in st.message


def test_detects_a_20_cm_shift_and_escalates_a_large_drift(frames):
    assert _window(frames, lambda T: translation_drift(T, [0.2, 0, 0])).level >= WARN
    assert _window(frames, lambda T: rotation_drift(T, 1.0, np.array([0, 1.0, 0]))).level == ERROR


def test_needs_a_full_window_and_survives_bad_input(frames):
    mon = DriftMonitor()
    f = frames[0]
    for _ in range(9):
        st = mon.update(
            f.image, f.sparse(f.all_points, rotation_drift(f.T_cam_lidar, 2.0, np.array([0, 1.0, 0])))
        )
    assert st.level == OK and st.values["drift_check"] == "waiting"
    assert (
        mon.update(np.zeros((5, 5, 3), np.uint8), np.zeros((7, 7), np.float32)).level == OK
    )  # size mismatch
    assert mon.update(None, None).level == OK


def test_merge_status_raises_the_diagnostics_level():
    values = {}
    level, msg = merge_status(
        OK, "mode guided: ok", values, DriftStatus(WARN, "drifted", {"drift_shift_px": 6.0})
    )
    assert level == WARN and msg.endswith("; drifted") and values["drift_shift_px"] == 6.0
    assert merge_status(ERROR, "x", {}, DriftStatus(OK, "", {})) == (ERROR, "x")
