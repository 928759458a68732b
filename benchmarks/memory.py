"""Peak memory of training data (+ a few steps) and of ABC, each case in its own process.

Every case runs in a fresh subprocess and reports its peak resident set size
(``resource.getrusage``) and the part above the process's footprint after imports; the
numpy baseline also reports tracemalloc's peak of the arrays it allocates. Cases:

* training on the kinematics arm with 1e6 and 1e7 samples (the default preset's INN, batch
  1024, 3 optimizer steps): invkit (``invkit.training.data.generate``: float32 device tensors
  made in chunks, batches by index) against the straightforward pipeline (numpy float64
  arrays for the whole set, converted to float32 tensors, a shuffling ``DataLoader``);
* posterior sampling, 1e6 and 1e7 samples for one observation: the peak must stay near the
  size of the result (each chunk is written into one preallocated output);
* rejection ABC (9 targets, tolerance 0.005, chunks of 1e6) with budgets 1e7, 1e8 and 1e9,
  each stopped after ``--abc-sims`` simulations (all of 1e7): memory must not grow with the
  budget. Beside it, the all-at-once numpy approach (draw, simulate and compare the whole
  budget as arrays) at 1e6 and 1e7, whose memory grows with the budget.

Run:  python benchmarks/memory.py [--abc-sims 3e7] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, median, set_threads, table  # noqa: E402

MB = 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # Linux: KiB


# -- cases, each run in a child process -------------------------------------------------------
def _kinematics():
    from invkit import api

    return api.resolve("kinematics", "default", {"model.kind": "inn"}, device="cpu")


def case_train_invkit(n: int) -> dict:
    import torch

    from invkit.training.trainer import Trainer

    cfg, prob = _kinematics()
    base = peak_rss_mb()
    t0 = time.perf_counter()
    cfg.data.simulations, cfg.train.steps, cfg.train.log_every = n, 3, 3
    tr = Trainer(prob, cfg, torch.device("cpu"), progress=False)
    tr.prepare_data()
    data = peak_rss_mb()
    tr.fit()
    return {"base": base, "data": data, "time_s": time.perf_counter() - t0}


def case_train_naive(n: int) -> dict:
    import tracemalloc

    import numpy as np
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from invkit.training.trainer import Trainer
    from invkit_kinematics.arm import LENGTHS, SIGMA

    cfg, prob = _kinematics()
    base = peak_rss_mb()
    t0 = time.perf_counter()
    tracemalloc.start()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)) * np.array(SIGMA)  # float64, the whole set at once
    angles = np.cumsum(x[:, 1:], axis=1)
    y = np.stack([np.cos(angles) @ np.array(LENGTHS),
                  x[:, 0] + np.sin(angles) @ np.array(LENGTHS)], axis=1)
    _, np_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    data = TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    del x, y, angles
    loader = DataLoader(data, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True)
    batches = iter(loader)  # the shuffling sampler holds a permutation of all n indices
    first = next(batches)
    after_data = peak_rss_mb()
    cfg.data.simulations = 1  # the trainer's own data are not used here
    tr = Trainer(prob, cfg, torch.device("cpu"), progress=False)
    tr.model.train()
    tr._train_step(*first, 1.0)
    for _ in range(2):
        tr._train_step(*next(batches), 1.0)
    return {"base": base, "data": after_data, "tracemalloc_mb": np_peak / MB,
            "time_s": time.perf_counter() - t0}


class _Stop(Exception):
    pass


def case_abc_invkit(budget: int, stop_after: int) -> dict:
    import torch

    import invkit_abc.rejection as rejection
    from invkit.registry import get_registry
    from invkit_kinematics.plots import COMPARISON_TARGETS

    real_rounds, seen = rejection.rounds, {"n": 0}

    def rounds(*args, **kwargs):
        """The stream of simulations, stopped after ``stop_after`` of them."""
        for pieces in real_rounds(*args, **kwargs):
            seen["n"] += sum(y.shape[0] for _, y, _ in pieces)
            if seen["n"] > stop_after:
                raise _Stop
            yield pieces

    prob = get_registry().build_problem("kinematics")
    gen = torch.Generator().manual_seed(0)
    rejection.rejection_abc(prob, COMPARISON_TARGETS, 0.005, 2**17, generator=gen)  # warm-up
    base = peak_rss_mb()
    rejection.rounds = rounds
    t0 = time.perf_counter()
    try:
        res = rejection.rejection_abc(prob, COMPARISON_TARGETS, 0.005, budget, generator=gen)
        sims = res.n_simulations
    except _Stop:
        sims = seen["n"]
    return {"base": base, "simulations": sims, "time_s": time.perf_counter() - t0}


def case_sample(n: int) -> dict:
    """n posterior samples for one observation from the mixture's default-preset network
    (untrained: the memory is the same): the peak above imports against the result's size."""
    import torch

    from invkit import api
    from invkit.models.kinds import build_model
    from invkit.posterior import Posterior

    cfg, prob = api.resolve("gmm", "default", device="cpu")
    post = Posterior(build_model(cfg.model, prob.dim_x, prob.dim_y, 0), prob, cfg,
                     torch.device("cpu"))
    y = torch.eye(prob.dim_y)[0]
    post.sample(y, 1000, seed=0)  # warm-up
    base = peak_rss_mb()
    t0 = time.perf_counter()
    x = post.sample(y, n, seed=0)
    return {"base": base, "result_mb": x.numel() * 4 / MB, "time_s": time.perf_counter() - t0}


