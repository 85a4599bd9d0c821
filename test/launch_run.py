"""``ros2 launch PACKAGE FILE NAME:=VALUE ...`` without the ``ros2`` CLI (test tooling, run as a script).

    python test/launch_run.py depth_nodes depth_nodes.launch.py image:=/cam/image_raw transport:=udp

What ``ros2launch`` does, with ``launch`` + ``launch_ros`` (the wheels in ``../shared/wheels/ros2_launch``):
the launch file is looked up in the package's installed share directory (ament index, ``AMENT_PREFIX_PATH``),
included with the ``NAME:=VALUE`` arguments and run by ``launch.LaunchService`` (noninteractive, as with
``ros2 launch --noninteractive``: SIGINT to this process stops the launched ones); the exit status is the
service's (non-zero when launch itself fails, e.g. on a bad argument, with launch's own message in its log).

``launch_ros.actions`` imports ``composition_interfaces.srv`` at import time; that message package is not on
PyPI. Where it is missing, :func:`composition_interfaces_stand_in` installs an import-only stand-in (the three
service classes, with nested ``Request``/``Response``, and nothing behind them): the project's launch files
start no composable nodes, so nothing ever calls those services. With a full ROS install the real package is
used.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def composition_interfaces_stand_in() -> bool:
    """Register the import-only ``composition_interfaces.srv`` stand-in unless the real package is importable;
    returns whether the stand-in was installed."""
    if importlib.util.find_spec("composition_interfaces") is not None:
        return False
    pkg = types.ModuleType("composition_interfaces")
    pkg.__path__ = []  # a package, so that `import composition_interfaces.srv` resolves to the module below
    srv = types.ModuleType("composition_interfaces.srv")
    for name in ("LoadNode", "UnloadNode", "ListNodes"):
        service = type(name, (), {"__doc__": f"import-only stand-in for composition_interfaces/srv/{name}"})
        service.Request = type(f"{name}_Request", (), {})
        service.Response = type(f"{name}_Response", (), {})
        setattr(srv, name, service)
    pkg.srv = srv
    sys.modules["composition_interfaces"] = pkg
    sys.modules["composition_interfaces.srv"] = srv
    return True


def parse_arguments(args: list[str]) -> list[tuple[str, str]]:
    """``NAME:=VALUE`` pairs, as ``ros2 launch`` takes them."""
    pairs = []
    for arg in args:
        name, sep, value = arg.partition(":=")
        if not sep or not name:
            raise SystemExit(f"launch argument {arg!r} is not NAME:=VALUE")
        pairs.append((name, value))
    return pairs


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        raise SystemExit("usage: launch_run.py PACKAGE LAUNCH_FILE [NAME:=VALUE ...]")
    package, file_name, *args = argv
    stand_in = composition_interfaces_stand_in()
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import AnyLaunchDescriptionSource

    path = f"{get_package_share_directory(package)}/launch/{file_name}"
    print(f"launch_run: {path} {' '.join(args)} (composition_interfaces stand-in: {stand_in})", flush=True)
    # noninteractive (`ros2 launch --noninteractive`): no terminal delivers Ctrl-C to the launched processes'
    # process group here, so on SIGINT launch itself must send SIGINT to each of them (interactive launch only
    # escalates to SIGTERM after 5 s, assuming the terminal already did).
    service = LaunchService(argv=args, noninteractive=True)
    service.include_launch_description(
        LaunchDescription(
            [IncludeLaunchDescription(AnyLaunchDescriptionSource(path), launch_arguments=parse_arguments(args))]
        )
    )
    return service.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
