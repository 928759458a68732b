"""Time to quality on the arm: Err_post against the exact posterior along training, INN and cINN.

Each model is trained with a preset (``--preset``, default ``default``; ``--set`` overrides
for all models, ``--inn-set`` / ``--cinn-set`` for one kind, ``--model-set LABEL:KEY=VALUE``
for one labelled model, e.g. ``--models cinn,cinn-ema=cinn``) by invkit's own trainer, and
every ``--every`` steps the training is paused and scored: ``--targets`` held-out targets (the run's
own, as ``invkit run`` evaluates) x ``--samples`` samples against the exact posterior
(``invkit_kinematics.exact``, drawn once), and Err_resim. The scoring time is not counted:
with ``train.ema`` a paused model is scored with its weight average, as training would end
there. The curve's seconds are the training's own, as CPU seconds of the process (on a
shared machine the wall clock also counts other jobs' time; run it with one thread pinned to
one core) and as wall seconds. The learning-rate schedule is the preset's (cosine over all
its steps), so a point halfway is a half-trained model, not one trained for half the time.

Writes a markdown table (``--out``, with a ``.json``) and, with ``--figure``, the figure:
Err_post and Err_resim against training seconds, one line per model. ``--levels 0,0.5,1``
scores a model trained with ``model.noise_level_input`` once more at the end, at each of
those noise levels (``model.noise_level_sampled``), from the same weights.

Run:  OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/kinematics_time_to_quality.py
          --threads 1 [--models inn,cinn[,LABEL=KIND]] [--model-set LABEL:KEY=VALUE]
          [--every 500] [--targets 200] [--samples 2000]
          [--figure docs/_static/kinematics-time-to-quality.png] [--out runs/ttq.md]
          [--with runs/earlier_ttq.json:inn]  (an earlier run's curves beside, not retrained)
      --quick: 300 steps, scored every 100, 20 targets x 200 samples.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from invkit.api import resolve
from invkit.device import resolve_device
from invkit.evaluation.metrics import err_post, err_resim
from invkit.training.data import held_out_split
from invkit.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, set_threads, table  # noqa: E402


def parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


@torch.no_grad()
def score(model: torch.nn.Module, problem: Any, targets: torch.Tensor, ref: torch.Tensor,
          n: int, seed: int) -> tuple[float, float]:
    """(Err_post, Err_resim) of the model as it is now, on the targets."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    x, _ = model.sample_posterior(targets.repeat_interleave(n, 0), g)
    samples = x.reshape(targets.shape[0], n, -1)
    post, _ = err_post(samples, ref)
    resim, _ = err_resim(samples, targets, problem.forward)
    model.train(was_training)
    return post, resim


def curve(label: str, kind: str, args: argparse.Namespace,
          overrides: dict[str, Any]) -> dict[str, Any]:
    sets = {**overrides, "model.kind": kind, "train.checkpoint_every": args.every,
            "eval.plots": False}
    if args.steps:
        sets["train.steps"] = args.steps
    cfg, problem = resolve("kinematics", args.preset, sets, seed=args.seed)
    device = resolve_device("cpu")
    _, y_test = held_out_split(problem, cfg.data, cfg.seed, device)
    targets = y_test[:args.targets]
    ref = problem.reference_posterior(targets, args.samples, torch.Generator().manual_seed(1))
    points: list[dict[str, float]] = []
    clock = {"cpu": 0.0, "wall": 0.0, "cpu0": 0.0, "wall0": 0.0}

    def on_checkpoint(trainer: Trainer) -> None:
        clock["cpu"] += time.process_time() - clock["cpu0"]
        clock["wall"] += time.perf_counter() - clock["wall0"]
        # mid-run: what training would end with if it stopped here (the average, with
        # train.ema); after fit the model already holds what it ended with
        with contextlib.nullcontext() if clock.get("done") else trainer.averaged():
            post, resim = score(trainer.model, problem, targets, ref, args.samples,
                                args.seed + 3)
        points.append({"step": trainer.step, "cpu_s": clock["cpu"], "wall_s": clock["wall"],
                       "err_post": post, "err_resim": resim})
        print(f"  {label} step {trainer.step:6d}  {clock['cpu']:7.1f} CPU s  "
              f"{clock['wall']:7.1f} s  Err_post {post:.5f}  Err_resim {resim:.5f}", flush=True)
        clock["cpu0"], clock["wall0"] = time.process_time(), time.perf_counter()

    trainer = Trainer(problem, cfg, device, progress=False, on_checkpoint=on_checkpoint)
    data_s = trainer.prepare_data()
    clock["cpu0"], clock["wall0"] = time.process_time(), time.perf_counter()
    trainer.fit()
    clock["done"] = 1.0
    on_checkpoint(trainer)  # the end (fit does not call back for the last step)
    levels = []
    if getattr(trainer.model, "noise_level_input", False):
        for level in args.levels:
            trainer.model.noise_level_sampled = level
            post, resim = score(trainer.model, problem, targets, ref, args.samples, args.seed + 3)
            levels.append({"level": level, "err_post": post, "err_resim": resim})
            print(f"  {label} at noise level {level:g}: Err_post {post:.5f}  "
                  f"Err_resim {resim:.5f}", flush=True)
    return {"label": label, "kind": kind, "steps": cfg.train.steps, "data_s": data_s,
            "config": {k: v for k, v in cfg.to_dict().items() if k in ("model", "train", "data")},
            "points": points, "levels": levels}


