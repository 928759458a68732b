"""Trained arm posteriors against the exact one, target by target and by |y|.

For each run directory given (a trained ``kinematics`` run), on its own held-out targets (the
first ``--targets`` of the held-out split, as ``invkit run`` evaluates):

* per-target Err_post against the exact posterior (``invkit_kinematics.exact``) and, with
  ``--abc-pool``, against the benchmark protocol's quantile-ABC reference (the ``--samples``
  nearest of a pool of that many simulations, as ``eval.reference=baseline``); per-target
  Err_resim; the noise floor (a second exact set against the first);
* by |y| bin: mean Err_post and Err_resim, central coverage (the share of exact posterior
  samples inside the model's central interval of each level, per coordinate; its mean over
  targets is the expected coverage of the bin, without the noise of one true x per target),
  and the posterior spread ratio per coordinate (model std / exact std, geometric mean over
  the bin's targets);
* the worst 5% of targets by |y| against the mean (the issue's target: at most 2x).

Writes a markdown report (``--out``, with a ``.json`` of every per-target figure beside it)
and, with ``--figure``, the tutorial's figure: per-target Err_post against |y| for each run,
with the floor, and by bin the spread ratios and the coverage deviation.

Run:  python benchmarks/kinematics_by_radius.py RUN [RUN ...] --labels INN,cINN
          [--targets 1000] [--samples 4000] [--abc-pool 1e8] [--threads 1]
          [--figure docs/_static/kinematics-by-radius.png] [--out runs/by_radius.md]
      --quick: 100 targets x 1000 samples, no ABC reference.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import invkit
from invkit.config import RunConfig
from invkit.evaluation.calibration import DEFAULT_LEVELS
from invkit.evaluation.metrics import err_post, err_resim
from invkit.evaluation.reference import reference_samples
from invkit.loading import load_run
from invkit.training.data import held_out_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, set_threads, table  # noqa: E402

BINS = (0.0, 1.5, 1.8, 1.9, 2.0, 2.1, 2.2, float("inf"))
"""|y| bins (as benchmarks/kinematics_exact.py): from 2.0 on the arm is nearly straight and
the shoulder offset x1 carries the rest."""
COORDS = ("x1", "x2", "x3", "x4")
WORST_SHARE = 0.05


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def central_coverage(model: Tensor, ref: Tensor, levels: tuple[float, ...] = DEFAULT_LEVELS
                     ) -> Tensor:
    """(L, B, d): the share of ``ref`` samples (B, m, d) inside the central interval of each
    level of ``model``'s samples (B, n, d), per target and coordinate."""
    lv = torch.tensor(levels, dtype=model.dtype)
    q = torch.cat([(1 - lv) / 2, (1 + lv) / 2])
    out = []
    for b0 in range(0, model.shape[0], 50):  # torch.quantile copies its input: in parts
        mq = torch.quantile(model[b0:b0 + 50], q, dim=1)  # (2L, b, d)
        lo, hi = mq[:len(levels)], mq[len(levels):]
        r = ref[b0:b0 + 50][None]  # (1, b, m, d)
        out.append(((r >= lo[:, :, None]) & (r <= hi[:, :, None])).float().mean(2))
    return torch.cat(out, 1)


