"""The run configuration's fields: type, default, allowed values and meaning, in one place.

Each field's constraints live on the field itself (a ``Literal`` type for choices, metadata
for ranges and the help text), so the checks of ``--set`` and TOML files
(:mod:`invkit.config.resolve`) and the generated config reference in the docs read one source.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

PRESETS = ("quick", "default", "paper")
FLOAT32_MAX = 3.4028234663852886e38  # float settings meet float32 tensors


def setting(default: Any, help: str, *, gt: float | None = None, ge: float | None = None,
            lt: float | None = None, le: float | None = None, length: int | None = None,
            off_or_ge: float | None = None) -> Any:
    """A config field: its default, its meaning and its range (``gt`` / ``ge`` / ``lt`` /
    ``le``; for a list, every element's, and ``length`` its number of elements;
    ``off_or_ge``: 0 (off) or at least this much)."""
    meta = {"help": help, "gt": gt, "ge": ge, "lt": lt, "le": le, "length": length,
            "off_or_ge": off_or_ge}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    """The network: FrEIA coupling blocks with seeded permutations. ``kind`` picks the method:
    the INN of Ardizzone et al. (x padded to one width with [y, z]) or the conditional INN."""

    kind: Literal["inn", "cinn"] = setting(
        "cinn", "inn (the INN's three-loss training, Ardizzone et al. 2019) | cinn (conditional "
               "INN, maximum likelihood, exact densities)")
    block: Literal["glow", "rnvp", "allinone", "spline"] = setting(
        "glow", "coupling block: glow, rnvp (RealNVP), allinone (FrEIA's affine blocks) or "
                "spline (rational-quadratic spline coupling, Durkan et al. 2019: bends a "
                "density where affine blocks only shift and scale it)")
    n_blocks: int = setting(6, "coupling blocks in the network", gt=0)
    subnet_width: int = setting(128, "hidden units per layer of each coupling block's "
                                     "subnetworks", gt=0)
    subnet_depth: int = setting(2, "hidden layers per subnetwork", gt=0)
    clamp: float = setting(2.0, "soft clamp of the affine coupling blocks' log-scales, for "
                                "stability", gt=0)
    spline_bins: int = setting(8, "spline blocks: bins of each rational-quadratic spline", ge=2)
    spline_bound: float = setting(
        3.0, "spline blocks: the splines act on [-bound, bound] (the identity outside); the "
             "networks see standardised values (the cINN always, the INN with "
             "model.standardise)", gt=0)
    dim_z: int = setting(0, "inn only: latent width; 0: max(1, dim_x - dim_y) if dim_y < dim_x "
                            "else dim_x", ge=0)
    dim_total: int = setting(0, "inn only: network width; 0: max(dim_x, dim_y + dim_z)", ge=0)
    leaky_slope: float = setting(0.01, "negative slope of the subnetworks' leaky ReLUs", ge=0)
    standardise: bool = setting(
        False, "inn only: the network sees x and y standardised per dimension (mean and std of "
               "the first training batch, stored in the model); the losses, train.y_noise and "
               "the MMD widths act in that space, samples and predictions come back in the "
               "original units (the cINN always standardises)")
    cond_features: int = setting(
        0, "cinn only: y passes through a learned feature net (2 hidden layers of cond_width) "
           "to this many features before conditioning the couplings; 0: the standardised y",
        ge=0)
    cond_width: int = setting(128, "cinn only: hidden units of the conditioning feature net",
                              gt=0)
    noise_level_input: bool = setting(
        False, "cinn only: train on a range of smoothings instead of one: each training pair's "
               "y gets noise train.y_noise * u * N(0, I) with u ~ U(0, 1), and u conditions the "
               "network beside y; samples and densities use u = model.noise_level_sampled. "
               "The sharp posterior (u = 0) then borrows what the network learns from the "
               "smoothed ones (SoftFlow's idea, applied to y); needs train.y_noise > 0")
    noise_level_sampled: float = setting(
        0.0, "cinn with model.noise_level_input: the noise level u in [0, 1] (a fraction of "
             "train.y_noise) that samples and densities condition on; 0: the observation "
             "as exact", ge=0, le=1)


@dataclass
class DataConfig:
    """Where the training pairs come from and how many: a simulation budget, simulated once
    before training (in worker processes if asked) and cached, or a file's pairs."""

    simulations: int = setting(
        1_000_000, "the simulation budget: pairs (x, y) simulated for training, the validation "
                   "split included (a problem from a file: its rows, at most this many)", gt=0)
    validation: float = setting(
        0.1, "fraction of the budget held out to measure a validation loss during training "
             "(train.patience, train.keep_best and the plateau schedule use it); 0: none, "
             "and training runs all its steps", ge=0, lt=1)
    n_test: int = setting(10_000, "held-out pairs for evaluation, simulated on their own stream "
                                  "(not part of the budget), never trained on", ge=0)
    workers: int = setting(0, "worker processes that run the simulator (for slow, numpy or "
                              "external simulators); 0: in this process", ge=0)
    cache: str = setting("run", "where simulations are cached so a resumed run or a second "
                                "model does not simulate again: run (the run directory), none, "
                                "or a folder")
    balance: float = setting(
        0.0, "draw training pairs in proportion to p(y)^-balance (p: a nearest-neighbour density "
             "of the training y's), so observations the prior makes rare get more steps; the "
             "weight depends on y only, so every posterior p(x | y) stays what is learnt; "
             "0: the prior's mix, 1: y about uniform over its support (weights capped at 30x "
             "their median)", ge=0, le=1)
    nan_policy: Literal["drop", "error"] = setting(
        "drop", "simulations with NaN or infinite values: drop them (counted, with a warning "
                "naming the simulator) or stop with an error")