def earlier_curves(spec: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The curves named in ``JSON[:LABEL,...]`` (all without labels) of an earlier run, after
    checking that it scored what this run scores."""
    path, _, names = spec.partition(":")
    saved = json.loads(Path(path).read_text())
    for key in ("targets", "samples", "seed"):
        if saved["args"][key] != getattr(args, key):
            raise SystemExit(f"--with {path}: it scored with --{key} {saved['args'][key]}, "
                             f"this run with {getattr(args, key)}; rerun one of them so both "
                             "score the same held-out targets")
    wanted = [n for n in names.split(",") if n]
    found = {c["label"]: c for c in saved["curves"]}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise SystemExit(f"--with {path}: no curve labelled {', '.join(missing)}; it has "
                         f"{', '.join(found)}")
    return [found[n] for n in wanted] if wanted else list(found.values())


def figure(curves: list[dict[str, Any]], path: Path, labels: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in curves:
        t = [p["cpu_s"] for p in c["points"]]
        lab = labels.get(c["label"], c["label"])
        axes[0].plot(t, [p["err_post"] for p in c["points"]], marker=".", label=lab)
        axes[1].plot(t, [p["err_resim"] for p in c["points"]], marker=".", label=lab)
    for ax, name in zip(axes, ("Err_post (exact reference)", "Err_resim")):
        ax.axhline(0.005, color="k", lw=0.8, ls="--", label="target 0.005")
        ax.axvline(300, color="grey", lw=0.8, ls=":", label="5 minutes")
        ax.set_yscale("log")
        ax.set_xlabel("training seconds (one thread, CPU time)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="inn,cinn",
                        help="model kinds, or LABEL=KIND to train one kind twice")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for all models")
    parser.add_argument("--inn-set", action="append", default=[], help="KEY=VALUE, INN only")
    parser.add_argument("--cinn-set", action="append", default=[], help="KEY=VALUE, cINN only")
    parser.add_argument("--model-set", action="append", default=[],
                        help="LABEL:KEY=VALUE, for the model of that label only")
    parser.add_argument("--steps", type=int, default=0, help="0: the preset's")
    parser.add_argument("--every", type=int, default=500, help="steps between scores")
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps default")
    parser.add_argument("--figure", default="")
    parser.add_argument("--out", default="runs/time_to_quality.md")
    parser.add_argument("--levels", default="",
                        help="noise levels to score a model.noise_level_input model at, "
                             "after training (comma-separated, in [0, 1])")
    parser.add_argument("--with", dest="earlier", action="append", default=[],
                        metavar="JSON[:LABEL,...]",
                        help="curves of an earlier run of this benchmark (its .json), drawn and "
                             "tabulated beside, e.g. a long INN curve whose preset has not "
                             "changed; it must have scored the same targets, samples and seed")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    args.levels = [float(v) for v in args.levels.split(",") if v.strip()]
    set_threads(args.threads)
    if args.quick:
        args.steps, args.every, args.targets, args.samples = 300, 100, 20, 200
    header("Time to quality on the arm (exact reference)")
    common = parse_sets(args.set)
    own = {"inn": parse_sets(args.inn_set), "cinn": parse_sets(args.cinn_set)}
    by_label: dict[str, list[str]] = {}
    for item in args.model_set:
        label, _, kv = item.partition(":")
        by_label.setdefault(label, []).append(kv)
    curves = []
    labels = {"inn": "INN (model.kind=inn)", "cinn": "cINN (model.kind=cinn)"}
    earlier = [c for spec in args.earlier for c in earlier_curves(spec, args)]  # check first
    clash = {c["label"] for c in earlier} & {m.partition("=")[0] for m in args.models.split(",")}
    if clash:
        raise SystemExit(f"--with: {', '.join(sorted(clash))} is trained here too; label this "
                         f"run's model differently (--models LABEL=KIND)")
    for c in earlier:
        labels[c["label"]] = labels.get(c["kind"], c["kind"]) + " (earlier run)"
    for item in args.models.split(","):
        label, _, kind = item.partition("=")
        kind = kind or label
        extra = parse_sets(by_label.get(label, []))
        if extra and label not in labels:
            labels[label] = f"{labels.get(kind, kind)}, " + ", ".join(
                f"{k}={v}" for k, v in extra.items())
        curves.append(curve(label, kind, args,
                            {**common, **own.get(kind, {}), **extra}))
    curves.extend(earlier)
    lines = [f"# Time to quality: {args.targets} held-out targets x {args.samples} samples, "
             f"exact reference, seed {args.seed}\n"]
    for c in curves:
        lines.append(f"## {labels.get(c['label'], c['label'])}, {c['steps']} steps "
                     f"(data {c['data_s']:.1f} s)\n")
        lines.append(table(["step", "training CPU s", "training wall s", "Err_post",
                            "Err_resim"],
                           [[str(p["step"]), f"{p['cpu_s']:.0f}", f"{p['wall_s']:.0f}",
                             f"{p['err_post']:.5f}", f"{p['err_resim']:.5f}"]
                            for p in c["points"]]))
        if c.get("levels"):
            lines.append("\nat the end, by model.noise_level_sampled:\n")
            lines.append(table(["noise level", "Err_post", "Err_resim"],
                               [[f"{r['level']:g}", f"{r['err_post']:.5f}",
                                 f"{r['err_resim']:.5f}"] for r in c["levels"]]))
        lines.append("")
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "curves": curves},
                                                   default=str))
    if args.figure:
        figure(curves, Path(args.figure), labels)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
