"""Robustness and honesty suite (``depth-nodes robustness``): one job per module.

``image_corruptions`` (RoboDepth / KITTI-C), ``lidar_corruptions`` (Robo3D + range noise, spurious
returns), ``misalignment`` (extrinsic drift, time offset), ``spoofing`` (injected returns, spread),
``defences`` (isolated-return rejection, LiDAR/estimate consistency), ``adversarial`` (PGD for estimators
with a torch forward), ``frames`` (synthetic / KITTI data), ``runner`` (the loop), ``report``, ``cli``,
``drift_eval`` (detection rate of the calibration-drift alarm, ``pipeline.drift``).
"""
