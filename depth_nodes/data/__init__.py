"""Data: KITTI raw and depth-completion layouts, calibration files, synthetic drives, rosbag2 I/O."""