def case_abc_naive(budget: int) -> dict:
    import tracemalloc

    import numpy as np

    from invkit_kinematics.arm import LENGTHS, SIGMA
    from invkit_kinematics.plots import COMPARISON_TARGETS

    base = peak_rss_mb()
    t0 = time.perf_counter()
    tracemalloc.start()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(budget, 4)) * np.array(SIGMA)
    angles = np.cumsum(x[:, 1:], axis=1)
    y1 = np.cos(angles) @ np.array(LENGTHS)
    y2 = x[:, 0] + np.sin(angles) @ np.array(LENGTHS)
    counts = [int((np.hypot(y1 - t[0], y2 - t[1]) < 0.005).sum())
              for t in COMPARISON_TARGETS.tolist()]
    _, np_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"base": base, "simulations": budget, "accepted": counts,
            "tracemalloc_mb": np_peak / MB, "time_s": time.perf_counter() - t0}


CASES = {"train-invkit": case_train_invkit, "train-naive": case_train_naive,
         "abc-invkit": case_abc_invkit, "abc-naive": case_abc_naive, "sample": case_sample}


def child(name: str, params: list[int], threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    out = CASES[name](*params)
    out["peak"] = peak_rss_mb()
    print("RESULT " + json.dumps(out))


# -- the driver -------------------------------------------------------------------------------
def run_case(name: str, params: list[int], threads: int) -> dict:
    cmd = [sys.executable, __file__, "--case", name, *(str(p) for p in params),
           "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"case {name} {params} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--train-sizes", default="1e6,1e7")
    parser.add_argument("--abc-budgets", default="1e7,1e8,1e9")
    parser.add_argument("--abc-sims", type=float, default=3e7,
                        help="simulations run per ABC budget before stopping")
    parser.add_argument("--abc-repeats", type=int, default=3, help="runs per ABC budget")
    parser.add_argument("--naive-budgets", default="1e6,1e7")
    parser.add_argument("--sample-sizes", default="1e6,1e7")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps default")
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    args = parser.parse_args()
    if args.case:
        child(args.case[0], [int(float(p)) for p in args.case[1:]], args.threads)
        return
    if args.quick:
        args.train_sizes, args.abc_budgets, args.abc_sims = "1e5,1e6", "1e6,1e7,1e9", 2e6
        args.naive_budgets, args.abc_repeats = "1e5,1e6", 2
        args.sample_sizes = "1e5,1e6"
    set_threads(args.threads)  # for the header; each case sets its own
    header("Peak memory (RSS) per case, each in a fresh process")
    sizes = [int(float(s)) for s in args.train_sizes.split(",")]
    rows = []
    for n in sizes:
        for name, label in (("train-naive", "numpy float64 + DataLoader"),
                            ("train-invkit", "invkit (float32 tensors, index batches)")):
            r = run_case(name, [n], args.threads)
            note = f"tracemalloc numpy peak {r['tracemalloc_mb']:.0f} MB" \
                if "tracemalloc_mb" in r else ""
            rows.append([f"train, {n:.0e} samples", label, f"{n * 6 * 4 / MB:.0f}",
                         f"{r['data'] - r['base']:.0f}", f"{r['peak'] - r['base']:.0f}",
                         f"{r['peak']:.0f}", f"{r['time_s']:.1f}", note])
    print("kinematics, default-preset INN, 3 training steps of batch 1024; data = x (4) and "
          "y (2) in float32 (the held-out split of 1e4 is extra)")
    print(table(["case", "pipeline", "data MB", "peak for data MB", "peak with steps MB",
                 "peak RSS MB", "time s", "note"], rows))
    print("(peaks are above the process's footprint after imports)")
    print()
    stop = int(args.abc_sims)
    rows = []
    budgets = [int(float(s)) for s in args.abc_budgets.split(",")]
    runs: dict[int, list[dict]] = {b: [] for b in budgets}
    for _ in range(args.abc_repeats):  # budgets alternate, so drifts hit all of them
        for b in budgets:
            runs[b].append(run_case("abc-invkit", [b, stop], args.threads))
    for b in budgets:
        extra = sorted(r["peak"] - r["base"] for r in runs[b])
        peak = sorted(r["peak"] for r in runs[b])
        r = runs[b][0]
        rows.append([f"{b:.0e}", "invkit rejection_abc (streamed chunks)",
                     f"{r['simulations']:.3g}", f"{median(peak):.0f}",
                     f"{median(extra):.0f} ({extra[0]:.0f}-{extra[-1]:.0f})",
                     f"{median([x['time_s'] for x in runs[b]]):.1f}",
                     f"median (range) of {len(extra)} runs"])
    for b in [int(float(s)) for s in args.naive_budgets.split(",")]:
        r = run_case("abc-naive", [b], args.threads)
        rows.append([f"{b:.0e}", "numpy, whole budget at once", f"{r['simulations']:.3g}",
                     f"{r['peak']:.0f}", f"{r['peak'] - r['base']:.0f}", f"{r['time_s']:.1f}",
                     f"tracemalloc numpy peak {r['tracemalloc_mb']:.0f} MB"])
    print(f"rejection ABC on the arm, 9 targets, tolerance 0.005; invkit runs stop after "
          f"{stop:.3g} simulations (a budget of 1e7 runs to its end)")
    print(table(["budget", "method", "simulations run", "peak RSS MB", "above imports MB",
                 "time s", "note"], rows))
    print()
    rows = []
    for n in [int(float(s)) for s in args.sample_sizes.split(",")]:
        r = run_case("sample", [n], args.threads)
        above = r["peak"] - r["base"]
        rows.append([f"{n:.0e}", f"{r['result_mb']:.0f}", f"{above:.0f}",
                     f"{above / r['result_mb']:.2f}", f"{r['time_s']:.1f}"])
    print("posterior sampling, gmm default-preset network, one observation: chunks written into "
          "one preallocated output")
    print(table(["samples", "result MB", "peak above imports MB", "peak / result", "time s"],
                rows))


if __name__ == "__main__":
    main()
