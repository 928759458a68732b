"""Training time of a preset on one thread and on all cores, interleaved in one run.

For each network variant (``--variant LABEL:KEY=VALUE[,KEY=VALUE]``, on top of the problem's
preset and ``--set``), invkit's trainer runs ``--steps`` steps with one torch thread and with
``--threads`` threads, in alternating order (A B, B A, ...), ``--repeats`` times; data
preparation is not counted. Prints the median steps/s of each, their ratio (median of the
back-to-back pairs) and the time the preset's full schedule (``train.steps``) would take at
that rate. On a shared machine the figures depend on what else runs: run it on an idle one.

Run:  python benchmarks/train_threads.py --problem kinematics --set model.kind=cinn
          --variant "10x256:model.n_blocks=10"
          --variant "12x128:model.n_blocks=12,model.subnet_width=128"
          [--threads 2] [--steps 300] [--repeats 3] [--out runs/train_threads.md]
      --quick: 20 steps, 1 repeat.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch

from invkit.api import resolve
from invkit.device import resolve_device
from invkit.training.schedule import planned_steps
from invkit.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, median, paired_ratio, table, write_report  # noqa: E402


def parse_pairs(text: str) -> dict[str, Any]:
    pairs = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def fit_seconds(problem: str, preset: str, sets: dict[str, Any], steps: int,
                threads: int) -> tuple[float, int]:
    """(seconds of ``steps`` training steps, the preset's own train.steps)."""
    torch.set_num_threads(threads)
    cfg, prob = resolve(problem, preset, sets, seed=0)
    schedule = dataclasses.replace(cfg.train)  # the preset's own (train.steps 0: the auto rule)
    cfg.train.steps = steps
    trainer = Trainer(prob, cfg, resolve_device("cpu"), progress=False)
    trainer.prepare_data()
    full = planned_steps(schedule, int(trainer.data.x_train.shape[0]))
    t0 = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - t0, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problem", default="kinematics")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for all variants")
    parser.add_argument("--variant", action="append", default=[],
                        help="LABEL:KEY=VALUE[,KEY=VALUE]; none: the preset as it is")
    parser.add_argument("--threads", type=int, default=0, help="the many-thread side; 0: all "
                                                               "cores")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="runs/train_threads.md")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 20, 1
    many = args.threads or torch.get_num_threads()
    common = parse_pairs(",".join(args.set))
    variants = {"preset": {}} if not args.variant else {
        v.partition(":")[0]: parse_pairs(v.partition(":")[2]) for v in args.variant}
    header(f"Training time with 1 and {many} threads: {args.problem}, preset {args.preset}")
    rows, records = [], []
    for label, extra in variants.items():
        sets = {**common, **extra}
        one: list[float] = []
        all_: list[float] = []
        full = 0
        for r in range(args.repeats):
            order = (1, many) if r % 2 == 0 else (many, 1)
            for t in order:
                seconds, full = fit_seconds(args.problem, args.preset, sets, args.steps, t)
                (one if t == 1 else all_).append(args.steps / seconds)
                print(f"  {label}: {t} thread(s) {args.steps / seconds:.2f} steps/s", flush=True)
        rate_one, rate_all = median(one), median(all_)
        ratio = paired_ratio(all_, one)
        rows.append([label, f"{rate_one:.2f}", f"{rate_all:.2f}", f"{ratio:.2f}", str(full),
                     f"{full / rate_one:.0f}", f"{full / rate_all:.0f}"])
        records.append({"variant": label, "sets": sets, "steps_per_s_1": one,
                        f"steps_per_s_{many}": all_, "ratio": ratio, "train_steps": full})
    text = table(["variant", "steps/s, 1 thread", f"steps/s, {many} threads", "ratio",
                  "train.steps", "s at 1 thread", f"s at {many} threads"], rows)
    write_report(args.out, text + "\n", records)


if __name__ == "__main__":
    main()