@dataclass
class TrainConfig:
    """The optimiser and the losses. The INN's three losses (L_y, L_z, L_x) follow Ardizzone
    et al. with the authors' knobs; the cINN uses the optimiser settings and ``y_noise``."""

    batch_size: int = setting(256, "pairs per step, drawn at random from the training pairs",
                              gt=0)
    steps: int = setting(0, "optimizer steps (at most: train.patience may stop earlier); 0: "
                               "auto, 500 passes over the training pairs, at least 2000 and at "
                               "most 30000 steps", ge=0)
    lr: float = setting(5e-4, "Adam's initial learning rate", gt=0)
    lr_schedule: Literal["cosine", "plateau"] = setting(
        "cosine", "cosine (from lr to lr_final over train.steps) | plateau (lr times "
                  "train.lr_decay after train.lr_patience validation checks without a better "
                  "validation loss, never below lr_final; needs data.validation > 0)")
    lr_final: float = setting(1e-5, "the rate the schedule ends at (cosine) or never goes below "
                                    "(plateau); equal to lr for a constant rate", ge=0)
    lr_decay: float = setting(0.5, "plateau only: factor applied to the rate at each decay",
                              gt=0, lt=1)
    lr_patience: int = setting(5, "plateau only: validation checks without a better validation "
                                  "loss before the rate decays", gt=0)
    betas: list[float] = setting([0.9, 0.999], "Adam's beta1, beta2", ge=0, lt=1, length=2)
    eps: float = setting(1e-6, "Adam's epsilon", ge=0)
    weight_decay: float = setting(2e-5, "Adam's weight decay", ge=0)
    ema: float = setting(
        0.995, "decay of an exponential moving average of the weights (Polyak averaging): "
               "validation checks, train.keep_best and the saved model use the average, "
               "which carries less of the last steps' gradient noise; 0: the last weights",
        ge=0, lt=1)
    grad_clamp: float = setting(15.0, "element-wise gradient clamp; 0 disables", ge=0)
    grad_clip_norm: float = setting(0.0, "gradient norm clipping; 0 disables", ge=0)
    lambda_y: float = setting(3.0, "weight of L_y, the forward fit (mean squared error)", ge=0)
    lambda_z: float = setting(300.0, "weight of L_z, the MMD of [y, z] against [y, N(0, I)]",
                              ge=0)
    lambda_x: float = setting(400.0, "weight of L_x, the MMD of inverse samples against x",
                              ge=0)
    lambda_recon: float = setting(1.5, "authors: 0.5 * lambda_y, inverse of the perturbed "
                                       "forward output", ge=0)
    ramp_x: bool = setting(True, "ramp lambda_x as min(1, 2 * 0.002^(1 - t)), t = step / steps")
    mmd_widths_z: list[float] = setting([0.05, 0.2, 0.9], "widths of the inverse multiquadric "
                                                          "kernels of L_z", gt=0)
    mmd_widths_x: list[float] = setting([0.05, 0.2, 0.9], "widths of the inverse multiquadric "
                                                          "kernels of L_x", gt=0)
    y_noise: float = setting(0.0, "standard deviation of the noise added to y in the losses "
                                  "(training only; the INN of Ardizzone et al. uses it, e.g. "
                                  "0.01-0.1 for one-hot y)", ge=0)
    pad_noise: float = setting(0.05, "standard deviation of the noise in the padding "
                                     "coordinates (which ones: train.pad_noise_on)", ge=0)
    pad_noise_on: Literal["both", "x"] = setting(
        "both", "where the padding noise goes: both (the authors': x's padding, the forward's "
                "[y, z] padding target and the inverse pass's input) or x (only x's padding: "
                "the forward learns to ignore it, while [y, z]'s padding is zero in training "
                "as it is at sampling)")
    lambda_pad: float = setting(
        0.0, "MSE of the x-padding of the inverse pass with fresh z against zero; 0 (the "
             "authors'): unconstrained, and x = g(y, z)[:dim_x] then drops what went there",
        ge=0)
    lambda_resim: float = setting(
        0.0, "MSE of s(x) at the inverse pass's samples against the y they were drawn for, "
             "through the problem's forward process (which must be torch, differentiable and "
             "noise-free); 0 (the authors'): the samples meet y only through the learnt "
             "forward map", ge=0)
    mmd_x_y_scale: float = setting(
        0.0, "k > 0: L_x compares (x, k * y) pairs, g(y, z) against the batch's x with the "
             "same y: the joint of x and y, so each posterior and not only x's marginal (0, "
             "the authors'); k (standardised y with model.standardise) sets how finely the "
             "kernel separates y's", ge=0)
    compile: bool = setting(False, "torch.compile the network's passes (inn only)")
    log_every: int = setting(50, "steps per recorded loss value (the history and the progress "
                                 "bar)", gt=0)
    checkpoint_every: int = setting(
        500, "steps between checkpoints (model.pt, written atomically; also on Ctrl-C / "
             "SIGTERM and at the end); 0: only then. ``invkit run --resume RUN_DIR`` "
             "continues from the last one", ge=0)
    validate_every: int = setting(
        0, "steps between validation losses (needs data.validation > 0); 0: once per pass "
           "over the training pairs but at least every 200 steps, rounded up to a multiple "
           "of train.log_every", ge=0)
    patience: int = setting(
        15, "stop early after this many validation checks without a better validation loss; "
            "0: train all train.steps (so does data.validation = 0)", ge=0)
    keep_best: bool = setting(
        True, "end with the weights of the best validation loss, not the last ones (with "
              "data.validation > 0; without it, the last ones)")
    tensorboard: bool = setting(
        False, "also write the losses as TensorBoard scalars into RUN_DIR/tensorboard "
               "(needs pip install 'invkit[tensorboard]'); train_log.csv is written either way")


