"""Training speed: invkit's step against a plain hand-written FrEIA loop, in the same run.

Throughput (default): the same network, batch and losses on both sides, on the gmm problem
(labels=all), for the networks and batches of gmm presets (``--presets default,paper``):

* invkit: ``Trainer._train_step`` (the objective module, fused MMD, both inverse passes as one
  batch of 2B, one backward), batches by index from device tensors, no host syncs;
* plain: the authors' notebook style: a torch ``DataLoader`` over a ``TensorDataset``, the
  forward loss and its backward, then two separate inverse passes and a second backward, the
  straightforward three-matrix MMD, and ``.item()`` on both losses every step.

Steps alternate in blocks (A B B A ...) so machine contention hits both; the table gives the
median samples/s of each and the median of the per-pair ratios. ``--compile`` adds invkit
with ``train.compile=true`` (torch.compile on the network's passes; its compile time is
printed apart); ``--denormals`` adds invkit without ``torch.set_flush_denormal(True)``.

Quality (``--quality``, minutes): time until the gmm posterior reaches forward accuracy
>= 0.999 and mean mode TV <= 0.02 (``invkit_gmm.evaluation``; 4000 samples per colour), for
invkit's default preset against the plain loop with the authors' notebook settings (8 GLOW
blocks, clamp 2, subnets Linear(., 512)-ReLU-Linear, width 16, weights 3/300/400, Adam 1e-3
(0.8, 0.9) eps 1e-6 wd 2e-5, grad clamp 15, inverse-MMD ramp, 50 epochs x 8 iterations x 1600,
parameters initialised as 0.05 * N(0, 1); the plain loop may run on past its 50 epochs up to
``--plain-max-epochs``). Both train in alternating slices; evaluation time is not counted.

Run:  python benchmarks/train_throughput.py [--presets default,paper] [--repeats 7] [--compile]
      [--denormals] [--quick]
      python benchmarks/train_throughput.py --quality [--eval-every 200] [--plain-eval-every 40]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import FrEIA.framework as Ff
import FrEIA.modules as Fm
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import (  # noqa: E402
    fmt_rate,
    header,
    interleaved,
    median,
    paired_ratio,
    set_threads,
    sync,
    table,
)

from invkit import api  # noqa: E402
from invkit.device import configure_numerics, resolve_device  # noqa: E402
from invkit.posterior import Posterior  # noqa: E402
from invkit.training.losses import inverse_weight_ramp  # noqa: E402
from invkit.training.trainer import Trainer  # noqa: E402


# -- the plain loop (authors' notebook style, written out by hand) ----------------------------
@dataclass
class PlainSettings:
    dim_x: int = 2
    dim_y: int = 8
    dim_z: int = 2
    dim_total: int = 16
    n_blocks: int = 8
    width: int = 512
    depth: int = 1
    activation: str = "relu"
    clamp: float = 2.0
    init: str = "normal0.05"  # authors: every parameter 0.05 * N(0, 1); "zero-last": invkit's
    lambda_y: float = 3.0
    lambda_z: float = 300.0
    lambda_x: float = 400.0
    lambda_recon: float = 1.5  # 0.5 * lambda_y
    widths: tuple[float, ...] = (0.05, 0.2, 0.9)
    y_noise: float = 0.1
    pad_noise: float = 0.05
    lr: float = 1e-3
    betas: tuple[float, float] = (0.8, 0.9)
    eps: float = 1e-6
    weight_decay: float = 2e-5
    grad_clamp: float = 15.0
    batch: int = 1600
    epochs: int = 50
    iters_per_epoch: int = 8


def plain_network(s: PlainSettings, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)

    def subnet(c_in: int, c_out: int) -> nn.Module:
        layers: list[nn.Module] = []
        size = c_in
        for _ in range(s.depth):
            act = nn.ReLU() if s.activation == "relu" else nn.LeakyReLU(0.01)
            layers += [nn.Linear(size, s.width), act]
            size = s.width
        layers.append(nn.Linear(size, c_out))
        if s.init == "zero-last":
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
        return nn.Sequential(*layers)

    nodes = [Ff.InputNode(s.dim_total, name="input")]
    for k in range(s.n_blocks):
        nodes.append(Ff.Node(nodes[-1], Fm.GLOWCouplingBlock,
                             {"subnet_constructor": subnet, "clamp": s.clamp}, name=f"c{k}"))
        nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": k}, name=f"p{k}"))
    nodes.append(Ff.OutputNode(nodes[-1], name="output"))
    model = Ff.GraphINN(nodes)
    if s.init == "normal0.05":
        for p in model.parameters():
            if p.requires_grad:
                p.data = 0.05 * torch.randn_like(p)
    return model


def mmd_multiscale(x: Tensor, y: Tensor, widths) -> Tensor:
    """The straightforward MMD: three distance matrices, a kernel matrix each, per width."""
    xx, yy, xy = x @ x.t(), y @ y.t(), x @ y.t()
    rx = xx.diag().unsqueeze(0).expand_as(xx)
    ry = yy.diag().unsqueeze(0).expand_as(yy)
    dxx = rx.t() + rx - 2.0 * xx
    dyy = ry.t() + ry - 2.0 * yy
    dxy = rx.t() + ry - 2.0 * xy
    kxx, kyy, kxy = (torch.zeros_like(xx), torch.zeros_like(xx), torch.zeros_like(xx))
    for a in widths:
        kxx += a**2 * (a**2 + dxx) ** -1
        kyy += a**2 * (a**2 + dyy) ** -1
        kxy += a**2 * (a**2 + dxy) ** -1
    return torch.mean(kxx + kyy - 2.0 * kxy)


def fit(a: Tensor, b: Tensor) -> Tensor:
    return torch.mean((a - b) ** 2)


class PlainLoop:
    """Layout [z | pad | y] as in the notebook; one call of ``step`` is one iteration."""

    def __init__(self, s: PlainSettings, x: Tensor, y: Tensor, seed: int = 0) -> None:
        self.s = s
        self.model = plain_network(s, seed)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=s.lr, betas=s.betas, eps=s.eps,
                                    weight_decay=s.weight_decay)
        self.loader = DataLoader(TensorDataset(x, y), batch_size=s.batch, shuffle=True,
                                 drop_last=True)
        self._it = iter(self.loader)
        self.steps = 0
        self.losses: list[float] = []

    def _batch(self) -> tuple[Tensor, Tensor]:
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            return next(self._it)

    def loss_factor(self) -> float:
        epoch = self.steps // self.s.iters_per_epoch
        return min(1.0, 2.0 * 0.002 ** (1.0 - epoch / self.s.epochs))

    def step(self) -> None:
        s, model = self.s, self.model
        x, y = self._batch()
        b = x.shape[0]
        y_clean = y.clone()
        pad_x = s.pad_noise * torch.randn(b, s.dim_total - s.dim_x)
        pad_yz = s.pad_noise * torch.randn(b, s.dim_total - s.dim_y - s.dim_z)
        y = y + s.y_noise * torch.randn(b, s.dim_y)
        x_in = torch.cat((x, pad_x), dim=1)
        y_in = torch.cat((torch.randn(b, s.dim_z), pad_yz, y), dim=1)
        self.opt.zero_grad()

        # forward step
        out, _ = model(x_in)
        y_short = torch.cat((y_in[:, :s.dim_z], y_in[:, -s.dim_y:]), dim=1)
        loss = s.lambda_y * fit(out[:, s.dim_z:], y_in[:, s.dim_z:])
        out_block_grad = torch.cat((out[:, :s.dim_z], out[:, -s.dim_y:].data), dim=1)
        loss += s.lambda_z * mmd_multiscale(out_block_grad, y_short, s.widths)
        total = loss.item()
        loss.backward()

        # backward step
        pad_yz = s.pad_noise * torch.randn(b, s.dim_total - s.dim_y - s.dim_z)
        y = y_clean + s.y_noise * torch.randn(b, s.dim_y)
        z_perturbed = out.data[:, :s.dim_z] + s.y_noise * torch.randn(b, s.dim_z)
        y_rev = torch.cat((z_perturbed, pad_yz, y), dim=1)
        y_rev_rand = torch.cat((torch.randn(b, s.dim_z), pad_yz, y), dim=1)
        out_rev, _ = model(y_rev, rev=True)
        out_rev_rand, _ = model(y_rev_rand, rev=True)
        loss_rev = s.lambda_x * self.loss_factor() * mmd_multiscale(
            out_rev_rand[:, :s.dim_x], x_in[:, :s.dim_x], s.widths)
        loss_rev += s.lambda_recon * fit(out_rev, x_in)
        total += loss_rev.item()
        loss_rev.backward()
        for p in self.params:
            p.grad.data.clamp_(-s.grad_clamp, s.grad_clamp)
        self.opt.step()
        self.losses.append(total)
        self.steps += 1

    # what the quality check needs
    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        s = self.s
        out, _ = self.model(torch.cat((x, x.new_zeros(x.shape[0], s.dim_total - s.dim_x)), 1))
        return out[:, -s.dim_y:]

    @torch.no_grad()
    def sample(self, y: Tensor, n: int, gen: torch.Generator) -> Tensor:
        s = self.s
        yy = y.repeat_interleave(n, 0)
        z = torch.randn(yy.shape[0], s.dim_z, generator=gen)
        pad = yy.new_zeros(yy.shape[0], s.dim_total - s.dim_y - s.dim_z)
        x, _ = self.model(torch.cat((z, pad, yy), 1), rev=True)
        return x[:, :s.dim_x].reshape(y.shape[0], n, s.dim_x)


# -- invkit's side ------------------------------------------------------------------------------
def invkit_trainer(overrides: dict, device: torch.device, preset: str = "default") -> Trainer:
    cfg, prob = api.resolve("gmm", preset, {"labels": "all", **overrides}, device=str(device))
    tr = Trainer(prob, cfg, device, progress=False)
    tr.prepare_data()
    tr.model.train()
    return tr


def invkit_steps(tr: Trainer, k: int) -> Callable[[], None]:
    """k iterations of Trainer.fit's loop body (lr schedule, ramp, batch by index, step)."""
    t = tr.cfg.train

    def run() -> None:
        for _ in range(k):
            for group in tr.optimizer.param_groups:
                group["lr"] = tr.lr_at(tr.step)
            weight = inverse_weight_ramp(tr.step / t.steps) if t.ramp_x else 1.0
            x, y = tr.data.batch(t.batch_size, tr.gen)
            tr.loss_acc += tr._step_fn(x, y, weight)
            tr.step += 1
    return run