def analyse(model: Tensor, ref: Tensor, targets: Tensor, resim: Tensor,
            ref_abc: Tensor | None = None, floor: Tensor | None = None) -> dict[str, Any]:
    """Every figure of the report for one model's samples (B, n, 4) against exact ``ref``."""
    _, post = err_post(model, ref)
    out: dict[str, Any] = {"radius": targets.norm(dim=1).tolist(), "err_post": post.tolist(),
                           "err_resim": resim.tolist()}
    if ref_abc is not None:
        out["err_post_abc"] = err_post(model, ref_abc)[1].tolist()
    if floor is not None:
        out["floor"] = floor.tolist()
    out["spread_ratio"] = (model.std(1) / ref.std(1)).tolist()  # (B, d)
    cov = central_coverage(model, ref)  # (L, B, d)
    out["coverage"] = cov.mean(2).T.tolist()  # (B, L): mean over coordinates
    out["coverage_per_dim"] = cov.permute(1, 0, 2).tolist()  # (B, L, d)
    return out


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """Means overall, the worst 5% by |y|, and per bin."""
    radius = torch.tensor(res["radius"])
    post = torch.tensor(res["err_post"])
    resim = torch.tensor(res["err_resim"])
    spread = torch.tensor(res["spread_ratio"]).log()
    cov = torch.tensor(res["coverage"]) - torch.tensor(DEFAULT_LEVELS)[None]
    cov_dim = torch.tensor(res["coverage_per_dim"]) - torch.tensor(DEFAULT_LEVELS)[None, :, None]
    k = max(1, round(WORST_SHARE * len(radius)))
    worst = radius.argsort(descending=True)[:k]
    s: dict[str, Any] = {
        "err_post": float(post.mean()), "err_resim": float(resim.mean()),
        "worst5_err_post": float(post[worst].mean()),
        "worst5_ratio": float(post[worst].mean() / post.mean()),
        "worst5_min_radius": float(radius[worst].min()),
        "coverage_max_dev": float(cov.mean(0).abs().max()),
        "bins": [],
    }
    if "err_post_abc" in res:
        s["err_post_abc"] = float(torch.tensor(res["err_post_abc"]).mean())
    if "floor" in res:
        s["floor"] = float(torch.tensor(res["floor"]).mean())
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        sel = (radius >= lo) & (radius < hi)
        if not bool(sel.any()):
            continue
        c = cov[sel].mean(0)  # (L,)
        cd = cov_dim[sel].mean(0)  # (L, d)
        row = {"bin": [lo, hi], "targets": int(sel.sum()),
               "err_post": float(post[sel].mean()), "err_resim": float(resim[sel].mean()),
               "coverage_max_dev": float(c.abs().max()),
               "coverage_signed": float(c[c.abs().argmax()]),
               "coverage_max_dev_per_dim": cd.abs().max(0).values.tolist(),
               "spread_ratio": spread[sel].mean(0).exp().tolist()}
        if "err_post_abc" in res:
            row["err_post_abc"] = float(torch.tensor(res["err_post_abc"])[sel].mean())
        if "floor" in res:
            row["floor"] = float(torch.tensor(res["floor"])[sel].mean())
        s["bins"].append(row)
    return s


def run_samples(run: str, n_targets: int, n: int) -> tuple[Tensor, Tensor, Tensor, RunConfig]:
    """(model samples, targets, Err_resim per target, config) on the run's held-out targets."""
    posterior, cfg, _ = load_run(run)
    _, y_test = held_out_split(posterior.problem, cfg.data, cfg.seed, torch.device("cpu"))
    targets = y_test[:n_targets]
    samples = posterior.sample(targets, n, generator=gen(cfg.seed + 2))
    _, resim = err_resim(samples, targets, posterior.problem.forward)
    return samples, targets, resim, cfg


def abc_reference(cfg: RunConfig, targets: Tensor, n: int, pool: int) -> Tensor:
    """The reference of ``--set eval.reference=baseline --set eval.reference_budget=POOL``
    (the same samples, through the same on-disk cache as ``invkit evaluate``)."""
    cfg = copy.deepcopy(cfg)
    cfg.eval.reference, cfg.eval.reference_budget, cfg.eval.n_samples = "baseline", pool, n
    problem = invkit.get_problem("kinematics")
    got = reference_samples(problem, targets, cfg, gen(0), progress=False)
    assert not isinstance(got, str), got
    return got[0]


def _bin_name(row: dict[str, Any]) -> str:
    lo, hi = row["bin"]
    return f"[{lo:g}, {'inf' if math.isinf(hi) else f'{hi:g}'})"