@dataclass
class EvalConfig:
    """What `invkit run` / `invkit evaluate` measure after training."""

    n_targets: int = setting(100, "held-out observations for Err_post and Err_resim", gt=0)
    n_samples: int = setting(1000, "posterior samples per observation", gt=0)
    reference: Literal["auto", "exact", "baseline", "none"] = setting(
        "auto", "what Err_post compares with: auto (the problem's exact posterior if it has "
                "one, else eval.reference_baseline) | exact | baseline | none")
    reference_baseline: str = setting(
        "abc", "the registered baseline that computes the reference when the problem has no "
               "exact posterior; not installed: Err_post is skipped, with a note in "
               "metrics.json")
    reference_budget: int = setting(
        10_000_000, "simulations the reference baseline may use (its budget option)", gt=0)
    plots: bool = setting(True, "draw plots/*.png")
    c2st_observations: int = setting(
        10, "C2ST (classifier two-sample test, as sbibm computes it) on this many of the "
            "problem's own observations that come with reference posterior samples (a "
            "benchmark's); 0 disables it", ge=0)
    c2st_targets: int = setting(
        3, "C2ST on this many held-out observations, for problems with an exact posterior and "
           "no observations of their own (eval.n_samples samples each); 0 disables it", ge=0)
    c2st_samples: int = setting(
        10_000, "posterior samples per observation for C2ST against the problem's reference "
                "samples (sbibm uses 10,000; at most as many as there are reference samples)",
        gt=0)
    calibration_targets: int = setting(
        200, "held-out (x, y) pairs for the calibration diagnostics (SBC ranks, expected "
             "coverage); 0 disables them; fewer than 20 could not detect anything",
        off_or_ge=20)
    calibration_samples: int = setting(
        99, "posterior samples per calibration pair (99 give 100 rank values: 20 equal "
            "histogram bins; fewer than 19 leave too few rank values to test)", ge=19)


