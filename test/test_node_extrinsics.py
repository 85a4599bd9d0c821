"""tf2 extrinsics against a fake ``tf2_ros`` (not importable here): the listener must not spin its own executor."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

pytest.importorskip("rclpy")

from depth_nodes.ros import params  # noqa: E402
from depth_nodes.ros.extrinsics import ExtrinsicsError, TfExtrinsics, make_extrinsics  # noqa: E402


class _Vec:
    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


def fake_tf2(transforms: dict):
    """A ``tf2_ros`` module whose Buffer answers from ``transforms[(target, source)] = (xyz, quat_xyzw)``."""
    mod = types.ModuleType("tf2_ros")
    mod.listeners = []

    class LookupException(Exception):
        pass

    class ConnectivityException(Exception):
        pass

    class ExtrapolationException(Exception):
        pass

    class Buffer:
        def __init__(self, cache_time=None, node=None) -> None:
            self.calls = []

        def lookup_transform(self, target, source, time, timeout=None):
            self.calls.append((target, source, time.nanoseconds, timeout.nanoseconds))
            if (target, source) not in transforms:
                raise LookupException(
                    f'"{source}" passed to lookupTransform argument source_frame does not exist'
                )
            (x, y, z), (qx, qy, qz, qw) = transforms[(target, source)]
            tf = _Vec(translation=_Vec(x=x, y=y, z=z), rotation=_Vec(x=qx, y=qy, z=qz, w=qw))
            return _Vec(transform=tf)

    class TransformListener:
        def __init__(self, buffer, node, *, spin_thread=False, qos=None, static_qos=None) -> None:
            self.buffer, self.node, self.spin_thread = buffer, node, spin_thread
            mod.listeners.append(self)

    mod.Buffer, mod.TransformListener = Buffer, TransformListener
    mod.LookupException, mod.ConnectivityException = LookupException, ConnectivityException
    mod.ExtrapolationException = ExtrapolationException
    return mod


def test_tf_listener_is_served_by_the_nodes_own_executor(monkeypatch) -> None:
    fake = fake_tf2({("cam", "lidar"): ((1.0, 2.0, 3.0), (0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)))})
    monkeypatch.setitem(sys.modules, "tf2_ros", fake)
    node = object()
    ext = make_extrinsics(node, params.from_values({"extrinsics_source": "tf", "tf_timeout_s": 0.2}))
    assert isinstance(ext, TfExtrinsics) and ext.source == "tf2"
    (listener,) = fake.listeners
    # spin_thread=True would add the node to a second executor (racing the node's own one).
    assert listener.node is node and listener.spin_thread is False

    T = ext.lookup("cam", "lidar", 1_500_000_000)
    np.testing.assert_allclose(T[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(T[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)  # 90 deg about z
    assert ext.buffer.calls == [("cam", "lidar", 1_500_000_000, 200_000_000)]  # at the scan stamp, timed


def test_tf_lookup_failure_is_an_extrinsics_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tf2_ros", fake_tf2({}))
    ext = TfExtrinsics(object(), timeout_s=0.0)
    with pytest.raises(ExtrinsicsError, match=r"no TF 'cam' <- 'velodyne' at the scan stamp"):
        ext.lookup("cam", "velodyne", 0)
    ext_framed = TfExtrinsics(object(), lidar_frame="lidar")
    with pytest.raises(ExtrinsicsError, match="is not the configured lidar_frame"):
        ext_framed.lookup("cam", "velodyne", 0)
