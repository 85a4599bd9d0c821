"""CameraInfo paired by stamp (``pipeline.sync.CameraInfoSync``, ROS-free): each image gets the CameraInfo of its
own stamp (exact, or within a tolerance), waits for one not yet arrived, and is dropped with a reason when a
later-stamped info, its deadline or newer images show that its own will not come."""

from __future__ import annotations

from depth_nodes.pipeline.sync import CameraInfoSync

MS = 1_000_000


def test_each_image_gets_the_info_of_its_stamp_after_an_intrinsics_change() -> None:
    sync = CameraInfoSync()
    # Infos ahead of their images (A at t=0, B at t=100 ms), as a driver publishing info first may deliver them.
    assert sync.add_info(0, "A") == ([], [])
    assert sync.add_info(100 * MS, "B") == ([], [])
    assert sync.add_image(0, "img0", now_s=0.0) == ("A", [])  # "latest" would have given it B
    assert sync.add_image(100 * MS, "img1", now_s=0.0) == ("B", [])


def test_an_image_ahead_of_its_info_waits_and_is_released_by_it() -> None:
    sync = CameraInfoSync()
    sync.add_info(0, "A")
    # image_transport's CameraPublisher publishes the image first: the image at 100 ms arrives before its info.
    assert sync.add_image(100 * MS, "img1", now_s=1.0) == (None, [])
    assert sync.n_waiting == 1
    released, dropped = sync.add_info(100 * MS, "B", now_s=1.01)
    assert released == [("img1", "B")] and dropped == [] and sync.n_waiting == 0


def test_tolerance_pairs_a_driver_that_stamps_info_slightly_apart() -> None:
    exact = CameraInfoSync()
    exact.add_info(3 * MS, "A")  # info stamped 3 ms after its image
    info, dropped = exact.add_image(0, "img", now_s=0.0)
    assert info is None and len(dropped) == 1  # a later-stamped info came: its own will not
    item, reason = dropped[0]
    assert item == "img" and "camera_info_stamp_tolerance_s=0.0" in reason and "3.000 ms away" in reason
    loose = CameraInfoSync()
    loose.add_info(3 * MS, "A")
    assert loose.add_image(0, "img", now_s=0.0, tolerance_s=0.005) == ("A", [])
    # The nearest within the tolerance wins.
    loose.add_info(-1 * MS, "B")
    assert loose.add_image(0, "img2", now_s=0.0, tolerance_s=0.005) == ("B", [])


def test_waiting_images_are_dropped_with_a_reason_never_kept_forever() -> None:
    sync = CameraInfoSync(max_waiting=2, wait_s=0.5)
    sync.add_info(0, "A")
    assert sync.add_image(100 * MS, "lost-info", now_s=10.0) == (None, [])
    # The next frame's info arrives first: the waiting image's own info was lost.
    released, dropped = sync.add_info(200 * MS, "C", now_s=10.05)
    assert released == [] and [d[0] for d in dropped] == ["lost-info"]
    # Deadline: an image whose info never comes is dropped after wait_s.
    sync.add_image(300 * MS, "late", now_s=20.0)
    assert sync.expire(20.4) == [] and sync.n_waiting == 1
    expired = sync.expire(20.5)
    assert [d[0] for d in expired] == ["late"] and "waited 0.5 s" in expired[0][1]
    # Overflow: newer images push the oldest waiting one out.
    for i, stamp in enumerate((400, 500, 600)):
        _, dropped = sync.add_image(stamp * MS, f"img{i}", now_s=30.0)
    assert [d[0] for d in dropped] == ["img0"] and "newer images" in dropped[0][1]
    assert sync.drain() == ["img1", "img2"] and sync.n_waiting == 0


def test_history_is_bounded() -> None:
    sync = CameraInfoSync(history=3)
    for i in range(10):
        sync.add_info(i * MS, i)
    assert sync.match(9 * MS) == 9 and sync.match(7 * MS) == 7 and sync.match(6 * MS) is None