@dataclass
class RunConfig:
    """Everything needed to rebuild a run's model: saved as its config.toml."""

    problem: str = ""
    problem_options: dict[str, Any] = field(default_factory=dict)
    preset: Literal["quick", "default", "paper"] = setting(
        "default", "the preset the run was resolved with (set it with --preset)")
    seed: int = setting(0, "fixes the training data, the initialisation, the permutations and "
                           "every draw", ge=0, le=2**32 - 1)
    device: str = setting("auto", "auto (a GPU when there is one) | cpu | cuda | cuda:N | mps")
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "seed": self.seed,
            "device": self.device,
            "problem": {"name": self.problem, **self.problem_options},
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "eval": dataclasses.asdict(self.eval),
        }

    def save(self, path: Path) -> None:
        import tomli_w

        path.write_text(tomli_w.dumps(self.to_dict()))


SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig,
                             "eval": EvalConfig}
TOP_LEVEL = ("preset", "seed", "device")


@dataclass(frozen=True)
class FieldSpec:
    """What the checks and the docs need to know of one key."""

    key: str
    default: Any
    help: str
    choices: tuple[str, ...] | None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    length: int | None = None
    off_or_ge: float | None = None

    def allowed(self) -> str:
        """The constraint in words, e.g. 'one of inn, cinn' or '> 0' (empty: any value)."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        parts = [f"{op} {int(bound) if float(bound).is_integer() else bound}" for op, bound in
                 ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                 if bound is not None]
        if self.length is not None:
            parts.append(f"{self.length} values")
        if self.off_or_ge is not None:
            parts.append(f"0 (off) or >= {self.off_or_ge:g}")
        return ", ".join(parts)

    @property
    def type_name(self) -> str:
        if self.choices:
            return "str"
        return type(self.default).__name__ if not isinstance(self.default, list) \
            else "list[float]"


def _spec(section: str, cls: type, f: dataclasses.Field) -> FieldSpec:
    hint = typing.get_type_hints(cls)[f.name]
    choices = typing.get_args(hint) if typing.get_origin(hint) is Literal else None
    default = f.default if f.default is not dataclasses.MISSING \
        else f.default_factory()  # type: ignore[misc]
    key = f"{section}.{f.name}" if section else f.name
    m = f.metadata
    return FieldSpec(key, default, m.get("help", ""), choices, m.get("gt"), m.get("ge"),
                     m.get("lt"), m.get("le"), m.get("length"), m.get("off_or_ge"))


@functools.cache
def field_specs() -> dict[str, FieldSpec]:
    """Every key (``seed``, ``train.lr``, ...) with its constraints, in the documented order."""
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    out = {name: _spec("", RunConfig, fields[name]) for name in TOP_LEVEL}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            spec = _spec(section, cls, f)
            out[spec.key] = spec
    return out
