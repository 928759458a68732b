"""Loading a run back: what a missing problem plugin is told to do."""

import types

import pytest

import invkit.registry as registry_module
from invkit.errors import CheckpointError
from invkit.loading import checkpoint_problem
from invkit.registry import FailedPlugin, Registry

CFG = types.SimpleNamespace(problem="sinusoid", problem_options={})


def _ckpt(distribution):
    return {"problem": {"name": "sinusoid", "plugin": "sinusoid",
                        "distribution": distribution, "version": "0.1.0"}}


def _message(monkeypatch, reg, distribution):
    monkeypatch.setattr(registry_module, "_DEFAULT", reg)
    with pytest.raises(CheckpointError) as info:
        checkpoint_problem(_ckpt(distribution), CFG, "runs/sin")
    return str(info.value)


def test_installed_plugin_that_failed_to_load_is_not_called_missing(monkeypatch):
    reg = Registry()
    # entry-point dists may spell the name with '_' where the checkpoint has '-'
    reg.failed.append(FailedPlugin("sinusoid", "invkit_sinusoid",
                                   "ModuleNotFoundError: No module named 'scipy'", "0.1.0"))
    message = _message(monkeypatch, reg, "invkit-sinusoid")
    assert message == (
        "'runs/sin' was trained on problem 'sinusoid' from plugin 'sinusoid' (distribution "
        "invkit-sinusoid 0.1.0). That distribution is installed here but failed to load. "
        "Plugin 'sinusoid' (distribution invkit_sinusoid 0.1.0) failed to load: "
        "ModuleNotFoundError: No module named 'scipy'. Fix the plugin (or reinstall it), then "
        "check with 'invkit list' that it loads without a warning.")


def test_plugin_that_is_not_installed(monkeypatch):
    message = _message(monkeypatch, Registry(), "invkit-sinusoid")
    assert "which is not installed here. Install that distribution (pip install " \
           "'invkit-sinusoid==0.1.0') and check 'invkit list'." in message
    assert ".." not in message


def test_installed_distribution_without_the_problem(monkeypatch):
    # 'invkit' is installed, and registers no problem 'sinusoid'
    message = _message(monkeypatch, Registry(), "invkit")
    assert "That distribution is installed here (invkit " in message
    assert "but registers no problem 'sinusoid'. Run 'invkit list'" in message
    assert "not installed" not in message
