"""invkit's defaults on the sbibm tasks, beside sbi's NPE: one markdown table.

For each task and simulation budget, ``invkit.train("sbibm_<task>")`` runs with the core
defaults and nothing else but the budget (``data.simulations``), as a new user's ``invkit run``
would; the evaluation is sbibm's: C2ST (:mod:`invkit.evaluation.c2st`) of the posterior's
samples against sbibm's reference posterior samples on the task's official observations. The
table shows the mean C2ST over the observations (min-max), the training time, the steps
trained, and NPE's published figure at the same budget (sbi-benchmark/results,
``main_paper.csv``: sbibm's NPE, a neural spline flow; lower is better, 0.5 is perfect).

The other evaluation figures (Err_post against an ABC reference, calibration, plots) are
switched off: they are not what the table reports, and the ABC reference alone would cost more
than training.

Needs the sbibm plugin and sbibm's data files::

    pip install -e plugins/invkit-sbibm && pip install --no-deps sbibm==1.1.0

Run:  python benchmarks/sbibm.py --threads 1     # the full table: 3 tasks x 2 budgets
Options: --tasks two_moons,slcp,gaussian_linear  --budgets 10000,100000
         --observations 10 --samples 10000 (sbibm's protocol)  --seed 0
         --set KEY=VALUE (a training option for every run: to compare with the defaults)
         --out FILE.md (default runs/sbibm/table.md, with a .json beside it)  --keep-runs DIR
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, set_threads, table, write_report  # noqa: E402

NPE_PUBLISHED: dict[tuple[str, int], float] = {
    ("two_moons", 10_000): 0.606, ("two_moons", 100_000): 0.542,
    ("slcp", 10_000): 0.901, ("slcp", 100_000): 0.831,
    ("gaussian_linear", 10_000): 0.552, ("gaussian_linear", 100_000): 0.506,
}
"""sbibm's NPE, mean C2ST over the 10 observations (sbi-benchmark/results, main_paper.csv)."""
TARGET_SLACK = {10_000: 0.03, 100_000: 0.0}
"""The issue's targets: at 1e5 at or below NPE's figure, at 1e4 within 0.03 of it."""
EVAL_ONLY_C2ST = {"eval.reference": "none", "eval.calibration_targets": 0,
                  "eval.plots": False, "eval.c2st_targets": 0}


def run_one(task: str, budget: int, args: argparse.Namespace, extra: dict[str, str],
            workdir: Path) -> dict[str, Any]:
    import invkit

    overrides: dict[str, Any] = {
        "data.simulations": budget, **extra,
        "eval.c2st_observations": args.observations, "eval.c2st_samples": args.samples,
        **EVAL_ONLY_C2ST,
    }
    t0 = time.perf_counter()
    result = invkit.train(f"sbibm_{task}", overrides=overrides, seed=args.seed, device="cpu",
                          out=workdir / f"{task}-{budget}", force=True, progress=False,
                          threads=args.threads or None)
    m, cfg = result.metrics, result.config
    scores = m.get("c2st_per_observation", [])
    return {
        "task": task, "budget": budget, "model": _model_words(cfg),
        "c2st_mean": m.get("c2st_mean"), "c2st_min": m.get("c2st_min"),
        "c2st_max": m.get("c2st_max"), "c2st_per_observation": scores,
        "train_time_s": m["train_time_s"], "steps": m["steps"],
        "best_step": m.get("val_best_step"), "c2st_time_s": m.get("c2st_time_s"),
        "npe": NPE_PUBLISHED.get((task, budget)), "wall_s": time.perf_counter() - t0,
        "set": extra, "nll": held_out_nll(result.run_dir),
    }


def held_out_nll(run_dir: Path, n: int = 10_000) -> float | None:
    """Mean -log q(x | y) over the run's held-out pairs (its test split, never trained on):
    a finer measure than C2ST of how far the learnt posterior is, on average over y.
    None for a model without a density."""
    import torch

    import invkit
    from invkit.training.data import held_out_split

    posterior = invkit.load(run_dir)
    if not posterior.has_density:
        return None
    x, y = held_out_split(posterior.problem, posterior.config.data, posterior.config.seed,
                          torch.device("cpu"))
    with torch.no_grad():
        return float(-posterior.log_prob(x[:n], y[:n]).mean())


def _model_words(cfg: Any) -> str:
    mo = cfg.model
    return f"{mo.kind} {mo.block} {mo.n_blocks}x{mo.subnet_width or 'auto'}"


def _target(row: dict[str, Any]) -> str:
    npe, c = row["npe"], row["c2st_mean"]
    if npe is None or c is None or row["budget"] not in TARGET_SLACK:
        return "-"
    return "yes" if c <= npe + TARGET_SLACK[row["budget"]] + 1e-12 else "no"


def markdown(rows: list[dict[str, Any]], argv: list[str], threads: int, total_s: float) -> str:
    head = [
        "# invkit's defaults on the sbibm tasks",
        "",
        f"Command: `python benchmarks/sbibm.py {' '.join(argv)}`  ",
        f"torch threads: {threads}; total {total_s:.0f} s. C2ST: mean over the observations "
        f"(min-max), sbibm's classifier, posterior samples against sbibm's reference samples. "
        f"NPE: sbibm's published figure at the same budget. Target: at 1e5 at or below NPE, "
        f"at 1e4 within 0.03.",
        "",
    ]
    body = table(
        ["task", "budget", "model", "C2ST mean (min-max)", "held-out NLL", "train s",
         "steps (best)", "NPE (published)", "target met"],
        [[r["task"], f"{r['budget']:.0e}".replace("+0", ""), r["model"],
          "-" if r["c2st_mean"] is None else
          f"{r['c2st_mean']:.3f} ({r['c2st_min']:.3f}-{r['c2st_max']:.3f})",
          "-" if r.get("nll") is None else f"{r['nll']:.3f}", f"{r['train_time_s']:.0f}",
          f"{r['steps']} ({r['best_step']})",
          "-" if r["npe"] is None else f"{r['npe']:.3f}", _target(r)] for r in rows])
    return "\n".join([*head, body]) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default="two_moons,slcp,gaussian_linear")
    p.add_argument("--budgets", default="10000,100000",
                   help="simulation budgets (data.simulations), comma-separated")
    p.add_argument("--observations", type=int, default=10, help="sbibm observations (1-10)")
    p.add_argument("--samples", type=int, default=10_000, help="posterior samples each")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: invkit's "
                                                          "choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a training option for every run (default: none, the core defaults)")
    p.add_argument("--out", type=Path, help="markdown file (a .json with the rows beside it)")
    p.add_argument("--keep-runs", type=Path, help="keep the run directories here")
    args = p.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    budgets = [int(float(b)) for b in args.budgets.split(",") if b]
    extra = dict(s.split("=", 1) for s in args.set)
    set_threads(args.threads)
    header("invkit's defaults on the sbibm tasks")
    out = args.out or Path("runs") / "sbibm" / "table.md"
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="invkit-sbibm-") as tmp:
        workdir = args.keep_runs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for task in tasks:
            for budget in budgets:
                print(f"[{time.perf_counter() - t0:6.0f} s] {task} at {budget} simulations ...",
                      flush=True)
                rows.append(run_one(task, budget, args, extra, workdir))
                r = rows[-1]
                print(f"    C2ST {r['c2st_mean']:.3f}, {r['train_time_s']:.0f} s of training, "
                      f"{r['steps']} steps", flush=True)
    text = markdown(rows, argv, args.threads, time.perf_counter() - t0)
    write_report(out, text, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
