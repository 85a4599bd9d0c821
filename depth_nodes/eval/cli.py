"""``depth-nodes eval DATA_DIR --method NAME``: devkit metrics, AUSE and a report for one completer."""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_nodes.completion.cli import add_input_arguments, add_method_arguments, occlusion_arg, parse_params
from depth_nodes.eval.evaluator import evaluate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", type=Path, help="KITTI val_selection_cropped-style directory")
    add_method_arguments(parser)
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, help="output directory (default eval_out/METHOD)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random reference confidence")
    parser.add_argument("--figures", type=int, default=10, help="frames with a figure in the report")
    parser.add_argument("--max-frames", type=int, help="evaluate only the first N frames")
    parser.add_argument(
        "--confidence-format",
        choices=("png", "npy", "none"),
        default="png",
        help="confidence output: uint16 PNG (x 65535), float32 .npy, or none",
    )
    parser.epilog = (
        "Units: depth PNGs are uint16 = metres x 256 (0 = no data); MAE/RMSE in mm, iMAE/iRMSE in 1/km "
        "(inverse depth in 1/m x 1000), AbsRel and delta<1.25 unitless, times in ms. Holes in the "
        "prediction are filled the way the KITTI devkit does before scoring. Writes predictions/, "
        "confidence/, metrics.json and report.html."
    )


def run(args: argparse.Namespace) -> int:
    out = args.output or Path("eval_out") / args.method
    summary = evaluate(
        args.data_dir,
        args.method,
        parse_params(args.param),
        out,
        seed=args.seed,
        confidence_format=args.confidence_format,
        n_figures=args.figures,
        max_frames=args.max_frames,
        conditioned=args.conditioned,
        occlusion=occlusion_arg(args),
    )
    m = summary["mean"]
    if m:
        print(
            f"{summary['method']} on {summary['n_frames']} frames: MAE {m['mae_mm']:.1f} mm, "
            f"RMSE {m['rmse_mm']:.1f} mm, iMAE {m['imae_per_km']:.2f} 1/km, iRMSE {m['irmse_per_km']:.2f} 1/km, "
            f"AbsRel {m['absrel']:.4f}, delta1 {m['delta1']:.4f}; AUSE {m.get('ause_rmse', float('nan')):.4f} "
            f"(random {m.get('ause_rmse_random', float('nan')):.4f}); "
            f"time p50 {summary['timing']['p50_ms']:.1f} ms"
        )
    print(f"report: {(out / 'report.html').resolve()}")
    return 0
