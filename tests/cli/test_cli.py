"""The command line on the quick preset: run, sample, evaluate, list, and bad input."""

import json

import numpy as np
import pytest

from invkit.cli.main import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "gmm-run"
    code = main(["run", "gmm", "--preset", "quick", "--out", str(out), "--quiet",
                 "--set", "train.steps=60", "--set", "data.simulations=5000"])
    assert code == 0
    return out


def test_run_writes_the_run_directory(run_dir):
    for name in ("config.toml", "model.pt", "metrics.json"):
        assert (run_dir / name).exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("forward_accuracy", "mode_tv_mean", "err_resim", "train_time_s",
                "sampling_rate_per_s"):
        assert key in metrics
    assert (run_dir / "plots" / "gmm_forward_inverse.png").exists()
    assert (run_dir / "plots" / "losses.png").exists()


def test_sample_to_file(run_dir, tmp_path):
    out = tmp_path / "s.npy"
    assert main(["sample", str(run_dir), "--y", "1,0,0,0,0,0,0,0", "--y", "0,1,0,0,0,0,0,0",
                 "-n", "50", "--out", str(out)]) == 0
    assert np.load(out).shape == (2, 50, 2)


def test_sample_wrong_dim_is_a_clear_error(run_dir, capsys):
    assert main(["sample", str(run_dir), "--y", "1,0", "-n", "5"]) == 2
    err = capsys.readouterr().err
    assert "dim_y=8" in err and "Traceback" not in err


def test_evaluate_recomputes(run_dir):
    assert main(["evaluate", str(run_dir), "--quiet", "--set", "eval.n_samples=100"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_samples_per_target"] == 100


def test_existing_out_is_not_overwritten(run_dir, capsys):
    assert main(["run", "gmm", "--preset", "quick", "--out", str(run_dir), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "gmm" in out and "invkit" in out


@pytest.mark.parametrize("argv,message", [
    (["run", "gmn", "--preset", "quick"], "Did you mean 'gmm'"),
    (["run", "gmm", "--set", "train.lrr=1"], "Did you mean"),
    (["run", "gmm", "--set", "steps=lots"], "must be an integer"),
    (["run", "gmm", "--set", "labels=few"], "labels must be one of"),
    (["run", "gmm", "--set", "nokey"], "KEY=VALUE"),
    (["sample", "/nonexistent/run", "--y", "1"], "No checkpoint"),
])
def test_bad_input_gets_one_paragraph(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("model.pt"))


def test_list_never_truncates_names(capsys, monkeypatch):
    import invkit
    import invkit.registry as registry_module
    from invkit import ProblemSpec
    from invkit.registry import get_registry

    class Long:
        @invkit.hookimpl
        def invkit_register_problems(self, register):
            register(ProblemSpec("sinusoid_with_a_rather_long_name", lambda: None,
                                 description="a long description " * 8))

    reg = get_registry()
    monkeypatch.setattr(registry_module, "_DEFAULT", registry_module.Registry(
        entries={k: dict(v) for k, v in reg.entries.items()}))
    get_registry().add_plugin(Long(), name="sinusoid_long", distribution="invkit-sinusoid-long",
                              version="0.1.0")
    monkeypatch.setenv("COLUMNS", "80")  # stdout is no terminal here: as in 'invkit list | cat'
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    words = set(out.split())
    for kind in ("prior", "forward process", "problem", "baseline"):
        for name in get_registry().names(kind):
            assert name in words, name


def test_list_warns_about_broken_plugins_on_stderr(capsys, monkeypatch):
    import types

    import invkit.registry as registry_module
    from invkit.registry import FailedPlugin, Registry

    reg = Registry()
    reg.failed.append(FailedPlugin("broken", "invkit-broken",
                                   "ModuleNotFoundError: No module named 'scipy'", "0.1.0"))
    module = types.ModuleType("invkit_sinusoid.plugin")
    module.invkit_register_problems = lambda register: None
    reg.add_plugin(module, name="sinusoid", distribution="invkit-sinusoid", version="0.1.0")
    monkeypatch.setattr(registry_module, "_DEFAULT", reg)
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    assert "broken" not in out and "sinusoid" not in out
    err = " ".join(err.split())
    assert "warning: Plugin 'broken' (distribution invkit-broken 0.1.0) failed to load: " \
           "ModuleNotFoundError: No module named 'scipy'. It was skipped" in err
    assert "warning: Plugin 'sinusoid' (distribution invkit-sinusoid 0.1.0): module " \
           "invkit_sinusoid.plugin defines invkit_register_problems without the " \
           "@invkit.hookimpl decorator" in err


def test_every_option_has_help():
    import argparse

    from invkit.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {a.option_strings or a.dest}" for name, parser in sub.choices.items()
               for a in parser._actions if not a.help]
    assert missing == []
    baseline_out = next(a for a in sub.choices["baseline"]._actions if a.dest == "out")
    assert "n_simulations" in baseline_out.help  # the dict it writes, not "a list per target"
