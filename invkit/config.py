"""The run configuration: typed sections, presets, ``--set key=value`` and TOML files.

Keys are dotted (``train.lr``); a key whose last part is unique may be given alone
(``--set lr=3e-4``, ``--set labels=some``); ``--set model=cinn`` is an alias of ``model.kind``.
Problem options live in the ``problem`` section.
Resolution order: core defaults < core preset < problem preset < TOML file < ``--set``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from invkit.errors import ConfigError, suggest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRESETS = ("quick", "default", "paper")
FLOAT32_MAX = 3.4028234663852886e38  # float settings meet float32 tensors


@dataclass
class ModelConfig:
    """The INN: FrEIA coupling blocks with seeded permutations, x and [y, z] padded to one width."""

    kind: str = "inn"  # inn (the write-up's method) | cinn (conditional INN, max. likelihood)
    block: str = "glow"  # glow | rnvp | allinone
    n_blocks: int = 8
    subnet_width: int = 256
    subnet_depth: int = 2  # hidden layers per subnet
    clamp: float = 2.0
    dim_z: int = 0  # 0: max(1, dim_x - dim_y) if dim_y < dim_x else dim_x
    dim_total: int = 0  # 0: max(dim_x, dim_y + dim_z)
    leaky_slope: float = 0.01
    # inn only: the network sees x and y standardised per dimension (mean, std of the first
    # training batch, stored in the model) and the losses, train.y_noise and the MMD widths
    # act in that space; samples and predictions come back in the original units
    standardize: bool = False
    # cinn only: y passes through a learned feature net (2 hidden layers of cond_width) to
    # cond_features features before conditioning the couplings; 0 = the standardised y itself
    cond_features: int = 0
    cond_width: int = 128


@dataclass
class TrainConfig:
    """The three-loss trainer (L_y, L_z, L_x) of the write-up, with the authors' knobs."""

    n_samples: int = 1_000_000
    n_test: int = 10_000
    batch_size: int = 1600
    steps: int = 3000
    lr: float = 1e-3
    lr_final: float = 1e-5  # cosine decay to this value; equal to lr for a constant rate
    betas: list[float] = field(default_factory=lambda: [0.8, 0.9])
    eps: float = 1e-6
    weight_decay: float = 2e-5
    grad_clamp: float = 15.0  # element-wise; 0 disables
    grad_clip_norm: float = 0.0  # 0 disables
    lambda_y: float = 3.0
    lambda_z: float = 300.0
    lambda_x: float = 400.0
    lambda_recon: float = 1.5  # authors: 0.5 * lambda_y, inverse of the perturbed forward output
    ramp_x: bool = True  # ramp lambda_x as min(1, 2 * 0.002^(1 - t)), t = step / steps
    mmd_widths_z: list[float] = field(default_factory=lambda: [0.05, 0.2, 0.9])
    mmd_widths_x: list[float] = field(default_factory=lambda: [0.05, 0.2, 0.9])
    y_noise: float = 0.1
    pad_noise: float = 0.05
    # where the padding noise goes: "both" (the authors': x's padding, the forward's [y, z]
    # padding target and the inverse pass's input) or "x" (only x's padding: the forward learns
    # to ignore it, while [y, z]'s padding is zero in training as it is at sampling)
    pad_noise_on: str = "both"
    # MSE of the x-padding of the inverse pass with fresh z against zero; 0 (the authors'):
    # unconstrained, and x = g(y, z)[:dim_x] then drops what went there
    lambda_pad: float = 0.0
    # MSE of s(x) at the inverse pass's samples against the y they were drawn for, through the
    # problem's forward process (which must be torch, differentiable and noise-free); 0 (the
    # authors'): the samples meet y only through the learnt forward map
    lambda_resim: float = 0.0
    # k > 0: L_x compares (x, k * y) pairs, g(y, z) against the batch's x with the same y: the
    # joint of x and y, so each posterior and not only x's marginal (0, the authors'); k
    # (standardised y with model.standardize) sets how finely the kernel separates y's
    mmd_x_y_scale: float = 0.0
    compile: bool = False
    log_every: int = 50
    # steps between checkpoints (model.pt, written atomically; also on Ctrl-C / SIGTERM and at
    # the end); 0: only then. ``invkit run --resume RUN_DIR`` continues from the last one.
    checkpoint_every: int = 500


@dataclass
class EvalConfig:
    """What `invkit run` / `invkit evaluate` measure after training."""

    n_targets: int = 100
    n_samples: int = 1000
    reference: str = "auto"  # auto (exact if the problem has it, else ABC) | exact | abc | none
    abc_pool: int = 10_000_000  # simulations in the shared quantile-ABC pool
    plots: bool = True
    # calibration diagnostics (SBC ranks, expected coverage) on held-out (x, y) pairs;
    # 0 targets disables them. 99 samples give 100 rank values: 20 equal histogram bins.
    calibration_targets: int = 200
    calibration_samples: int = 99


