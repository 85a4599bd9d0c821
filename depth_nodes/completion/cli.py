"""``depth-nodes complete IN --method NAME -o OUT``: complete KITTI sparse depth PNGs with a completer.

The sparse input is raw by default (KITTI DC's ``velodyne_raw``: see-through returns are removed by the
completer's occlusion filter first, as the node removes them while projecting); ``--conditioned`` declares
it already filtered. ``IN`` is a ``val_selection_cropped``-style directory (every frame; predictions named like the
``groundtruth_depth`` files so the KITTI devkit can compare the folders) or one sparse depth PNG
(``--image`` adds its RGB image for guided completers). Output: uint16 PNGs (metres x 256, 0 = no
estimate) and confidence PNGs (uint16 = confidence x 65535).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from depth_nodes.completion.base import Completer
from depth_nodes.completion.conditioning import parse_filter_args
from depth_nodes.completion.registry import DEFAULT_COMPLETER, available, create
from depth_nodes.data.kitti_depth import list_frames, read_depth_png, read_rgb, write_depth_png
from depth_nodes.errors import DataFormatError, DepthNodesError, InputShapeError, OcclusionFilterError

CONFIDENCE_SCALE = 65535.0


def parse_params(items: list[str] | None) -> dict[str, object]:
    """``["key=value", ...]`` -> dict; values parsed as YAML scalars (``3`` -> int, ``true`` -> bool)."""
    params: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DepthNodesError(f"--param expects key=value, got {item!r}")
        try:
            params[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as exc:
            raise DepthNodesError(f"--param {item!r}: cannot parse the value ({exc})") from exc
    return params


def build_completer(method: str, params: dict[str, object], occlusion: object = "keep") -> Completer:
    """``completion.create`` with errors turned into messages that name the method or parameter.

    ``occlusion``: the see-through filter for raw input (``parse_filter_args``); ``"keep"``: the
    completer's own."""
    names = available()
    if method not in names:
        raise DepthNodesError(f"unknown method {method!r}; available: {', '.join(names) or 'none'}")
    if not (isinstance(occlusion, str) and occlusion == "keep"):
        params = {**params, "occlusion": occlusion}
    try:
        return create(method, **params)
    except OcclusionFilterError:
        raise
    except TypeError as exc:
        raise DepthNodesError(f"bad parameter for {method!r}: {exc}") from exc
    except ValueError as exc:
        raise DepthNodesError(f"bad parameter for {method!r}: {exc}") from exc


def prediction_name(image_name: str) -> str:
    """File name of a prediction: the frame's ``groundtruth_depth`` name (devkit convention)."""
    stem = Path(image_name).stem
    return stem.replace("_image_", "_groundtruth_depth_", 1) + ".png"


def write_confidence_png(path: str | Path, confidence: np.ndarray) -> None:
    """Confidence 0..1 as uint16 PNG (x 65535); NaN -> 0."""
    conf = np.nan_to_num(np.asarray(confidence, np.float32), nan=0.0)
    raw = np.round(np.clip(conf, 0.0, 1.0) * CONFIDENCE_SCALE).astype(np.uint16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), raw):
        raise DataFormatError(f"could not write PNG: {path}")


def read_confidence_png(path: str | Path) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16:
        raise DataFormatError(f"not a uint16 confidence PNG: {path}")
    return raw.astype(np.float32) / CONFIDENCE_SCALE


def check_same_size(sparse: np.ndarray, image: np.ndarray | None, where: str) -> None:
    if image is not None and image.shape[:2] != sparse.shape:
        raise InputShapeError(
            f"{where}: image is {image.shape[1]}x{image.shape[0]} but sparse depth is "
            f"{sparse.shape[1]}x{sparse.shape[0]}"
        )


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """``--raw`` (default) / ``--conditioned`` and ``--occlusion`` (``complete``, ``eval``, ``bench``)."""
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument(
        "--raw",
        dest="conditioned",
        action="store_false",
        help="the sparse input is raw, as KITTI DC's velodyne_raw (see-through returns included): each "
        "completer removes them first with its occlusion filter (default)",
    )
    kind.add_argument(
        "--conditioned",
        dest="conditioned",
        action="store_true",
        help="the sparse input is already filtered (make-gt's default output, the node's projection): "
        "not filtered again",
    )
    parser.set_defaults(conditioned=False)
    parser.add_argument(
        "--occlusion",
        action="append",
        metavar="KEY=VALUE|off|default",
        help="see-through filter for raw input (repeatable KEY=VALUE: vertical_px, horizontal_px, band_px, "
        "side_band_up_px, relative_margin, absolute_margin_m); 'off' = none. Default: each completer's own "
        "(the spinning-LiDAR defaults; none for the published ip_basic baselines)",
    )


def occlusion_arg(args: argparse.Namespace) -> object:
    """The ``--occlusion`` setting of parsed ``args`` (``"keep"`` when not given)."""
    return parse_filter_args(getattr(args, "occlusion", None))


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """``--method`` and repeatable ``--param key=value`` (shared by ``complete`` and ``eval``)."""
    parser.add_argument(
        "--method", default=DEFAULT_COMPLETER, help=f"completer name (default {DEFAULT_COMPLETER})"
    )
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="completer parameter (repeatable); units as in the parameter name (_m metres, _px pixels)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", type=Path, help="val_selection_cropped-style directory, or one sparse depth PNG"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    add_method_arguments(parser)
    parser.add_argument("--image", type=Path, help="RGB image for a single sparse PNG (guided completers)")
    parser.add_argument("--no-confidence", action="store_true", help="do not write confidence PNGs")
    add_input_arguments(parser)
    parser.epilog = (
        "Units: input/output depth PNGs are KITTI uint16 = metres x 256 (0 = no data / no estimate); "
        "confidence PNGs are uint16 = confidence (0..1) x 65535."
    )


def run(args: argparse.Namespace) -> int:
    completer = build_completer(args.method, parse_params(args.param), occlusion_arg(args))
    out: Path = args.output
    if args.input.is_dir():
        frames = list_frames(args.input)
        jobs = [(f.velodyne_raw, f.image, prediction_name(f.image.name)) for f in frames]
    elif args.input.is_file():
        jobs = [(args.input, args.image, args.input.name)]
    else:
        raise DataFormatError(f"input not found: {args.input}")
    for sparse_path, image_path, name in tqdm(jobs, desc=f"complete ({completer.name})", unit="frame"):
        sparse = read_depth_png(sparse_path)
        image = read_rgb(image_path) if (image_path is not None and completer.uses_image) else None
        check_same_size(sparse, image, str(sparse_path))
        if completer.uses_image and image is None:
            print(
                f"note: {completer.name} uses an image but none was given; completing without",
                file=sys.stderr,
            )
        result = completer.complete(sparse, image, conditioned=args.conditioned)
        write_depth_png(out / name, result.depth)
        if not args.no_confidence:
            write_confidence_png(out / "confidence" / name, result.confidence)
    print(f"wrote {len(jobs)} prediction(s) to {out}")
    return 0
