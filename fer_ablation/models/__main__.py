"""Model report: parameters, added parameters, MACs and a forward check for every attention x stem.

    python -m fer_ablation.models [--size 48 224] [--markdown] [--num-classes 7] [--attention none ca ...]
"""

import argparse
import sys

import torch

from fer_ablation.models.complexity import count_parameters, profile
from fer_ablation.models.attention import attention_names
from fer_ablation.models.resnet import STEMS, build_model

REPORT_ATTENTIONS = ("none",) + attention_names() + ("ca+simam",)


def report_rows(sizes, num_classes=7, attentions=REPORT_ATTENTIONS):
    """One dict per attention x stem; the first row (attentions[0], stride2) is the baseline."""
    rows, baseline = [], None
    for attention in attentions:
        for stem in STEMS:
            torch.manual_seed(0)
            model = build_model(attention, stem, num_classes=num_classes)
            params = count_parameters(model)
            baseline = params if baseline is None else baseline
            macs, check = {}, "ok"
            for size in sizes:
                macs[size], out = profile(model, size)
                if tuple(out.shape) != (1, num_classes) or not torch.isfinite(out).all():
                    check = f"FAIL at {size}px: shape {tuple(out.shape)}, finite={bool(torch.isfinite(out).all())}"
            rows.append(dict(attention=attention, stem=stem, params=params, added=params - baseline, macs=macs, check=check))
    return rows


def format_table(rows, sizes, markdown=False) -> str:
    header = ["attention", "stem", "params", "added vs baseline"] + [f"GMACs@{s}px" for s in sizes] + ["forward"]
    body = [
        [r["attention"], r["stem"], f"{r['params']:,}", f"{r['added']:+,}"]
        + [f"{r['macs'][s] / 1e9:.3f}" for s in sizes]
        + [r["check"]]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if 1 < i < len(header) - 1 else "---" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    fmt = lambda row: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in body])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_ablation.models", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[48, 224], help="input sizes in px (default: 48 224)")
    parser.add_argument("--num-classes", type=int, default=7)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument(
        "--attention", nargs="+", default=list(REPORT_ATTENTIONS), help="rows to report (default: all; first = baseline)"
    )
    args = parser.parse_args(argv)
    rows = report_rows(args.size, args.num_classes, args.attention)
    print(format_table(rows, args.size, markdown=args.markdown))
    if args.markdown:
        print(
            f"\nResNet50, {args.num_classes} classes, batch 1, eval mode; MACs = FLOPs / 2 from "
            "torch.utils.flop_counter (convolutions and matrix products only)."
        )
    return 0 if all(r["check"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
