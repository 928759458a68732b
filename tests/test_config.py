import pytest

from invkit.config import RunConfig, build_config, config_from_dict, load_toml, resolve_key, set_key
from invkit.errors import ConfigError


def test_short_keys_resolve():
    assert resolve_key("lr") == "train.lr"
    assert resolve_key("labels", {"labels": "all"}) == "problem.labels"
    assert resolve_key("model.n_blocks") == "model.n_blocks"


def test_unknown_key_suggests():
    with pytest.raises(ConfigError, match="Did you mean.*train.lr"):
        resolve_key("train.lrr")


def test_types_and_ranges():
    cfg = RunConfig()
    set_key(cfg, "train.steps", "1e3")
    assert cfg.train.steps == 1000
    set_key(cfg, "train.betas", "0.9,0.99")
    assert cfg.train.betas == [0.9, 0.99]
    set_key(cfg, "compile", "true")
    assert cfg.train.compile is True
    with pytest.raises(ConfigError, match="must be an integer"):
        set_key(cfg, "train.steps", "many")
    with pytest.raises(ConfigError, match="positive"):
        set_key(cfg, "train.lr", "-1")
    with pytest.raises(ConfigError, match="one of glow"):
        set_key(cfg, "model.block", "glwo")


def test_precedence(tmp_path):
    presets = {"quick": {"train.steps": 7, "train.lr": 0.5}}
    toml = tmp_path / "c.toml"
    toml.write_text('[train]\nlr = 0.25\n[problem]\nlabels = "some"\n')
    cfg = build_config("gmm", {"labels": "all"}, presets, "quick", load_toml(toml),
                       [("steps", "9")], seed=3)
    assert cfg.train.steps == 9  # --set beats the preset
    assert cfg.train.lr == 0.25  # the file beats the preset
    assert cfg.problem_options["labels"] == "some"
    assert cfg.seed == 3 and cfg.train.batch_size == 500  # core quick preset


def test_roundtrip(tmp_path):
    cfg = build_config("gmm", {"labels": "all"}, {}, "quick", None, [("labels", "some")])
    cfg.save(tmp_path / "config.toml")
    again = config_from_dict(load_toml(tmp_path / "config.toml"))
    assert again.to_dict() == cfg.to_dict()


def test_bad_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")


def test_per_model_kind_preset_block():
    presets = {"default": {"train.steps": 10, "inn": {"train.steps": 20, "train.lr": 0.5}}}
    assert build_config("p", {}, presets).train.steps == 10  # the default kind: cinn
    inn = build_config("p", {}, presets, overrides=[("model", "inn")])
    assert inn.train.steps == 20 and inn.train.lr == 0.5
    mine = build_config("p", {}, presets, overrides=[("model", "inn"), ("steps", "7")])
    assert mine.train.steps == 7  # --set still wins over the kind's block
