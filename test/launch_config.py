"""What ``launch/depth_nodes.launch.py`` configures with its default arguments, read from its syntax tree.

``launch`` / ``launch_ros`` are not importable here, so the launch file is evaluated statically: the
parameter files and overrides of its ``Node(...)`` and the environment its ``SetEnvironmentVariable``
actions set when their ``IfCondition`` argument defaults to true. Anything this reader does not understand
raises, so a changed launch file fails the defaults test loudly instead of silently testing something else.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from depth_nodes import resources

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "depth_nodes.launch.py"


@dataclass
class LaunchedNode:
    params_files: list[Path] = field(default_factory=list)
    overrides: dict = field(default_factory=dict)  # the inline parameter dict, typed like launch_ros does
    env: dict[str, str] = field(default_factory=dict)
    ros_args: list[str] = field(default_factory=list)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.tree = ast.parse(path.read_text(), str(path))
        self.names = {
            t.id: n.value for n in ast.walk(self.tree) if isinstance(n, ast.Assign)
            for t in n.targets if isinstance(t, ast.Name)
        }  # fmt: skip
        self.defaults = {}
        for call in self.calls("DeclareLaunchArgument"):
            kw = {k.arg: k.value for k in call.keywords}
            if "default_value" in kw:  # a required argument (e.g. kitti_playback's bag) has none
                self.defaults[self.value(call.args[0])] = kw["default_value"]

    def calls(self, name: str) -> list[ast.Call]:
        return [
            n for n in ast.walk(self.tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", "")) == name
        ]  # fmt: skip

    def value(self, node):
        """A string, a config path or a launch argument's default value for ``node``."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name) and node.id in self.names:
            return self.value(self.names[node.id])
        if isinstance(node, ast.Call):
            fn = getattr(node.func, "id", "")
            if fn == "LaunchConfiguration":
                return self.value(self.defaults[self.value(node.args[0])])
            if fn == "PathJoinSubstitution":
                parts = [self.value(e) for e in node.args[0].elts[1:]]  # [share, "config", name]
                if parts[0] == "config" and len(parts) == 2:
                    return resources.config_path(parts[1])
            if fn == "FindPackageShare":
                return "<share>"
            if fn == "PythonExpression":  # e.g. ["'", LaunchConfiguration("transport"), "' == 'shm'"]
                expr = "".join(str(self.value(e)) for e in node.args[0].elts)
                return eval(expr, {"__builtins__": {}})  # noqa: S307 - our own launch file's expression
        raise ValueError(f"launch_config does not understand {ast.dump(node)[:200]}")


def launched_node(path: Path = LAUNCH_FILE) -> LaunchedNode:
    r = _Reader(path)
    out = LaunchedNode()
    (node,) = r.calls("Node")
    kw = {k.arg: k.value for k in node.keywords}
    for item in kw["parameters"].elts:
        if isinstance(item, ast.Dict):
            # launch_ros types substituted strings as YAML ("false" -> False)
            out.overrides.update(
                {
                    r.value(k): yaml.safe_load(str(r.value(v)))
                    for k, v in zip(item.keys, item.values, strict=True)
                }
            )
        else:
            out.params_files.append(Path(r.value(item)))
    for action in r.calls("SetEnvironmentVariable"):
        cond = {k.arg: k.value for k in action.keywords}.get("condition")
        if cond is not None:
            (arg,) = cond.args  # IfCondition(LaunchConfiguration(...) | PythonExpression([...]))
            if not yaml.safe_load(str(r.value(arg))):
                continue
        out.env[r.value(action.args[0])] = str(r.value(action.args[1]))
    args = [str(r.value(a)) for a in kw.get("arguments", ast.List(elts=[])).elts]
    out.ros_args = args[1:] if args[:1] == ["--ros-args"] else args
    return out
