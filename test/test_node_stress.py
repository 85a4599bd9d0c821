"""Stress in real processes for 60 s: images at 30 Hz (scans at 10 Hz), parameter changes at 20 Hz,
subscribers connecting and disconnecting, /diagnostics at 10 Hz.

Passes when the node logs no exception, every accepted parameter is in effect afterwards (read back
through the parameter service and seen in the outputs), rejected ones are not, and its RSS stays within
10 % after a 15 s warm-up. Slow by nature (the duration is the test); ``STRESS_S`` shortens it locally.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

import numpy as np
import pytest
from node_io import depth_array, start_node, stop_node

from depth_nodes.msgs.cloud import pointcloud2_to_arrays
from depth_nodes.msgs.image import image_to_numpy
from depth_nodes.msgs.stamp import stamp_to_ns
from depth_nodes.pipeline import colorize_depth

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DURATION_S = float(os.environ.get("STRESS_S", "60"))
WARMUP_S = min(15.0, DURATION_S / 4)

#: Runtime-safe changes cycled at 20 Hz (all valid), and changes the node must reject.
CHANGES = [
    ("colormap", ["jet", "viridis", "turbo", "magma"]),
    ("colorize_max_depth_m", [50.0, 60.0, 70.0, 90.0]),
    ("colorize_min_depth_m", [0.0, 1.0, 2.0]),
    ("cloud_decimation", [1, 2, 3, 4]),
    ("cloud_organized", [True, False]),
    ("publish_confidence", [False, True]),
    ("max_lidar_age_s", [0.12, 0.15, 0.2]),
    ("min_lidar_points", [50, 100, 150]),
    ("mode_hysteresis_frames", [2, 3, 4]),
    ("keep_lidar_returns", [False, True]),
    ("warning_period_s", [1.0, 5.0]),
]
REJECTED = [("completer", "nearest"), ("colorize_min_depth_m", 5000.0), ("cloud_decimation", 99)]


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc to read the node's RSS")
def test_node_survives_sustained_load_with_parameters_in_effect() -> None:
    import rclpy
    from rclpy.parameter import Parameter, parameter_value_to_python
    from rclpy.parameter_client import AsyncParameterClient
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    proc, client, sender = start_node(
        {"diagnostics_period_s": 0.1, "cloud_organized": False, "cloud_decimation": 2}, input_depth=2
    )
    pc = AsyncParameterClient(client.node, "depth_node")
    churn_ctx = rclpy.Context()
    rclpy.init(context=churn_ctx)
    churn = rclpy.create_node(
        "stress_churn", context=churn_ctx
    )  # never spun: subscriptions exist in DDS only
    stop = threading.Event()
    errors: list[str] = []
    accepted: dict[str, object] = {}
    n_set = {"ok": 0, "rejected": 0}
    lock = threading.Lock()

    def paced(rate_hz: float, body) -> None:
        period, t = 1.0 / rate_hz, time.monotonic()
        try:
            for i in itertools.count():
                if stop.is_set():
                    return
                body(i)
                t += period
                time.sleep(max(0.0, t - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(f"{body.__name__}: {type(exc).__name__}: {exc}")

    def images(i: int) -> None:
        sender.send(image=True, points=i % 3 == 0)

    def parameters(i: int) -> None:
        if i % 10 == 9:
            name, value = REJECTED[(i // 10) % len(REJECTED)]
        else:
            name, values = CHANGES[i % len(CHANGES)]
            value = values[(i // len(CHANGES)) % len(values)]
        future = pc.set_parameters([Parameter(name, value=value)])
        deadline = time.monotonic() + 5.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.002)
        if not future.done():
            raise TimeoutError(f"set_parameters({name}) got no answer in 5 s")
        (result,) = future.result().results
        with lock:
            if result.successful:
                accepted[name] = value
                n_set["ok"] += 1
            else:
                n_set["rejected"] += 1
        if (name, value) in REJECTED and result.successful:
            raise AssertionError(f"{name}={value!r} was accepted")

    subs: list = []

    def subscribers(i: int) -> None:
        if subs and (i % 2 or len(subs) > 3):
            churn.destroy_subscription(subs.pop(0))
        else:
            topic, kind = [
                ("depth/points", PointCloud2),
                ("depth/confidence", Image),
                ("depth/colorized", Image),
            ][i % 3]
            subs.append(churn.create_subscription(kind, topic, lambda m: None, QoSProfile(depth=2)))

    rss: list[tuple[float, int]] = []
    try:
        assert pc.wait_for_services(timeout_sec=10.0)
        threads = [
            threading.Thread(target=paced, args=(30.0, images)),
            threading.Thread(target=paced, args=(20.0, parameters)),
            threading.Thread(target=paced, args=(4.0, subscribers)),
        ]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < DURATION_S and not errors:
            assert proc.alive(), proc.output()[-3000:]
            rss.append((time.monotonic() - t0, rss_kb(proc.pid)))
            time.sleep(1.0)  # one RSS sample per second
        stop.set()
        for t in threads:
            t.join(10.0)
        assert not errors, errors
        n_diag = len(client.messages["/diagnostics"])
        published = int(client.latest_diagnostics()["frames_published"])
        assert published >= 3 * DURATION_S, f"{published} frames published in {DURATION_S} s"
        assert n_diag >= 7 * DURATION_S, f"{n_diag} diagnostics in {DURATION_S} s (10 Hz configured)"
        assert n_set["ok"] >= 10 * DURATION_S and n_set["rejected"] >= DURATION_S, n_set

        # Every accepted parameter is in effect: read back through the parameter service ...
        future = pc.get_parameters(sorted(accepted))
        client.wait_for(lambda: future.done(), 10.0, "get_parameters")
        now = dict(zip(sorted(accepted), map(parameter_value_to_python, future.result().values), strict=True))
        assert now == pytest.approx(accepted), (now, accepted)
        assert set(accepted) == {
            name for name, _ in CHANGES
        }  # every kind of change was accepted at least once
        # ... and in the outputs (colour range + map, cloud decimation) of a frame sent now.
        for s in subs:
            churn.destroy_subscription(s)
        client_sub = {}

        def keep(topic):
            return client.node.create_subscription(
                PointCloud2 if topic == "depth/points" else Image, topic,
                lambda m, t=topic: client_sub.__setitem__(t, m),
                QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE),
            )  # fmt: skip

        extra = [keep("depth/colorized"), keep("depth/points")]
        client.wait_for(
            lambda: proc.alive() and all(s.get_publisher_count() for s in extra), 10.0, "matching"
        )
        for _ in range(40):
            client_sub.clear()
            stamp = sender.send()
            try:
                depth_msg = client.wait_stamp("depth/image_rect", stamp, timeout=1.0)
            except TimeoutError:
                continue
            if {"depth/colorized", "depth/points"} <= set(client_sub):
                col, cloud = client_sub["depth/colorized"], client_sub["depth/points"]
                if stamp_to_ns(col.header.stamp) == stamp == stamp_to_ns(cloud.header.stamp):
                    break
        else:
            raise AssertionError("no complete frame after the stress")
        depth = depth_array(depth_msg)
        np.testing.assert_array_equal(
            image_to_numpy(col),
            colorize_depth(
                depth,
                accepted["colorize_min_depth_m"],
                accepted["colorize_max_depth_m"],
                accepted["colormap"],
            ),
        )
        dec = accepted["cloud_decimation"]
        n_points = pointcloud2_to_arrays(cloud).xyz.shape[0]
        if accepted["cloud_organized"]:
            assert (cloud.height, cloud.width) == depth[::dec, ::dec].shape
        else:
            assert n_points == np.isfinite(depth[::dec, ::dec]).sum()
    finally:
        stop.set()
        churn.destroy_node()
        rclpy.try_shutdown(context=churn_ctx)
        out = proc.output()
        stop_node(proc, client)
    assert "unexpected" not in out and "frame skipped" not in out, out[-4000:]

    after = [kb for t, kb in rss if t >= WARMUP_S]
    first, last = np.median(after[:10]), np.median(after[-10:])
    print(f"node RSS after warm-up: first 10 s {first / 1024:.1f} MB, last 10 s {last / 1024:.1f} MB, "
          f"max {max(after) / 1024:.1f} MB; {n_set}, {n_diag} diagnostics, {published} frames published")  # fmt: skip
    assert last <= 1.10 * first and max(after) <= 1.15 * first, rss
