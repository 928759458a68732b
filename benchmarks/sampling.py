"""Posterior sampling throughput: invkit's batched ``Posterior.sample`` vs a naive loop.

The network is the kinematics problem's INN of a preset (``--preset default``, its ``inn``
block: 6 GLOW blocks, subnets 128-128; ``paper``: the published 7 blocks, 512-512), built from
the preset config; untrained, which does not change the cost. Two workloads:
one observation with many samples, and 1000 observations at once. The baseline, measured in
the same run and interleaved, is the straightforward use of the same model: one inverse
pass per observation, without ``torch.inference_mode`` (autograd records the graph).

The cost is fixed by the network: the script prints the multiply-adds per sample, so the
figures can be read against the machine's arithmetic rate.

Run:  python benchmarks/sampling.py [--preset default] [--samples 100000] [--obs 1000]
      [--per-obs 100] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import (  # noqa: E402
    fmt_rate,
    header,
    interleaved,
    median,
    paired_ratio,
    set_threads,
    table,
)

from invkit import api  # noqa: E402
from invkit.device import configure_numerics, resolve_device  # noqa: E402
from invkit.posterior import Posterior  # noqa: E402
from invkit.training.trainer import build_model  # noqa: E402


def macs_per_sample(model: nn.Module) -> int:
    """Multiply-adds of one inverse pass per sample: the Linear layers of every subnet."""
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))


def naive_sample(model: nn.Module, y: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """One observation at a time, autograd left on (what a first script does)."""
    out = []
    for row in y:
        x, _ = model.sample_posterior(row[None].expand(n, -1), gen)
        out.append(x.detach())
    return torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100_000, help="for one observation")
    parser.add_argument("--obs", type=int, default=1000, help="observations at once")
    parser.add_argument("--per-obs", type=int, default=100, help="samples per observation")
    parser.add_argument("--preset", default="default", help="kinematics preset of the network")
    parser.add_argument("--chunk", type=int, default=0,
                        help="Posterior.sample chunk (rows per pass); 0 keeps its default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smoke run: small and few repeats")
    args = parser.parse_args()
    set_threads(args.threads)
    if args.quick:
        args.samples, args.obs, args.per_obs, args.repeats = 10_000, 100, 100, 3
    dev = resolve_device(args.device)
    configure_numerics(dev)
    header(f"Posterior sampling throughput (kinematics {args.preset}-preset INN)", str(dev))

    cfg, problem = api.resolve("kinematics", args.preset, {"model.kind": "inn"}, device=str(dev))
    model = build_model(cfg, problem).to(dev)
    post = Posterior(model, problem, cfg, dev)
    macs = macs_per_sample(model)
    print(f"network: {cfg.model.n_blocks} {cfg.model.block} blocks, subnets "
          f"{cfg.model.subnet_width} x {cfg.model.subnet_depth}, width {model.dim_total}; "
          f"{macs / 1e6:.2f} M multiply-adds per sample")
    kw = {"chunk": args.chunk} if args.chunk else {}
    gen = torch.Generator(device=dev).manual_seed(0)
    y1 = torch.tensor([1.5, 0.3], device=dev)
    ym = problem.simulate(problem.sample_prior(args.obs, gen), gen)

    rows = []
    workloads = [
        (f"1 observation x {args.samples}", y1[None], args.samples),
        (f"{args.obs} observations x {args.per_obs}", ym, args.per_obs),
    ]
    for label, y, n in workloads:
        cases = {
            "naive loop, autograd on": lambda y=y, n=n: naive_sample(model, y, n, gen),
            "invkit, one pass (chunk 1e6)":
                lambda y=y, n=n: post.sample(y, n, generator=gen, chunk=1_000_000),
            f"invkit (chunk {post._rows_per_pass(args.chunk or None)})":
                lambda y=y, n=n: post.sample(y, n, generator=gen, **kw),
        }
        t = interleaved(cases, args.repeats, dev)
        total = y.shape[0] * n
        base = "naive loop, autograd on"
        for name in cases:
            rate = total / median(t[name])
            rows.append([label, name, fmt_rate(rate), f"{paired_ratio(t[base], t[name]):.2f}x",
                         f"{2 * macs * rate / 1e9:.0f}"])
    print(f"{args.repeats} interleaved repeats, medians")
    print(table(["workload", "method", "samples/s", "vs naive (median of pairs)", "GFLOP/s"],
                rows))


if __name__ == "__main__":
    main()
