"""A problem's own metrics and plots hooks: their failures name the problem, plugin and hook."""

import types
from pathlib import Path

import pytest
import torch

import invkit
import invkit.registry as registry_module
from invkit import ForwardProcess, Prior, Problem, ProblemSpec
from invkit.errors import PluginHookError
from invkit.evaluation.evaluate import _problem_metrics, _problem_plots
from invkit.registry import Registry


def _ctx(monkeypatch, metrics=None, plots=None):
    class Plugin:
        @invkit.hookimpl
        def invkit_register_problems(self, register):
            register(ProblemSpec("sinusoid", lambda: None))

    reg = Registry()
    reg.add_plugin(Plugin(), name="sinusoid", distribution="invkit-sinusoid", version="0.1.0")
    monkeypatch.setattr(registry_module, "_DEFAULT", reg)
    problem = Problem("sinusoid", Prior("p", 1, lambda n, g: torch.zeros(n, 1)),
                      ForwardProcess("f", 1, 1, torch.sin), metrics=metrics, plots=plots)
    return types.SimpleNamespace(problem=problem)


def _boom(ctx):
    raise KeyError("phase")


def test_exception_in_the_metrics_hook(monkeypatch):
    with pytest.raises(PluginHookError) as info:
        _problem_metrics(_ctx(monkeypatch, metrics=_boom))
    assert str(info.value) == ("The metrics(ctx) hook of problem 'sinusoid' from plugin "
                               "'sinusoid' (distribution invkit-sinusoid 0.1.0) raised "
                               "KeyError: 'phase'")
    assert (info.value.problem, info.value.hook) == ("sinusoid", "metrics")
    assert isinstance(info.value.__cause__, KeyError)  # kept for a debugger


@pytest.mark.parametrize("returned,message", [
    (None, "returned NoneType; expected a dict"),
    ({"a": torch.ones(3)}, "returned Tensor for 'a'; metrics.json takes numbers"),
])
def test_metrics_hook_returning_the_wrong_thing(monkeypatch, returned, message):
    with pytest.raises(PluginHookError, match=message):
        _problem_metrics(_ctx(monkeypatch, metrics=lambda ctx: returned))


def test_metrics_hook_scalar_tensors_become_numbers(monkeypatch):
    ctx = _ctx(monkeypatch, metrics=lambda ctx: {"a": torch.tensor(0.5), "b": [1, 2]})
    assert _problem_metrics(ctx) == {"a": 0.5, "b": [1, 2]}


def test_plots_hook(monkeypatch):
    with pytest.raises(PluginHookError, match=r"plots\(ctx\) hook .* raised KeyError"):
        _problem_plots(_ctx(monkeypatch, plots=_boom))
    with pytest.raises(PluginHookError, match="returned NoneType; expected a list of the paths"):
        _problem_plots(_ctx(monkeypatch, plots=lambda ctx: None))
    assert _problem_plots(_ctx(monkeypatch, plots=lambda ctx: ["a.png"])) == [Path("a.png")]
