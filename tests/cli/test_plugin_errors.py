"""A third-party plugin's mistakes at the command line: one paragraph, exit 2, nothing lost.

The plugin is registered in code (as if through its entry point) in the process-wide registry.
"""

import json

import pytest
import torch

import invkit
import invkit.registry as registry_module
from invkit import ForwardProcess, Prior, Problem, ProblemSpec
from invkit.cli.main import main
from invkit.registry import FailedPlugin, Registry

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--preset", "quick", "--quiet", "--set", "data.simulations=500",
        "--set", "data.n_test=32", "--set", "train.batch_size=32",
        "--set", "model.subnet_width=8", "--set", "model.n_blocks=2",
        "--set", "train.steps=20", "--set", "eval.n_targets=4", "--set", "eval.n_samples=32",
        "--set", "eval.reference=none", "--set", "eval.calibration_targets=0"]
BROKEN = {"metrics": False, "plots": False}  # which hooks raise


def _metrics(ctx):
    if BROKEN["metrics"]:
        raise ValueError("phase out of range")
    return {"phase_error": 0.25}


def _plots(ctx):
    if BROKEN["plots"]:
        raise RuntimeError("no figure")
    return []


class Sinusoid:
    @invkit.hookimpl
    def invkit_register_problems(self, register):
        register(ProblemSpec("sinusoid", lambda: Problem(
            "sinusoid", Prior("sin_prior", 2, lambda n, g: torch.randn(n, 2, generator=g,
                                                                       device=g.device)),
            ForwardProcess("sin_fwd", 2, 1, lambda x: torch.sin(x[:, :1]) * x[:, 1:]),
            noise_std=0.1, metrics=_metrics, plots=_plots)))


@pytest.fixture
def registry(monkeypatch):
    reg = Registry()
    reg.add_plugin(Sinusoid(), name="sinusoid", distribution="invkit-sinusoid", version="0.1.0")
    monkeypatch.setattr(registry_module, "_DEFAULT", reg)
    monkeypatch.setitem(BROKEN, "metrics", False)
    monkeypatch.setitem(BROKEN, "plots", False)
    return reg


def _error(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return " ".join(err.split())


def test_metrics_hook_error_keeps_the_trained_model(registry, tmp_path, capsys):
    out = tmp_path / "run"
    BROKEN["metrics"] = True
    assert main(["run", "sinusoid", *TINY, "--out", str(out)]) == 2
    err = _error(capsys)
    assert err.startswith("error: The metrics(ctx) hook of problem 'sinusoid' from plugin "
                          "'sinusoid' (distribution invkit-sinusoid 0.1.0) raised ValueError: "
                          "phase out of range. The trained model is saved in ")
    assert err.endswith("Fix the plugin, then redo the evaluation without retraining: invkit "
                        f"evaluate {out}")
    assert (out / "model.pt").exists()
    assert "train_time_s" in json.loads((out / "metrics.json").read_text())

    BROKEN["metrics"] = False  # the plugin is fixed: evaluate, without retraining
    assert main(["evaluate", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["phase_error"] == 0.25 and "train_time_s" in metrics


def test_plots_hook_error_in_evaluate(registry, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "sinusoid", *TINY, "--out", str(out)]) == 0
    BROKEN["plots"] = True
    assert main(["evaluate", str(out), "--quiet"]) == 2
    err = _error(capsys)
    assert "The plots(ctx) hook of problem 'sinusoid' from plugin 'sinusoid' (distribution " \
           "invkit-sinusoid 0.1.0) raised RuntimeError: no figure." in err
    assert err.endswith("Fix the plugin, then redo the evaluation without retraining (add "
                        f"--set eval.plots=false to skip the plots): invkit evaluate {out}")
    assert main(["evaluate", str(out), "--quiet", "--set", "eval.plots=false"]) == 0


def test_sample_when_the_installed_plugin_failed_to_load(registry, tmp_path, capsys,
                                                          monkeypatch):
    out = tmp_path / "run"
    assert main(["run", "sinusoid", *TINY, "--no-eval", "--out", str(out)]) == 0
    broken = Registry()
    broken.failed.append(FailedPlugin("sinusoid", "invkit-sinusoid",
                                      "ModuleNotFoundError: No module named 'scipy'", "0.1.0"))
    monkeypatch.setattr(registry_module, "_DEFAULT", broken)
    assert main(["sample", str(out), "--y", "0.5"]) == 2
    err = _error(capsys)
    assert "That distribution is installed here but failed to load. Plugin 'sinusoid' " \
           "(distribution invkit-sinusoid 0.1.0) failed to load: ModuleNotFoundError: No " \
           "module named 'scipy'. Fix the plugin (or reinstall it), then check with 'invkit " \
           "list'" in err
    assert "pip install" not in err and "not installed" not in err


@pytest.mark.parametrize("reference", ["auto", "baseline"])
def test_core_runs_without_the_reference_baseline(tmp_path, reference):
    """Only the kinematics plugin loaded: the run trains and evaluates. By default the arm is
    scored against its exact posterior; asked for the baseline reference, it says it skipped
    Err_post because that baseline (eval.reference_baseline=abc) is not installed."""
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    env = {**os.environ, "INVKIT_PLUGINS": "kinematics", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "invkit", "run", "kinematics", "--preset", "quick", "--quiet",
           "--set", "train.steps=20", "--set", "eval.plots=false",
           "--set", "eval.calibration_targets=20", "--set", f"eval.reference={reference}",
           "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert "err_resim" in metrics
    if reference == "auto":
        assert metrics["err_post_reference"] == "exact"
    else:
        assert "err_post" not in metrics
        assert "reference baseline 'abc' (eval.reference_baseline) is not installed" \
            in metrics["err_post_skipped"]
