"""The run configuration: typed sections (:mod:`~invkit.config.schema`) and their resolution
from presets, TOML files and ``--set`` (:mod:`~invkit.config.resolve`)."""

from invkit.config.resolve import (
    ALIASES,
    CORE_PRESETS,
    RENAMED,
    build_config,
    coerce,
    config_from_dict,
    known_keys,
    load_toml,
    parse_assignment,
    resolve_key,
    set_key,
)
from invkit.config.schema import (
    PRESETS,
    SECTIONS,
    TOP_LEVEL,
    DataConfig,
    EvalConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    field_specs,
)

__all__ = [
    "ALIASES", "CORE_PRESETS", "PRESETS", "RENAMED", "SECTIONS", "TOP_LEVEL", "DataConfig",
    "EvalConfig",
    "ModelConfig", "RunConfig", "TrainConfig", "build_config", "coerce", "config_from_dict",
    "field_specs", "known_keys", "load_toml", "parse_assignment", "resolve_key", "set_key",
]
