"""Fused blocked MMD (``mmd2``) against the straightforward three-matrix form, forward+backward.

The training losses need MMD^2 between two sample sets of the batch size, and its gradient,
twice per step. ``mmd2_reference`` is the authors' form: the matrices K_xx, K_yy, K_xy per
width, all kept for autograd. ``mmd2`` computes value and gradient in one pass over blocks of
rows (``invkit/training/losses.py``). Both get the same inputs; the model side requires grad.

Run:  python benchmarks/mmd.py [--batches 500,1600,3200] [--dim 4] [--repeats 9] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, interleaved, median, paired_ratio, set_threads, table  # noqa: E402

from invkit.device import configure_numerics  # noqa: E402
from invkit.training.losses import mmd2, mmd2_reference  # noqa: E402

WIDTHS = [0.05, 0.2, 0.9]


def fwd_bwd(fn, x: torch.Tensor, y: torch.Tensor, calls: int):
    def run() -> None:
        for _ in range(calls):
            x.grad = None
            fn(x, y, WIDTHS).backward()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="500,1600,3200", help="samples per set")
    parser.add_argument("--dim", type=int, default=4, help="dimension of the samples")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved repeats per side")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smoke run: small and few repeats")
    args = parser.parse_args()
    set_threads(args.threads)
    configure_numerics(torch.device(args.device))
    batches = [int(b) for b in args.batches.split(",")]
    repeats = args.repeats
    if args.quick:
        batches, repeats = [500, 1600], 3
    header("MMD^2 forward+backward: fused vs three matrices", args.device)

    rows = []
    for b in batches:
        g = torch.Generator().manual_seed(b)
        x = torch.randn(b, args.dim, generator=g).to(args.device).requires_grad_()
        y = (torch.randn(b, args.dim, generator=g) + 0.3).to(args.device)
        calls = max(1, 3200 // b)  # about the same work per timed repeat
        cases = {"fused": fwd_bwd(mmd2, x, y, calls),
                 "reference": fwd_bwd(mmd2_reference, x, y, calls)}
        t = interleaved(cases, repeats, args.device)
        fused, ref = median(t["fused"]) / calls, median(t["reference"]) / calls
        rows.append([b, f"{ref * 1e3:.2f}", f"{fused * 1e3:.2f}",
                     f"{paired_ratio(t['reference'], t['fused']):.2f}x"])
    print(f"dim {args.dim}, widths {WIDTHS}, {repeats} interleaved repeats, medians per call")
    print(table(["batch", "reference ms", "fused ms", "speed-up (median of pairs)"], rows))


if __name__ == "__main__":
    main()
