"""ament_python / pip package definition for depth_nodes."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "depth_nodes"
# One canonical copy of the config files, at the top level (`config/`, the package card's layout). It ships twice
# from there: as the package data of `depth_nodes.config` (package_dir maps that package onto `config/`, so a
# wheel, `pip install .` and a colcon install hold site-packages/depth_nodes/config/), read at run time by
# depth_nodes/resources.py; and to share/depth_nodes/config for launch files (FindPackageShare). Editable
# installs and `colcon build --symlink-install` read the checkout's `config/` (resources.py says how).
CONFIG_PACKAGE = f"{PACKAGE}.config"
CONFIG_GLOBS = ("*.yaml", "*.rviz", "*.xml")
CONFIG_FILES = sorted(f for pattern in CONFIG_GLOBS for f in glob(f"config/{pattern}"))

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[*find_packages(include=[PACKAGE, f"{PACKAGE}.*"]), CONFIG_PACKAGE],
    package_dir={CONFIG_PACKAGE: "config"},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", CONFIG_FILES),
    ],
    # the shipped own monocular and completion nets (config.json + model.safetensors + train.json, < 10 MB)
    package_data={PACKAGE: ["mono/weights/*/*", "models/weights/*/*"], CONFIG_PACKAGE: list(CONFIG_GLOBS)},
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "opencv-python-headless>=4.8",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "psutil>=5.9",
        "rosbags>=0.10",  # pure Python rosbag2 reader/writer: kitti2bag, play, record, demo
    ],
    extras_require={
        # rclpy + messages from PyPI (a robot's full ROS 2 install already has them).
        "ros": [
            "ros-jazzy-rclpy[fastrtps]",
            "ros-jazzy-sensor-msgs",
            "ros-jazzy-std-msgs",
            "ros-jazzy-diagnostic-msgs",
        ],
        "bag": [],  # kept for compatibility: rosbags is a core dependency now
        # Learned models: torch pinned to the wheel installed first (`pip install torch==2.13.0` before
        # `.[ml]`), never an unpinned requirement (that would pull another build); onnx + onnxscript export,
        # onnxruntime runs the ONNX on any CPU, safetensors holds the weights.
        # transformers: Depth Anything V2 / Prompt Depth Anything (monocular fallback; weights from local dirs only).
        "ml": ["torch==2.13.0", "onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.1", "safetensors>=0.4",
               "transformers>=4.51"],
        # TensorRT for desktop / server NVIDIA GPUs from PyPI. On a Jetson use JetPack's TensorRT
        # (python3-libnvinfer), not this wheel: see docs/runtime.md.
        "trt": ["tensorrt>=10.0"],
        # LiDAR odometry for `depth-nodes make-gt` on drives without poses (KITTI raw).
        "gt": ["kiss-icp>=1.0"],
        "dev": ["pytest>=7", "ruff>=0.5", "kiss-icp>=1.0"],
        # Running the launch files without a ROS install (test/test_launch_files.py; scripts/test.sh): the PyPI
        # dependencies of the launch / launch_ros wheels (../shared/wheels/ros2_launch, installed --no-deps)
        # and colcon, so that `python -m colcon build` writes this interpreter into the installed executables.
        "launch": ["osrf-pycommon", "lark-parser", "PyYAML", "ros-jazzy-ament-index-python",
                   "colcon-common-extensions"],
    },
    zip_safe=False,
    maintainer="depth_nodes maintainers",
    maintainer_email="maintainers@depth-nodes.invalid",
    description="Dense metric depth and point clouds from camera + LiDAR for ROS 2.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "depth-nodes = depth_nodes.cli:main",
            "depth_node = depth_nodes.ros.depth_node:main",
        ],
    },
)
