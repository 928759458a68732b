"""From presets, TOML files and ``--set key=value`` to one checked :class:`RunConfig`.

Keys are dotted (``train.lr``); a key whose last part is unique may be given alone
(``--set lr=3e-4``, ``--set labels=some``); ``--set model=cinn`` is an alias of ``model.kind``.
Problem options live in the ``problem`` section. Keys renamed since a release keep working
(``RENAMED``), so old config files and checkpoints load.
Resolution order: core defaults < core preset < problem preset < TOML file < ``--set``.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invkit.config.schema import (
    FLOAT32_MAX,
    PRESETS,
    FieldSpec,
    RunConfig,
    field_specs,
)
from invkit.errors import ConfigError, suggest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ALIASES = {"model": "model.kind"}
"""Names that are not a key's last part but read naturally on the command line."""
RENAMED = {"model.standardize": "model.standardise", "eval.abc_pool": "eval.reference_budget",
           "train.n_samples": "data.simulations", "train.n_test": "data.n_test"}
"""Old key -> current key: still accepted in files, checkpoints and ``--set``."""
RENAMED_VALUES = {"eval.reference": {"abc": "baseline"}}
"""Old values of a key -> current values."""

# Core presets, applied before the problem's own preset overrides.
CORE_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "data.simulations": 20_000, "data.n_test": 2_000, "train.batch_size": 500,
        "train.steps": 200, "model.n_blocks": 4, "model.subnet_width": 64,
        "eval.n_targets": 8, "eval.n_samples": 200, "eval.reference_budget": 200_000,
        "eval.c2st_observations": 2, "eval.c2st_targets": 1, "eval.c2st_samples": 1000,
    },
    "default": {},
    "paper": {},
}


def known_keys() -> list[str]:
    return list(field_specs())


def resolve_key(key: str, problem_options: Mapping[str, Any] | None = None) -> str:
    """Map a dotted, short, aliased or renamed key to its full dotted name, or raise with
    close matches."""
    keys = known_keys() + [f"problem.{k}" for k in (problem_options or {})]
    if key in keys:
        return key
    if key in RENAMED:
        return RENAMED[key]
    matches = [k for k in keys if k.split(".")[-1] == key]
    if not matches and key in ALIASES:
        return ALIASES[key]
    # an old key's short name still means it: a short name that is now another key's too is
    # ambiguous, not silently that other key (--set n_samples=... once meant the training set)
    matches += [new for old, new in RENAMED.items()
                if old.split(".")[-1] == key and new not in matches]
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
# a number as typed on a command line: digits may be grouped with '_' (1_000_000); nan and
# inf parse, so that they are refused as not finite rather than as not numbers
_NUMBER = re.compile(r"[+-]?(\d(_?\d)*(\.(\d(_?\d)*)?)?|\.\d(_?\d)*)([eE][+-]?\d+)?"
                     r"|[+-]?(nan|inf|infinity)", re.IGNORECASE)


def _number(text: str) -> float:
    s = text.strip()
    if not _NUMBER.fullmatch(s):
        raise ValueError(s)
    return float(s.replace("_", ""))


def coerce(value: Any, default: Any, what: str) -> Any:
    """Convert a value (often a string from the command line) to the type of ``default``.

    Strict: an integer setting takes whole numbers only ('1.5' is refused, '1e6' is fine), a
    list takes no empty items, a string 'nan' or 'inf' is no number.
    """
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
            number = _number(value) if isinstance(value, str) else value
            if isinstance(number, float):
                if not (math.isfinite(number) and number.is_integer()):
                    raise ValueError
                number = int(number)
            if not isinstance(number, int):
                raise ValueError
            return number
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError
            number = _number(value) if isinstance(value, str) else float(value)
            if not math.isfinite(number):
                raise ConfigError(f"{what} must be a finite number, got {value!r}.")
            return number
        if isinstance(default, list):
            if isinstance(value, str):
                body = value.strip().removeprefix("[").removesuffix("]")
                items: list[Any] = [v for v in body.split(",")] if body.strip() else []
                if any(not v.strip() for v in items):
                    raise ValueError
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


