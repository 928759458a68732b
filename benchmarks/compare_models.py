"""INN vs conditional INN vs ABC on the mixture and the arm: one markdown table.

For each problem the three solvers answer the same held-out targets y* = s(x), x from the
prior, and are judged the same way:

* Err_post: MMD^2 (benchmark kernel) to the reference posterior: exact for the mixture,
  quantile ABC from a large pool for the arm (``eval.reference_budget``; cached on disk);
* Err_resim: mean ||s(x_hat) - y*||;
* calibration (``invkit.evaluation.diagnostics``): largest deviation of central / HPD
  coverage from the nominal level, SBC rank p-value (Bonferroni), rank-histogram bins
  outside the 99% band (vs the number expected by chance), flags;
* cost: training time and posterior samples per second (ABC: no training; its rate is for
  all targets' samples drawn from one shared pool of simulations).

The INN and the cINN are trained with ``invkit.train`` (the CLI's own path: presets, data,
run directory, evaluation). ABC is quantile ABC (the n nearest of a pool of simulations) with
a smaller pool than, and a different seed from, the reference.

Run:  python benchmarks/compare_models.py --budget quick      # a few minutes on 2 CPU cores
      python benchmarks/compare_models.py --budget full       # the real comparison (long)
Options: --problems gmm,kinematics  --methods inn,cinn,abc  --threads 2  --seed 0
         --out FILE.md (default runs/compare_models/BUDGET.md, with a .json beside it)
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import write_report  # noqa: E402

# Each budget: per problem, the preset, overrides shared by the models and used for the
# evaluation (and so for ABC's targets), overrides per model kind, and ABC's pool.
BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "gmm": {
            "preset": "quick",
            "common": {"train.steps": 1000, "eval.n_targets": 8, "eval.n_samples": 500,
                       "eval.calibration_targets": 200},
            "inn": {},
            "cinn": {},
            "abc_pool": 200_000,
        },
        "kinematics": {
            "preset": "quick",
            "common": {"data.simulations": 50_000, "model.subnet_width": 128,
                       "eval.n_targets": 50, "eval.n_samples": 500,
                       "eval.reference_budget": 2_000_000,
                       "eval.calibration_targets": 200},
            # the quick preset keeps the published fit weight (0.01), which leaves the forward
            # process unlearnt; use the default preset's weights
            "inn": {"train.steps": 600, "train.lambda_y": 30.0, "train.lambda_recon": 1.5},
            "cinn": {"train.steps": 600, "train.y_noise": 0.0025},
            "abc_pool": 200_000,
        },
    },
    "full": {
        "gmm": {
            "preset": "default",
            "common": {"eval.n_targets": 100, "eval.n_samples": 4000,
                       "eval.calibration_targets": 1000},
            "inn": {},
            "cinn": {},
            "abc_pool": 10_000_000,
        },
        "kinematics": {
            "preset": "default",
            "common": {"eval.n_targets": 1000, "eval.n_samples": 4000,
                       "eval.reference_budget": 100_000_000, "eval.calibration_targets": 1000},
            "inn": {},
            "cinn": {},  # the default preset's own cinn block
            "abc_pool": 10_000_000,
        },
    },
}
METHODS = ("inn", "cinn", "abc")


def _short_flags(flags: list[str]) -> str:
    if not flags:
        return "ok"
    words = []
    for f in flags:
        if "not uniform" in f:
            words.append("ranks")
        elif "overconfident" in f:
            words.append("overconf." + (" (HPD)" if f.startswith("HPD") else ""))
        elif "underconfident" in f:
            words.append("underconf." + (" (HPD)" if f.startswith("HPD") else ""))
    return ", ".join(dict.fromkeys(words))


def _calibration_columns(m: dict[str, Any]) -> dict[str, Any]:
    if "calibration_targets" not in m:
        return {}
    return {
        "cal_central_dev": m["calibration_max_coverage_deviation"],
        "cal_hpd_dev": m["calibration_hpd_max_coverage_deviation"],
        "cal_hpd_score": m["calibration_hpd_score"],
        "cal_rank_p": m["calibration_rank_pvalue_bonferroni"],
        "cal_bins_out": m["calibration_bins_outside_band"],
        "cal_bins_expected": m["calibration_bins_outside_expected"],
        "cal_flags": m["calibration_flags"],
        "cal_targets": m["calibration_targets"],
    }


def run_model(problem: str, kind: str, spec: dict[str, Any], seed: int, workdir: Path
              ) -> dict[str, Any]:
    import invkit

    overrides = {**spec["common"], "model.kind": kind, **spec[kind]}
    t0 = time.perf_counter()
    result = invkit.train(problem, preset=spec["preset"], overrides=overrides, seed=seed,
                          device="cpu", out=workdir / f"{problem}-{kind}", progress=False)
    m = result.metrics
    return {
        "problem": problem, "method": kind, "err_post": m.get("err_post"),
        "err_resim": m.get("err_resim"), "reference": m.get("err_post_reference"),
        "train_time_s": m["train_time_s"], "samples_per_s": m["sampling_rate_per_s"],
        "steps": m["steps"], "wall_s": time.perf_counter() - t0,
        "overrides": overrides, **_calibration_columns(m),
    }


def run_abc(problem: str, spec: dict[str, Any], seed: int) -> dict[str, Any]:
    from invkit.api import resolve
    from invkit.device import make_generator
    from invkit.evaluation.diagnostics import baseline_sampler, calibration_report
    from invkit.evaluation.metrics import err_post, err_resim
    from invkit.evaluation.reference import reference_samples
    from invkit.registry import get_registry
    from invkit.training.data import held_out_split

    t_start = time.perf_counter()
    cfg, prob = resolve(problem, spec["preset"], dict(spec["common"]), seed=seed)
    dev = torch.device("cpu")
    x_test, y_test = held_out_split(prob, cfg.data, cfg.seed, dev)  # the runs' split
    n_t = min(cfg.eval.n_targets, x_test.shape[0])
    n = cfg.eval.n_samples
    targets = y_test[:n_t]
    ref = reference_samples(prob, targets, cfg, make_generator(dev, cfg.seed + 2), False)
    options = {"method": "quantile", "budget": int(spec["abc_pool"])}
    baseline = get_registry().baseline("abc")
    t0 = time.perf_counter()
    result = baseline.run(prob, targets, n, {**baseline.options, **options},
                          make_generator(dev, cfg.seed + 1000))
    abc_time = time.perf_counter() - t0
    samples = torch.stack([s[:n] for s in result.samples])
    row: dict[str, Any] = {
        "problem": problem, "method": "abc", "err_post": None, "reference": None,
        "err_resim": err_resim(samples, targets, prob.forward_process)[0],
        "train_time_s": 0.0, "samples_per_s": n_t * n / abc_time,
        "abc_pool": int(spec["abc_pool"]), "abc_time_s": abc_time,
    }
    if ref is not None:
        row["err_post"] = err_post(samples, ref[0])[0]
        row["reference"] = ref[1]
    n_cal = min(cfg.eval.calibration_targets, x_test.shape[0])
    if n_cal > 0:
        sampler = baseline_sampler(prob, "abc", options, make_generator(dev, cfg.seed + 1001))
        cal = calibration_report(sampler, x_test[:n_cal], y_test[:n_cal],
                                 cfg.eval.calibration_samples, batch=n_cal)
        row.update(_calibration_columns(cal))
    row["wall_s"] = time.perf_counter() - t_start
    return row


def _f(v: Any, fmt: str = ".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, fmt)
    return str(v)


def markdown(rows: list[dict[str, Any]], budget: str, argv: list[str], threads: int,
             total_s: float) -> str:
    head = [
        f"# INN vs cINN vs ABC ({budget} budget)",
        "",
        f"Command: `python benchmarks/compare_models.py {' '.join(argv)}`  ",
        f"torch {torch.__version__}, {threads} thread(s), CPU "
        f"({platform.processor() or platform.machine()}); total {total_s:.0f} s.",
        "",
        "Err_post: MMD^2 to the reference posterior (exact for gmm, quantile ABC for the arm); "
        "Err_resim: mean ||s(x) - y*||. Coverage: largest |coverage - level| over levels "
        "0.1..0.95 (central intervals per dim; HPD regions by the model's log_prob for the "
        "cINN, a KDE proxy otherwise). Rank p: SBC rank uniformity, Bonferroni over dims. "
        "Bins out: rank-histogram bins outside the 99% band / expected by chance. "
        "ABC: quantile ABC; its samples/s counts every target's samples from one pool.",
        "",
        "| problem | method | Err_post | Err_resim | coverage dev. central / HPD | rank p "
        "| bins out / exp. | calibration | train s | samples/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines = []
    for r in rows:
        if "cal_targets" in r:
            cov = f"{r['cal_central_dev']:.3f} / {r['cal_hpd_dev']:.3f}"
            rank = _f(r["cal_rank_p"], ".2g")
            bins = f"{r['cal_bins_out']} / {r['cal_bins_expected']:.1f}"
            flags = _short_flags(r["cal_flags"])
        else:
            cov = rank = bins = flags = "-"
        train = "-" if r["method"] == "abc" else f"{r['train_time_s']:.0f}"
        lines.append(
            f"| {r['problem']} | {r['method']} | {_f(r['err_post'], '.4f')} | "
            f"{_f(r['err_resim'], '.4f')} | {cov} | {rank} | {bins} | {flags} | {train} | "
            f"{_f(r['samples_per_s'], '.3g')} |"
        )
    details = ["", "Settings (overrides on top of the preset):", ""]
    for r in rows:
        if r["method"] == "abc":
            details.append(f"- {r['problem']} abc: quantile ABC, pool {r['abc_pool']:.3g}, "
                           f"{r['abc_time_s']:.1f} s")
        else:
            ov = ", ".join(f"{k}={v}" for k, v in r["overrides"].items())
            details.append(f"- {r['problem']} {r['method']}: {r['steps']} steps; {ov}")
    return "\n".join(head + lines + details) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="quick")
    p.add_argument("--problems", default="gmm,kinematics")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="markdown file (a .json with the rows beside it)")
    p.add_argument("--keep-runs", type=Path, help="keep the run directories here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    budget = BUDGETS[args.budget]
    problems = [s for s in args.problems.split(",") if s]
    methods = [s for s in args.methods.split(",") if s]
    for name in problems:
        if name not in budget:
            p.error(f"no {args.budget} budget for problem {name!r}; have {', '.join(budget)}")
    for m in methods:
        if m not in METHODS:
            p.error(f"unknown method {m!r}; use {', '.join(METHODS)}")
    out = args.out or Path("runs") / "compare_models" / f"{args.budget}.md"
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="invkit-compare-") as tmp:
        workdir = args.keep_runs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for name in problems:
            for method in methods:
                print(f"[{time.perf_counter() - t0:6.0f} s] {name} / {method} ...", flush=True)
                if method == "abc":
                    rows.append(run_abc(name, budget[name], args.seed))
                else:
                    rows.append(run_model(name, method, budget[name], args.seed, workdir))
    text = markdown(rows, args.budget, argv, args.threads, time.perf_counter() - t0)
    write_report(out, text, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
