"""Grad-CAM heat maps of trained runs on the same validation images (the paper's Fig. 7-8).

    python -m fer_ablation.gradcam RUN_DIR [RUN_DIR ...] [--classes happiness sadness] [--n 4]
                                   [--out results/figures/gradcam_<group>.png] [--layer layer4.2]

The method, the images drawn and the figure's layout: :mod:`fer_ablation.inference.gradcam`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer_ablation.inference.gradcam import DEFAULT_CLASSES, draw


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_ablation.gradcam", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+", type=Path,
                   help="run folders, or checkpoints inside them (one overlay column each)")
    p.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES), help="classes drawn (names or aliases)")
    p.add_argument("--n", type=int, default=4, help="images per class (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="PNG (default: results/figures/gradcam_<group>.png)")
    p.add_argument("--layer", default=None, help="target module (default: the last Bottleneck of layer4)")
    p.add_argument("--target", choices=("true", "pred"), default="true", help="class explained (default: true)")
    args = p.parse_args(argv)
    try:
        figure = draw(args.run_dirs, classes=args.classes, n=args.n, out=args.out, layer=args.layer,
                      target=args.target)
    except (FileNotFoundError, ValueError) as exc:
        print(f"gradcam: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {figure.out}")
    return 0
