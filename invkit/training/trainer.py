"""The trainer: Adam on the objective, a learning-rate schedule (cosine, or decay on a
validation plateau: :mod:`invkit.training.schedule`), gradient clamping, progress, safety.

Everything the loop needs lives on the device; the host reads losses back only every
``log_every`` steps, which is also where non-finite losses are caught.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from invkit import distributed
from invkit.config import RunConfig
from invkit.device import make_generator
from invkit.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from invkit.models.kinds import build_model
from invkit.problem import Problem
from invkit.progress import ProgressBar
from invkit.signals import StopRequest, deferred
from invkit.training.averaging import WeightAverage
from invkit.training.data import Dataset, generate
from invkit.training.losses import inverse_weight_ramp
from invkit.training.objectives import build_objective, set_standardisation, total_loss
from invkit.training.schedule import (
    PlateauSchedule,
    check_schedule,
    cosine_lr,
    planned_steps,
    validation_interval,
)
from invkit.training.validation import Validation


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    steps_done: int = 0
    train_time_s: float = 0.0
    data_time_s: float = 0.0


class Trainer:
    """Trains one model for one problem; resumable through ``state_dict``."""

    def __init__(self, problem: Problem, cfg: RunConfig, device: torch.device,
                 progress: bool = True,
                 on_checkpoint: Callable[[Trainer], None] | None = None,
                 stop: StopRequest | None = None,
                 on_log: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.problem, self.cfg, self.device = problem, cfg, device
        self.progress = progress
        self.on_checkpoint = on_checkpoint
        self.on_log = on_log  # each finished log record (the live training log)
        # SIGINT / SIGTERM as a flag (invkit.signals); the caller may own it for the whole run
        self.stop = stop
        check_schedule(cfg.train, cfg.data.validation)
        self.model = build_model(cfg.model, problem.dim_x, problem.dim_y, cfg.seed).to(device)
        self.objective = build_objective(cfg, self.model, problem)
        # what is logged: the total, then the objective's terms
        self.loss_names = ("total", *self.objective.term_names)
        t = cfg.train
        # under torchrun: the objective in DDP, each rank on its slice of the global batch
        self.dist = distributed.current()
        if self.dist is not None:
            self.objective = distributed.wrap_objective(self.objective, self.dist, t.batch_size)
            self.progress = progress and self.dist.is_main
        named = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        params = list(named.values())
        # fused Adam (one kernel for all parameters) where torch has it: 1.12x the training
        # step of the default foreach Adam at the gmm default preset on one CPU core
        fused = device.type in ("cpu", "cuda")
        self._fused = fused or None  # None: torch picks (MPS and others)
        self.optimizer = torch.optim.Adam(params, lr=t.lr, betas=tuple(t.betas), eps=t.eps,
                                          weight_decay=t.weight_decay, fused=fused or None)
        self._params = params
        # train.ema: validation, keep_best and the saved model use the weights' moving average
        self.average = WeightAverage(named, t.ema) if t.ema > 0 else None
        self.gen = make_generator(device, cfg.seed + 1)  # batches and training noise
        self.step = 0
        self.started = False  # whether a step ran in this process (a run worth keeping)
        self.history: list[dict[str, float]] = []
        self.train_time_s = 0.0
        self.data: Dataset | None = None
        # the losses summed since the last log record: part of the resumable state, so a run
        # stopped between two log steps logs exactly what an uninterrupted run would
        self.loss_acc = torch.zeros(len(self.loss_names), device=device)
        self.loss_acc_n = 0
        self.last_checkpoint_step: int | None = None
        self.validation: Validation | None = None  # with data.validation > 0
        self._pending_validation: dict[str, Any] | None = None  # resumed before the data
        # the planned steps and the validation cadence depend on the number of training
        # pairs (train.steps = 0, train.validate_every = 0): set with the data
        self.total_steps = t.steps
        self.validate_every = t.validate_every or t.log_every
        self.plateau = PlateauSchedule(t) if t.lr_schedule == "plateau" else None
        self._step_fn = self._train_step
        if t.compile:
            # the network's passes only: compiling the whole step recompiled it every step
            # (the lr and the inverse-loss ramp are Python floats that dynamo specialises on)
            compile_network = getattr(distributed.unwrap(self.objective), "compile_network", None)
            if compile_network is None:
                raise ConfigError(f"train.compile is implemented for model.kind=inn, not "
                                  f"{cfg.model.kind!r}; drop --set train.compile=true.")
            compile_network()

    # -- data ------------------------------------------------------------------------------
    def prepare_data(self, cache: Path | None = None) -> float:
        """Simulate (or read from ``cache``, or a file) the run's pairs; seconds it took."""
        t0 = time.perf_counter()
        self.data = generate(self.problem, self.cfg.data, self.cfg.seed, self.device,
                             cache=cache, progress=self.progress)
        self._init_validation()
        return time.perf_counter() - t0

    def _init_validation(self) -> None:
        assert self.data is not None
        d, t = self.cfg.data, self.cfg.train
        self.data.split_validation(d.validation)
        self.data.balance(d.balance, self.cfg.seed)
        n_train = int(self.data.x_train.shape[0])
        self.total_steps = planned_steps(t, n_train)
        self.validate_every = validation_interval(t, n_train)
        if self.data.x_val is not None:
            state = self.validation.state_dict() if self.validation is not None else None
            self.validation = Validation(self.data.x_val, self.data.y_val, t.batch_size,
                                         self.cfg.seed + 5, t.patience, t.keep_best)
            if state is not None:
                self.validation.load_state_dict(state)
            elif self._pending_validation is not None:
                self.validation.load_state_dict(self._pending_validation)

    def probe_step(self) -> Callable[[], None]:
        """One forward and backward pass of the real step on a throwaway copy of the model
        and a batch of its own, for timing (:mod:`invkit.threads`); training is untouched."""
        assert self.data is not None
        objective = copy.deepcopy(distributed.unwrap(self.objective))
        gen = make_generator(self.device, self.cfg.seed + 99)
        x, y = self.data.batch(self.cfg.train.batch_size, gen)
        set_standardisation(objective.model, x, y)

        def step() -> None:
            objective.zero_grad(set_to_none=True)
            total_loss(objective(x, y, gen, 1.0)).backward()

        return step

    # -- one step --------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """The learning rate of ``step``: the plateau schedule's current rate, or the cosine's."""
        if self.plateau is not None:
            return self.plateau.lr
        return cosine_lr(self.cfg.train, step, self.total_steps)

    def _train_step(self, x: Tensor, y: Tensor, x_weight: float) -> Tensor:
        terms = self.objective(x, y, self.gen, x_weight)
        total = total_loss(terms)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        t = self.cfg.train
        if t.grad_clamp > 0:
            torch.nn.utils.clip_grad_value_(self._params, t.grad_clamp, foreach=self._fused)
        if t.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self._params, t.grad_clip_norm)
        self.optimizer.step()
        return torch.stack([total.detach(), *(t.detach() for t in terms.values())])

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        data_time = self.prepare_data() if self.data is None else 0.0
        assert self.data is not None
        t = self.cfg.train
        self.model.train()
        acc = self.loss_acc  # updated in place
        first = None
        if self.step == 0 and getattr(self.model, "needs_standardisation", False):
            # statistics from the first global batch (the same on every rank), set once before
            # the loop; that batch is then the first step's, so the stream of batches is the
            # one a model without standardisation sees
            first = self.data.batch(t.batch_size, self.gen)
            set_standardisation(self.model, *first)
        total = self.total_steps
        bar = ProgressBar(f"training {self.problem.name}", total, start=self.step,
                          enabled=self.progress)
        t_start = time.perf_counter() - self.train_time_s
        every = self.validate_every
        done_early = self.validation is not None and self.validation.stopped_at is not None
        with bar, self._stop_flag() as stop:
            while self.step < total and not done_early:
                # under torchrun the ranks agree every step, so a signal that reached one rank
                # stops all of them at this step (none is left waiting in a collective)
                stopping = bool(stop) if self.dist is None else self.dist.any(bool(stop))
                if stopping and not self.started:  # nothing trained here: nothing to save
                    how = stop.requested or "a signal to another process"
                    raise TrainingInterrupted(
                        f"Interrupted by {how} before the first training step of this process: "
                        f"nothing was trained, so nothing was saved"
                        + (f" (the checkpoint of step {self.step} is unchanged)."
                           if self.step else "."))
                if stopping:
                    self.train_time_s = time.perf_counter() - t_start
                    self._checkpoint()
                    how = stop.requested or "a signal to another process"
                    raise TrainingInterrupted(
                        f"Training stopped at step {self.step} of {total} by {how}; "
                        f"a checkpoint of step {self.step} was saved. Resume with: invkit run "
                        f"--resume RUN_DIR."
                    )
                for group in self.optimizer.param_groups:
                    group["lr"] = self.lr_at(self.step)
                weight = inverse_weight_ramp(self.step / total) if t.ramp_x else 1.0
                x, y = first if first is not None else self.data.batch(t.batch_size, self.gen)
                first = None
                acc += self._step_fn(x, y, weight)
                if self.average is not None:
                    self.average.update()
                self.loss_acc_n += 1
                self.step += 1
                self.started = True
                # log and checkpoint steps are multiples, so a resumed run keeps the cadence
                if self.step % t.log_every == 0 or self.step == total:
                    elapsed = time.perf_counter() - t_start
                    self._log(acc / self.loss_acc_n, self.step - self.loss_acc_n, elapsed)
                    acc.zero_()
                    self.loss_acc_n = 0
                status = ""
                if self.validation is not None and (self.step % every == 0
                                                    or self.step == total):
                    with self.averaged():
                        val, done_early = self.validation.check(
                            distributed.unwrap(self.objective), self.model, self.step)
                    if self.plateau is not None:
                        self.plateau.update(self.validation.best_step == self.step)
                    if self.history and self.history[-1]["step"] == self.step:
                        self.history[-1]["val_loss"] = val
                    status = f" val {val:.4g}"
                if self.history and self.history[-1]["step"] == self.step:
                    bar.update(completed=self.step,
                               status=f"loss {self.history[-1]['total']:.4g}{status}")
                    if self.on_log is not None:
                        self.on_log(self.history[-1])
                if t.checkpoint_every and self.step % t.checkpoint_every == 0 \
                        and self.step < total:
                    self.train_time_s = time.perf_counter() - t_start
                    self._checkpoint()
        self.train_time_s = time.perf_counter() - t_start
        self._check_finite()  # the last optimizer step must not hand NaN weights to the saver
        restored = self.validation is not None and self.validation.restore_best(self.model)
        if self.average is not None and not restored:
            self.average.copy_to_model()
        self.model.eval()
        return TrainResult(self.model, self.history, self.step, self.train_time_s, data_time)

    def _log(self, mean: Tensor, first_step: int, elapsed: float) -> dict[str, float]:
        if self.dist is not None:
            mean = self.dist.mean(mean)  # every rank logs the global batch's losses
        values = mean.tolist()  # the one host sync per log interval
        if not all(math.isfinite(v) for v in values):
            bad = [n for n, v in zip(self.loss_names[1:], values[1:]) if not math.isfinite(v)]
            raise self._diverged(f"Loss {', '.join(bad) or 'total'}", first_step)
        record = dict(zip(self.loss_names, values))
        record["step"] = self.step
        record["lr"] = self.lr_at(self.step)
        record["time_s"] = round(elapsed, 3)
        self.history.append(record)
        return record

    def _diverged(self, what: str, first_step: int) -> TrainingDiverged:
        kept = (f"The last good checkpoint (step {self.last_checkpoint_step}) is kept; nothing "
                f"after it was saved." if self.last_checkpoint_step is not None else
                "No checkpoint had been saved yet; the run directory keeps its config.toml.")
        return TrainingDiverged(
            f"{what} became NaN or infinite between steps {first_step} and {self.step} of "
            f"problem {self.problem.name!r}. {kept} Try a lower learning rate (--set train.lr="
            f"{self.cfg.train.lr / 3:.2g}), a smaller clamp (--set model.clamp=1.5), or "
            f"gradient clipping (--set train.grad_clip_norm=1)."
        )

    def _check_finite(self) -> None:
        """Raise TrainingDiverged rather than let NaN/Inf weights or losses be saved."""
        finite = torch.stack([torch.isfinite(self.loss_acc).all()]
                             + [torch.isfinite(p).all() for p in self._params]).all()
        if bool(finite):  # one host sync per checkpoint
            return
        last_ok = max(self.history[-1]["step"] if self.history else 0,
                      self.last_checkpoint_step or 0)
        bad = [n for n, v in zip(self.loss_names[1:], self.loss_acc.tolist()[1:])
               if not math.isfinite(v)]
        raise self._diverged(f"Loss {', '.join(bad)}" if bad else "The network weights",
                             last_ok)

    def _checkpoint(self) -> None:
        self._check_finite()  # a diverged state never overwrites the last good checkpoint
        if self.on_checkpoint is not None:
            self.on_checkpoint(self)
        self.last_checkpoint_step = self.step

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """Inside: the model holds the weights a validation check scores and training ends
        with (their moving average with train.ema, else its own); after: its own again."""
        if self.average is None:
            yield
        else:
            with self.average.applied():
                yield

    @contextmanager
    def _stop_flag(self) -> Iterator[StopRequest]:
        if self.stop is not None:
            yield self.stop
        else:  # used on its own (tests, scripts): its own flag for the loop
            with deferred() as flag:
                yield flag

    # -- resume ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.gen.get_state(),
            "step": self.step,
            "history": self.history,
            "train_time_s": self.train_time_s,
            "loss_acc": self.loss_acc.detach().cpu().clone(),
            "loss_acc_n": self.loss_acc_n,
            **({"validation": self.validation.state_dict()} if self.validation else {}),
            **({"lr_schedule": self.plateau.state_dict()} if self.plateau else {}),
            **({"weight_average": self.average.state_dict()} if self.average else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"].cpu() if self.device.type != "cpu"
                           else state["generator"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.train_time_s = float(state.get("train_time_s", 0.0))
        if "loss_acc" in state:
            self.loss_acc.copy_(state["loss_acc"].to(self.loss_acc.device))
            self.loss_acc_n = int(state["loss_acc_n"])
        if "validation" in state:  # applied once the data (and so the split) exist
            if self.validation is not None:
                self.validation.load_state_dict(state["validation"])
            else:
                self._pending_validation = state["validation"]
        if self.plateau is not None and "lr_schedule" in state:
            self.plateau.load_state_dict(state["lr_schedule"])
        if self.average is not None:
            if "weight_average" in state:
                self.average.load_state_dict(state["weight_average"])
            else:  # a checkpoint from before train.ema: start the average where it stands
                self.average.restart()
        self.last_checkpoint_step = self.step