@dataclass
class RunConfig:
    problem: str = ""
    problem_options: dict[str, Any] = field(default_factory=dict)
    preset: str = "default"
    seed: int = 0
    device: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # -- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "seed": self.seed,
            "device": self.device,
            "problem": {"name": self.problem, **self.problem_options},
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
            "eval": dataclasses.asdict(self.eval),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        cfg = cls()
        data = dict(data)
        problem = dict(data.pop("problem", {}))
        cfg.problem = str(problem.pop("name", ""))
        cfg.problem_options = problem
        for key, value in _flatten(data).items():
            set_key(cfg, key, value, allow_short=False)
        return cfg

    def save(self, path: Path) -> None:
        import tomli_w

        path.write_text(tomli_w.dumps(self.to_dict()))


SECTIONS = {"model": ModelConfig, "train": TrainConfig, "eval": EvalConfig}
TOP_LEVEL = ("preset", "seed", "device")


def known_keys() -> list[str]:
    keys = list(TOP_LEVEL)
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def resolve_key(key: str, problem_options: dict[str, Any] | None = None) -> str:
    """Map a dotted or short key to its full dotted name, or raise with close matches."""
    keys = known_keys() + [f"problem.{k}" for k in (problem_options or {})]
    if key in keys:
        return key
    matches = [k for k in keys if k.split(".")[-1] == key]
    if not matches and key in ALIASES:
        return ALIASES[key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"Config key {key!r} is ambiguous: use one of {', '.join(matches)}.")
    raise ConfigError(
        f"Unknown config key {key!r}.{suggest(key, keys + [k.split('.')[-1] for k in keys])} "
        f"Known keys: {', '.join(keys)}."
    )


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number",
               list: "a list of numbers", str: "a string"}


def coerce(value: Any, default: Any, what: str) -> Any:
    """Convert a value (often a string from the command line) to the type of ``default``."""
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(float(value)) if isinstance(value, str) else int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"{what} must be a finite number, got {value!r}.")
            return number
        if isinstance(default, list):
            if isinstance(value, str):
                items = [v for v in value.strip("[]").split(",") if v.strip()]
            elif isinstance(value, (list, tuple)):
                items = list(value)
            else:
                raise ValueError
            elem = default[0] if default else 0.0
            return [coerce(v, elem, what) for v in items]
        if isinstance(default, str):
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError, OverflowError):
        kind = _KIND_NAMES.get(type(default), f"a {type(default).__name__}")
        raise ConfigError(
            f"{what} must be {kind} (like {default!r}), got {value!r}."
        ) from None
    return value


_CHOICES = {
    "preset": PRESETS,
    "model.kind": ("inn", "cinn"),
    "model.block": ("glow", "rnvp", "allinone"),
    "eval.reference": ("auto", "exact", "abc", "none"),
    "train.pad_noise_on": ("both", "x"),
}
_POSITIVE = {
    "model.n_blocks", "model.subnet_width", "model.subnet_depth", "train.n_samples",
    "train.batch_size", "train.steps", "train.lr", "eval.n_targets", "eval.n_samples",
    "model.clamp", "train.log_every", "eval.abc_pool", "model.cond_width",
    "eval.calibration_samples", "train.mmd_widths_z", "train.mmd_widths_x",
}
_NON_NEGATIVE = {
    "model.dim_z", "model.dim_total", "train.n_test", "train.lr_final", "train.eps",
    "train.weight_decay", "train.grad_clamp", "train.grad_clip_norm", "train.lambda_y",
    "train.lambda_z", "train.lambda_x", "train.lambda_recon", "train.lambda_pad",
    "train.lambda_resim", "train.mmd_x_y_scale", "train.y_noise", "train.pad_noise",
    "train.checkpoint_every", "model.leaky_slope", "model.cond_features",
    "eval.calibration_targets",
}

# Names that are not a key's last part but read naturally on the command line.
ALIASES = {"model": "model.kind"}  # --set model=cinn


