"""kitti2bag on a moving synthetic drive: per-point ``time`` field and odometry TF in the bag."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.core.transforms import invert
from depth_nodes.data import kitti2bag as k2b
from depth_nodes.data import rosbag_io as rb
from depth_nodes.data import synthetic_scene
from depth_nodes.data.bag_messages import transform_to_matrix
from depth_nodes.data.synthetic import raw_drive_dir, render_frame, write_drive
from depth_nodes.msgs.cloud import pointcloud2_to_arrays

SEED = 6


def _messages(bag, topic):
    with rb.open_bag(bag) as reader:
        return [rb.deserialize(raw, t) for _, t, _, raw in rb.iter_messages(reader, bag, [topic])]


@pytest.fixture(scope="module")
def moving_bag(tmp_path_factory):
    root = tmp_path_factory.mktemp("moving")
    data = write_drive(root / "d", seed=SEED, n_frames=2, progress=False, motion=True)
    bag = k2b.convert(k2b.load_drive(raw_drive_dir(data)), root / "bag", progress=False)
    return data, bag


def test_cloud_carries_per_point_times(moving_bag):
    _, bag = moving_bag
    clouds = _messages(bag, k2b.POINTS_TOPIC)
    assert [f.name for f in clouds[1].fields] == ["x", "y", "z", "intensity", "time"]
    c = pointcloud2_to_arrays(clouds[1])
    f = render_frame(SEED, 1, motion=True)
    assert c.time_field == "time" and c.time_error is None
    np.testing.assert_allclose(c.point_time_ns, f.point_time_ns, atol=100)  # float32 s: < 0.1 us here
    assert c.point_time_ns.min() < -45_000_000 and c.point_time_ns.max() > 45_000_000
    np.testing.assert_array_equal(c.xyz, f.points_measured[:, :3])


def test_odometry_tf_follows_the_ego_path(moving_bag):
    _, bag = moving_bag
    tfs = [m.transforms[0] for m in _messages(bag, k2b.TF_TOPIC)]
    assert [(t.header.frame_id, t.child_frame_id) for t in tfs] == [("world", "imu_link")] * 2
    static = {(t.header.frame_id, t.child_frame_id): t for m in _messages(bag, k2b.TF_STATIC_TOPIC)
              for t in m.transforms}  # fmt: skip
    np.testing.assert_allclose(transform_to_matrix(static[("imu_link", "velo_link")].transform), np.eye(4),
                               atol=1e-9)  # fmt: skip
    ego = synthetic_scene.EgoPath.from_seed(SEED)
    expected = invert(ego.pose(0.0)) @ ego.pose(0.1)  # poses relative to the first, like the devkit
    got = transform_to_matrix(tfs[1].transform)
    np.testing.assert_allclose(got[:3, 3], expected[:3, 3], atol=2e-3)  # Mercator round trip: mm
    np.testing.assert_allclose(got[:3, :3], expected[:3, :3], atol=1e-6)


def test_still_drive_has_no_time_field(tmp_path):
    data = write_drive(tmp_path / "d", seed=SEED, n_frames=1, progress=False)
    bag = k2b.convert(k2b.load_drive(raw_drive_dir(data)), tmp_path / "bag", progress=False)
    assert [f.name for f in _messages(bag, k2b.POINTS_TOPIC)[0].fields] == ["x", "y", "z", "intensity"]
    assert len(_messages(bag, k2b.TF_TOPIC)) == 1  # the odometry TF is there all the same