def check(spec: FieldSpec, new: Any) -> None:
    """Raise ConfigError unless ``new`` meets the field's constraints."""
    key = spec.key
    if spec.choices is not None and new not in spec.choices:
        raise ConfigError(f"'{key}' must be one of {', '.join(spec.choices)}, got {new!r}."
                          f"{suggest(str(new), spec.choices)}")
    values = new if isinstance(new, list) else [new]
    if isinstance(new, list) and not new:
        raise ConfigError(f"'{key}' needs at least one value, got an empty list.")
    if spec.length is not None and isinstance(new, list) and len(new) != spec.length:
        raise ConfigError(f"'{key}' must be {spec.length} numbers ({spec.help}), got {new!r}.")
    if spec.ge is not None and spec.le is not None and isinstance(values[0], (int, float)) \
            and not all(spec.ge <= v <= spec.le for v in values):
        raise ConfigError(f"'{key}' must be between {spec.ge:.0f} and {spec.le:.0f}, got {new!r}.")
    if any(isinstance(v, float) and abs(v) > FLOAT32_MAX for v in values):
        raise ConfigError(f"'{key}' must be at most {FLOAT32_MAX!r} in magnitude (training "
                          f"runs in float32), got {new!r}.")
    if spec.off_or_ge is not None and new != 0 and not new >= spec.off_or_ge:
        raise ConfigError(f"'{key}' must be 0 (off) or at least {spec.off_or_ge:g} ({spec.help}), "
                          f"got {new!r}.")
    bounds = (("gt", "greater than", lambda v, b: v > b), ("ge", "at least", lambda v, b: v >= b),
              ("lt", "less than", lambda v, b: v < b), ("le", "at most", lambda v, b: v <= b))
    for attr, words, ok in bounds:
        bound = getattr(spec, attr)
        if bound is not None and isinstance(values[0], (int, float)) \
                and not all(ok(v, bound) for v in values):
            each = " each" if isinstance(new, list) else ""
            shown = "positive" if (attr, bound) == ("gt", 0) else \
                "zero or positive" if (attr, bound) == ("ge", 0) else f"{words} {bound:g}"
            raise ConfigError(f"'{key}' must{each} be {shown}, got {new!r}.")


def set_key(cfg: RunConfig, key: str, value: Any, allow_short: bool = True) -> str:
    """Set one key (converted and range-checked); returns the full key that was set."""
    full = resolve_key(key, cfg.problem_options) if allow_short else RENAMED.get(key, key)
    if full.startswith("problem."):
        opt = full.split(".", 1)[1]
        if opt not in cfg.problem_options:
            # from a TOML file: the problem's declared options are checked when it is built
            cfg.problem_options[opt] = value
        else:
            cfg.problem_options[opt] = coerce(value, cfg.problem_options[opt], f"'{full}'")
        return full
    specs = field_specs()
    if full not in specs:
        raise ConfigError(f"Unknown config key {full!r}.{suggest(full, list(specs))}")
    if isinstance(value, str) and value in RENAMED_VALUES.get(full, {}):
        value = RENAMED_VALUES[full][value]
    if "." in full:
        section, name = full.split(".", 1)
        target = getattr(cfg, section)
    else:
        name, target = full, cfg
    new = coerce(value, getattr(target, name), f"'{full}'")
    check(specs[full], new)
    setattr(target, name, new)
    return full


def parse_assignment(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r} (e.g. --set train.lr=3e-4).")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """A RunConfig from the dict of ``RunConfig.to_dict`` (a config.toml or a checkpoint)."""
    cfg = RunConfig()
    data = dict(data)
    problem = dict(data.pop("problem", {}))
    cfg.problem = str(problem.pop("name", ""))
    cfg.problem_options = problem
    for key, value in _flatten(data).items():
        set_key(cfg, key, value, allow_short=False)
    return cfg


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"Config file {str(path)!r} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {str(path)!r} is not valid TOML: {exc}.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file {str(path)!r} is not UTF-8 text (byte {exc.start}: "
                          f"{exc.object[exc.start:exc.start + 1]!r}); TOML files are UTF-8. "
                          f"Save it as UTF-8.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {str(path)!r}: "
                          f"{exc.strerror or exc}.") from None


def build_config(
    problem: str,
    problem_options_declared: Mapping[str, Any],
    problem_presets: Mapping[str, Mapping[str, Any]],
    preset: str = "default",
    toml: Mapping[str, Any] | None = None,
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
    plain = {k: v for k, v in chosen.items() if not isinstance(v, Mapping)}
    by_kind = {k: v for k, v in chosen.items() if isinstance(v, Mapping)}
    args = (problem, problem_options_declared, preset)
    cfg = _resolve(*args, plain, toml, overrides, seed, device)
    if cfg.model.kind in by_kind:
        cfg = _resolve(*args, {**plain, **by_kind[cfg.model.kind]}, toml, overrides, seed,
                       device)
    return cfg


def _resolve(problem: str, problem_options_declared: Mapping[str, Any], preset: str,
             problem_preset: Mapping[str, Any], toml: Mapping[str, Any] | None,
             overrides: list[tuple[str, str]] | None, seed: int | None,
             device: str | None) -> RunConfig:
    cfg = RunConfig(problem=problem, problem_options=dict(problem_options_declared))
    cfg.preset = preset  # type: ignore[assignment]
    for key, value in CORE_PRESETS[preset].items():
        set_key(cfg, key, value, allow_short=False)
    for key, value in problem_preset.items():
        set_key(cfg, key, value, allow_short=False)
    if toml:
        toml = dict(toml)
        prob = toml.pop("problem", {})
        if not isinstance(prob, Mapping):
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