def set_key(cfg: RunConfig, key: str, value: Any, allow_short: bool = True) -> str:
    """Set one key (converted and range-checked); returns the full key that was set."""
    full = resolve_key(key, cfg.problem_options) if allow_short else key
    if full.startswith("problem."):
        opt = full.split(".", 1)[1]
        if opt not in cfg.problem_options:
            # from a TOML file: the problem's declared options are checked when it is built
            cfg.problem_options[opt] = value
        else:
            cfg.problem_options[opt] = coerce(value, cfg.problem_options[opt], f"'{full}'")
        return full
    if full not in known_keys():
        raise ConfigError(f"Unknown config key {full!r}.{suggest(full, known_keys())}")
    if "." in full:
        section, name = full.split(".", 1)
        target = getattr(cfg, section)
    else:
        name, target = full, cfg
    new = coerce(value, getattr(target, name), f"'{full}'")
    if full in _CHOICES and new not in _CHOICES[full]:
        raise ConfigError(
            f"'{full}' must be one of {', '.join(_CHOICES[full])}, got {new!r}."
            f"{suggest(str(new), _CHOICES[full])}"
        )
    values = new if isinstance(new, list) else [new]
    if any(isinstance(v, float) and abs(v) > FLOAT32_MAX for v in values):
        raise ConfigError(f"'{full}' must be at most {FLOAT32_MAX!r} in magnitude (training "
                          f"runs in float32), got {new!r}.")
    if isinstance(new, list) and not new:
        raise ConfigError(f"'{full}' needs at least one value, got an empty list.")
    if full == "train.betas" and (len(new) != 2 or not all(0 <= b < 1 for b in new)):
        raise ConfigError(f"'train.betas' must be two numbers in [0, 1) (Adam's beta1, beta2), "
                          f"got {new!r}.")
    if full == "seed" and not 0 <= new < 2**32:
        raise ConfigError(f"'seed' must be between 0 and 2**32 - 1, got {new!r}.")
    if full in _POSITIVE and any(v <= 0 for v in values):
        raise ConfigError(f"'{full}' must be positive, got {new!r}.")
    if full in _NON_NEGATIVE and any(v < 0 for v in values):
        raise ConfigError(f"'{full}' must be zero or positive, got {new!r}.")
    setattr(target, name, new)
    return full


def parse_assignment(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r} (e.g. --set train.lr=3e-4).")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


# Core presets, applied before the problem's own preset overrides.
CORE_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "train.n_samples": 20_000, "train.n_test": 2_000, "train.batch_size": 500,
        "train.steps": 200, "model.n_blocks": 4, "model.subnet_width": 64,
        "eval.n_targets": 8, "eval.n_samples": 200, "eval.abc_pool": 200_000,
    },
    "default": {},
    "paper": {},
}


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"Config file {str(path)!r} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {str(path)!r} is not valid TOML: {exc}.") from None


def build_config(
    problem: str,
    problem_options_declared: dict[str, Any],
    problem_presets: dict[str, dict[str, Any]],
    preset: str = "default",
    toml: dict[str, Any] | None = None,
    overrides: list[tuple[str, str]] | None = None,
    seed: int | None = None,
    device: str | None = None,
) -> RunConfig:
    """Resolve a full config in the documented order of precedence.

    A problem preset may hold per-model-kind blocks, e.g. ``{"train.steps": 3000,
    "cinn": {"train.steps": 8000}}``: the block of the resolved ``model.kind`` is applied
    right after the preset's plain keys (so files and ``--set`` still win).
    """
    if preset not in PRESETS:
        raise ConfigError(f"Unknown preset {preset!r}.{suggest(preset, PRESETS)} "
                          f"Presets: {', '.join(PRESETS)}.")
    chosen = dict(problem_presets.get(preset, {}))
    plain = {k: v for k, v in chosen.items() if not isinstance(v, dict)}
    by_kind = {k: v for k, v in chosen.items() if isinstance(v, dict)}
    cfg = _resolve(problem, problem_options_declared, preset, plain, toml, overrides, seed,
                   device)
    if cfg.model.kind in by_kind:
        cfg = _resolve(problem, problem_options_declared, preset,
                       {**plain, **by_kind[cfg.model.kind]}, toml, overrides, seed, device)
    return cfg


def _resolve(problem: str, problem_options_declared: dict[str, Any], preset: str,
             problem_preset: dict[str, Any], toml: dict[str, Any] | None,
             overrides: list[tuple[str, str]] | None, seed: int | None,
             device: str | None) -> RunConfig:
    cfg = RunConfig(problem=problem, problem_options=dict(problem_options_declared))
    cfg.preset = preset
    for key, value in CORE_PRESETS[preset].items():
        set_key(cfg, key, value, allow_short=False)
    for key, value in problem_preset.items():
        set_key(cfg, key, value, allow_short=False)
    if toml:
        toml = dict(toml)
        prob = toml.pop("problem", {})
        if not isinstance(prob, dict):
            raise ConfigError(f"In a config file, 'problem' must be a table of problem options "
                              f"([problem] then e.g. labels = \"some\"), got {prob!r}.")
        prob = dict(prob)
        prob.pop("name", None)
        for key, value in prob.items():
            set_key(cfg, f"problem.{key}", value, allow_short=False)
        for key, value in _flatten(toml).items():
            if key == "preset":
                continue
            set_key(cfg, resolve_key(key, cfg.problem_options), value, allow_short=False)
    for key, value in overrides or []:
        set_key(cfg, key, value)
    if seed is not None:
        set_key(cfg, "seed", seed)
    if device is not None:
        cfg.device = device
    return cfg