def report(labels: list[str], summaries: list[dict[str, Any]], args: argparse.Namespace,
           timings: dict[str, float]) -> str:
    lines = [f"# Per-|y| analysis: {args.targets} held-out targets x {args.samples} samples, "
             f"exact reference\n"]
    abc = "err_post_abc" in summaries[0]
    head = ["model", "Err_post (exact)"] + (["Err_post (quantile ABC)"] if abc else []) + \
        ["Err_resim", "worst 5% by |y|: Err_post", "/ mean", "central coverage, max dev."]
    rows = []
    for lab, s in zip(labels, summaries):
        rows.append([lab, f"{s['err_post']:.5f}"] + ([f"{s['err_post_abc']:.5f}"] if abc else [])
                    + [f"{s['err_resim']:.5f}", f"{s['worst5_err_post']:.5f}",
                       f"{s['worst5_ratio']:.2f}", f"{s['coverage_max_dev']:.3f}"])
    if "floor" in summaries[0]:
        rows.append(["floor (exact vs exact)", f"{summaries[0]['floor']:.5f}"]
                    + (["-"] if abc else []) + ["0", "", "", ""])
    lines += [table(head, rows), ""]
    lines.append(f"worst 5%: the {round(WORST_SHARE * args.targets)} targets of largest |y| "
                 f"(|y| >= {summaries[0]['worst5_min_radius']:.3f})\n")
    for lab, s in zip(labels, summaries):
        lines.append(f"## {lab} by |y|\n")
        rows = []
        for b in s["bins"]:
            rows.append([_bin_name(b), str(b["targets"]), f"{b['err_post']:.5f}"]
                        + ([f"{b['err_post_abc']:.5f}"] if abc else [])
                        + ([f"{b['floor']:.5f}"] if "floor" in b else [])
                        + [f"{b['err_resim']:.5f}", f"{b['coverage_signed']:+.3f}"]
                        + [f"{v:.2f}" for v in b["spread_ratio"]])
        lines += [table(["|y|", "targets", "Err_post"] + (["Err_post ABC"] if abc else [])
                        + (["floor"] if "floor" in s["bins"][0] else [])
                        + ["Err_resim", "coverage dev. (largest)"]
                        + [f"spread {c}" for c in COORDS], rows), ""]
    lines.append("coverage dev.: the largest deviation from nominal over the levels "
                 f"{', '.join(f'{v:g}' for v in DEFAULT_LEVELS)}, of the central coverage "
                 "(mean over the four coordinates), signed (negative: overconfident); spread: "
                 "model std / exact std per coordinate, geometric mean over the bin\n")
    lines.append("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + "\n")
    return "\n".join(lines)


def figure(labels: list[str], results: list[dict[str, Any]], summaries: list[dict[str, Any]],
           path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), gridspec_kw={"width_ratios": [1.5, 1, 1]})
    ax = axes[0]
    for i, (lab, res) in enumerate(zip(labels, results)):
        ax.scatter(res["radius"], res["err_post"], s=5, alpha=0.45, color=colours[i],
                   label=f"{lab} (mean {summaries[i]['err_post']:.4f})")
    for i, s in enumerate(summaries):  # the bins' means, as a line
        ax.plot([(b["bin"][0] + min(b["bin"][1], 2.4)) / 2 for b in s["bins"]],
                [b["err_post"] for b in s["bins"]], color=colours[i], lw=1.5, marker="D",
                ms=4, mec="k", mew=0.5)
    if "floor" in results[0]:
        ax.scatter(results[0]["radius"], results[0]["floor"], s=4, alpha=0.35, color="grey",
                   label=f"exact vs exact (mean {summaries[0]['floor']:.4f})")
    ax.axhline(0.005, color="k", lw=0.8, ls="--", label="target mean 0.005")
    ax.set_yscale("log")
    ax.set_xlabel("|y| (distance of the end point from the origin)")
    ax.set_ylabel("Err_post against the exact posterior")
    ax.set_title("per held-out target (line: mean of each |y| bin)")
    ax.legend(fontsize=7, loc="upper left")
    names = [_bin_name(b) for b in summaries[0]["bins"]]
    ax = axes[1]
    marks = ["o", "s", "^", "v"]
    for i, (lab, s) in enumerate(zip(labels, summaries)):
        sr = torch.tensor([b["spread_ratio"] for b in s["bins"]])
        for d, c in enumerate(COORDS):
            ax.plot(range(len(names)), sr[:, d], marker=marks[d], color=colours[i], lw=1,
                    alpha=0.8, label=f"{lab} {c}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=40, fontsize=7)
    ax.set_xlabel("|y| bin")
    ax.set_ylabel("posterior std, model / exact")
    ax.set_title("spread per coordinate")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[2]
    for i, (lab, s) in enumerate(zip(labels, summaries)):
        ax.plot(range(len(names)), [b["coverage_signed"] for b in s["bins"]], marker="o",
                color=colours[i], label=lab)
    ax.axhspan(-0.02, 0.02, color="0.9", label="target: within 0.02")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=40, fontsize=7)
    ax.set_xlabel("|y| bin")
    ax.set_ylabel("central coverage - nominal (largest)")
    ax.set_title("calibration by |y|")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="trained kinematics run directories")
    parser.add_argument("--labels", default="", help="comma-separated, one per run")
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--abc-pool", type=float, default=0.0,
                        help="quantile-ABC reference from a pool of this many simulations "
                             "(the protocol: 1e8); 0: none")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps default")
    parser.add_argument("--figure", default="", help="write the figure here (.png)")
    parser.add_argument("--out", default="runs/by_radius.md")
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the second exact set (the noise floor)")
    parser.add_argument("--quick", action="store_true", help="100 targets x 1000, no ABC")
    args = parser.parse_args()
    set_threads(args.threads)
    if args.quick:
        args.targets, args.samples, args.abc_pool = 100, 1000, 0.0
    labels = args.labels.split(",") if args.labels else [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        parser.error("one label per run")
    header("Arm posteriors against the exact posterior, by |y|")
    timings: dict[str, float] = {}
    results, summaries = [], []
    refs: dict[tuple[int, int], tuple[Tensor, Tensor | None, Tensor | None]] = {}
    problem = invkit.get_problem("kinematics")
    for run in args.runs:
        t0 = time.perf_counter()
        samples, targets, resim, cfg = run_samples(run, args.targets, args.samples)
        timings[f"sampling {Path(run).name}"] = time.perf_counter() - t0
        key = (cfg.seed, cfg.data.n_test)  # runs with one seed share their held-out targets
        if key not in refs:
            t0 = time.perf_counter()
            ref = problem.reference_posterior(targets, args.samples, gen(cfg.seed + 2))
            floor = None
            if not args.no_floor:
                second = problem.reference_posterior(targets, args.samples, gen(cfg.seed + 1002))
                _, floor = err_post(second, ref)
            timings[f"exact reference seed {cfg.seed}"] = time.perf_counter() - t0
            ref_abc = None
            if args.abc_pool > 0:
                t0 = time.perf_counter()
                ref_abc = abc_reference(cfg, targets, args.samples, int(args.abc_pool))
                timings[f"quantile-ABC reference seed {cfg.seed}"] = time.perf_counter() - t0
            refs[key] = (ref, floor, ref_abc)
        ref, floor, ref_abc = refs[key]
        t0 = time.perf_counter()
        res = analyse(samples, ref, targets, resim, ref_abc, floor)
        timings[f"metrics {Path(run).name}"] = time.perf_counter() - t0
        results.append(res)
        summaries.append(summary(res))
    text = report(labels, summaries, args, timings)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(
        {"runs": args.runs, "labels": labels, "summaries": summaries, "results": results}))
    if args.figure:
        figure(labels, results, summaries, Path(args.figure))
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