def throughput(args: argparse.Namespace, dev: torch.device) -> None:
    assert dev.type == "cpu", "the plain loop is the CPU notebook loop"
    rows = []
    for preset in args.presets.split(","):
        rows += throughput_one(args, dev, preset)
    print(f"{args.repeats} interleaved repeats of {args.steps} steps, medians")
    print(table(["preset (network, batch)", "loop", "ms/step", "samples/s",
                 "speed vs plain (median of pairs)"], rows))


def throughput_one(args: argparse.Namespace, dev: torch.device, preset: str) -> list[list[str]]:
    overrides = {"data.simulations": args.n_samples}
    tr = invkit_trainer(overrides, dev, preset)
    cfg = tr.cfg
    m = tr.model
    s = PlainSettings(dim_x=m.dim_x, dim_y=m.dim_y, dim_z=m.dim_z, dim_total=m.dim_total,
                      n_blocks=cfg.model.n_blocks, width=cfg.model.subnet_width,
                      depth=cfg.model.subnet_depth, activation="leaky", init="zero-last",
                      lambda_y=cfg.train.lambda_y, lambda_z=cfg.train.lambda_z,
                      lambda_x=cfg.train.lambda_x, lambda_recon=cfg.train.lambda_recon,
                      widths=tuple(cfg.train.mmd_widths_x), y_noise=cfg.train.y_noise,
                      pad_noise=cfg.train.pad_noise, batch=cfg.train.batch_size)
    plain = PlainLoop(s, tr.data.x_train, tr.data.y_train)
    label = (f"{preset} ({cfg.model.n_blocks} x {cfg.model.subnet_width}x"
             f"{cfg.model.subnet_depth}, width {m.dim_total}, batch {cfg.train.batch_size})")
    k = args.steps * max(1, 1600 // cfg.train.batch_size)  # similar work per timed block
    cases: dict[str, Callable[[], None]] = {
        "invkit": invkit_steps(tr, k),
        "plain": lambda: [plain.step() for _ in range(k)],
    }
    if args.denormals:
        run = invkit_steps(invkit_trainer(overrides, dev, preset), k)

        def unflushed() -> None:
            torch.set_flush_denormal(False)
            try:
                run()
            finally:
                torch.set_flush_denormal(True)
        cases["invkit, denormals kept"] = unflushed
    if args.compile:
        trc = invkit_trainer({**overrides, "train.compile": True}, dev, preset)
        t0 = time.perf_counter()
        invkit_steps(trc, 1)()
        sync(dev)
        print(f"{preset}: train.compile=true, first step (compilation) "
              f"{time.perf_counter() - t0:.1f} s")
        cases["invkit, train.compile"] = invkit_steps(trc, k)
    t = interleaved(cases, args.repeats, dev)
    batch = cfg.train.batch_size
    rows = []
    for name in cases:
        rate = k * batch / median(t[name])
        ratio = paired_ratio(t["plain"], t[name])
        rows.append([label, name, f"{median(t[name]) / k * 1e3:.1f}", fmt_rate(rate),
                     f"{ratio:.2f}x"])
    return rows


# -- time to quality ----------------------------------------------------------------------------
TARGET_ACCURACY = 0.999
TARGET_TV = 0.02


def quality(predict, sample, x_test: Tensor, y_test: Tensor, gen: torch.Generator
            ) -> tuple[float, float]:
    from invkit_gmm.evaluation import N_PER_COLOUR, exact_mode_masses, mode_masses

    acc = float((predict(x_test).argmax(1) == y_test.argmax(1)).float().mean())
    onehots = torch.eye(y_test.shape[1])
    xs = sample(onehots, N_PER_COLOUR, gen)
    tvs = [0.5 * float((mode_masses(xs[c]) - exact_mode_masses("all", c)).abs().sum())
           for c in range(onehots.shape[0])]
    return acc, sum(tvs) / len(tvs)


@dataclass
class Race:
    name: str
    advance: Callable[[], None]  # one slice of training
    evaluate: Callable[[], tuple[float, float]]
    steps: Callable[[], int]
    max_steps: int
    train_s: float = 0.0
    eval_s: float = 0.0
    reached_s: float = math.nan
    reached_step: int = -1
    last: tuple[float, float] = (math.nan, math.nan)
    done: bool = False


def time_to_quality(args: argparse.Namespace, dev: torch.device) -> None:
    tr = invkit_trainer({}, dev, args.preset)
    x_test, y_test = tr.data.x_test, tr.data.y_test
    s = PlainSettings()
    from invkit_gmm.mixture import make_forward, sample_mixture

    g = torch.Generator().manual_seed(1)
    x_all = sample_mixture(2**20, g)  # the notebook's 2^20 points
    y_all = make_forward("all")[0](x_all)
    plain = PlainLoop(s, x_all, y_all)
    post = Posterior(tr.model, tr.problem, tr.cfg, dev)
    eval_gen = torch.Generator().manual_seed(2)
    every, plain_every = args.eval_every, args.plain_eval_every

    def invkit_eval() -> tuple[float, float]:
        res = quality(post.predict, lambda y, n, gen: post.sample(y, n, generator=gen),
                      x_test, y_test, eval_gen)
        tr.model.train()
        return res

    races = [
        Race(f"invkit {args.preset} preset", invkit_steps(tr, every), invkit_eval, lambda: tr.step,
             tr.cfg.train.steps),
        Race("plain, notebook settings", lambda: [plain.step() for _ in range(plain_every)],
             lambda: quality(plain.predict, plain.sample, x_test, y_test, eval_gen),
             lambda: plain.steps, args.plain_max_epochs * s.iters_per_epoch),
    ]
    c = tr.cfg
    print(f"invkit: {c.model.n_blocks} {c.model.block} blocks, subnets {c.model.subnet_width} x "
          f"{c.model.subnet_depth}, batch {c.train.batch_size}, {c.train.steps} steps "
          f"(cosine lr {c.train.lr:g} -> {c.train.lr_final:g}), {c.data.simulations:.3g} samples")
    print(f"plain: notebook settings, {s.epochs} epochs x {s.iters_per_epoch} x {s.batch} "
          f"(continued up to {args.plain_max_epochs} epochs), 2^20 samples")
    print(f"target: forward accuracy >= {TARGET_ACCURACY}, mean mode TV <= {TARGET_TV}; "
          f"checked every {every} (invkit) and {plain_every} (plain) steps\n")
    while not all(r.done for r in races):
        for r in races:
            if r.done:
                continue
            t0 = time.perf_counter()
            r.advance()
            r.train_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            r.last = r.evaluate()
            r.eval_s += time.perf_counter() - t0
            acc, tv = r.last
            print(f"  {r.name:>26}: step {r.steps():5d}  train {r.train_s:7.1f} s  "
                  f"accuracy {acc:.4f}  mode TV {tv:.4f}", flush=True)
            if acc >= TARGET_ACCURACY and tv <= TARGET_TV:
                r.reached_s, r.reached_step, r.done = r.train_s, r.steps(), True
            elif r.steps() >= r.max_steps:
                r.done = True
    rows = []
    for r in races:
        reached = f"{r.reached_s:.0f} s (step {r.reached_step})" if r.reached_step >= 0 \
            else f"not reached in {r.steps()} steps ({r.train_s:.0f} s)"
        rows.append([r.name, reached, f"{r.last[0]:.4f}", f"{r.last[1]:.4f}"])
    print()
    print(table(["loop", "time to quality (training only)", "last accuracy", "last mode TV"],
                rows))
    a, b = races
    if a.reached_step >= 0 and b.reached_step >= 0:
        print(f"ratio plain / invkit time to quality: {b.reached_s / a.reached_s:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="default,paper",
                        help="throughput: gmm presets whose network and batch are timed")
    parser.add_argument("--steps", type=int, default=5,
                        help="steps per timed block (x 1600 / batch for small batches)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved blocks per loop")
    parser.add_argument("--n-samples", type=float, default=1e6, help="training set size")
    parser.add_argument("--compile", action="store_true", help="also time train.compile=true")
    parser.add_argument("--denormals", action="store_true",
                        help="also time invkit without flushing denormals")
    parser.add_argument("--quality", action="store_true",
                        help="time to a fixed posterior quality instead (minutes)")
    parser.add_argument("--eval-every", type=int, default=200,
                        help="quality: invkit steps per check")
    parser.add_argument("--plain-eval-every", type=int, default=40,
                        help="quality: plain-loop steps per check (5 epochs)")
    parser.add_argument("--plain-max-epochs", type=int, default=150,
                        help="quality: give up on the plain loop after this many epochs")
    parser.add_argument("--preset", default="default", help="quality: invkit's preset")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps default")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small and few repeats (with --quality: the quick "
                             "preset against 3 epochs of the plain loop)")
    args = parser.parse_args()
    set_threads(args.threads)
    if args.quick:
        args.steps, args.repeats, args.n_samples = 1, 3, 1e5
        args.preset, args.plain_max_epochs = "quick", 3
        args.eval_every, args.plain_eval_every = 100, 24
    args.n_samples = int(args.n_samples)
    dev = resolve_device("cpu")
    configure_numerics(dev)
    if args.quality:
        header("Time to a fixed gmm posterior quality: invkit vs plain FrEIA loop", str(dev))
        time_to_quality(args, dev)
    else:
        header("Training throughput: invkit step vs plain FrEIA loop", str(dev))
        throughput(args, dev)


if __name__ == "__main__":
    main()
