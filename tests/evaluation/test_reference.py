"""Which reference the evaluation uses for each eval.reference, the baseline it names by config,
and what it reports when that baseline is not installed."""

import pytest
import torch

import invkit
from invkit import Baseline, BaselineResult, ForwardProcess, Prior, Problem
from invkit.config import RunConfig, set_key
from invkit.errors import InvkitError
from invkit.evaluation import reference
from invkit.registry import Registry


def _problem(exact: bool) -> Problem:
    post = (lambda y, n, g: torch.full((y.shape[0], n, 1), 7.0)) if exact else None
    return Problem("line", Prior("p", 1, lambda n, g: torch.zeros(n, 1)),
                   ForwardProcess("f", 1, 1, lambda x: x), reference_posterior=post)


def _cfg(mode: str, baseline: str = "fake") -> RunConfig:
    cfg = RunConfig()
    for key, value in (("eval.reference", mode), ("eval.n_samples", 3),
                       ("eval.reference_budget", 100), ("eval.reference_baseline", baseline)):
        set_key(cfg, key, value)
    return cfg


@pytest.fixture
def calls(monkeypatch, tmp_path) -> list:
    """A registry with one baseline, 'fake', that records its calls; a private cache."""
    calls: list = []

    def run(problem, y, n, options, generator, progress=False):
        calls.append((n, dict(options)))
        return BaselineResult([torch.zeros(n, 1) for _ in range(y.shape[0])], 0, 0.0)

    class Plugin:
        @invkit.hookimpl
        def invkit_register_baselines(self, register):
            register(Baseline("fake", run, options={"budget": 1, "mode": "a"},
                              reference_options={"mode": "nearest"}))
            register(Baseline("no_reference", run))

    registry = Registry()
    registry.add_plugin(Plugin(), name="fake")
    monkeypatch.setattr(reference, "get_registry", lambda: registry)
    monkeypatch.setenv("INVKIT_CACHE", str(tmp_path))
    return calls


@pytest.mark.parametrize(("mode", "exact", "expected"), [
    ("auto", True, "exact"), ("auto", False, "fake"), ("baseline", True, "fake"),
    ("baseline", False, "fake"), ("exact", True, "exact"), ("none", True, None),
    ("none", False, None),
])
def test_each_mode_picks_its_reference(calls, mode, exact, expected):
    targets = torch.zeros(2, 1)
    out = reference.reference_samples(_problem(exact), targets, _cfg(mode),
                                      torch.Generator(), progress=False)
    assert (None if isinstance(out, str) else out[1]) == expected
    assert bool(calls) == (expected == "fake")
    if expected == "exact":
        assert torch.equal(out[0], torch.full((2, 3, 1), 7.0))
    if expected == "fake":
        # the reference options over the declared ones, and the budget from the config
        assert calls == [(3, {"budget": 100, "mode": "nearest"})]


def test_the_old_value_abc_still_means_the_baseline():
    assert _cfg("abc").eval.reference == "baseline"


def test_exact_without_an_exact_posterior_says_what_to_use(calls):
    with pytest.raises(InvkitError, match="has no exact posterior. Use eval.reference=baseline"):
        reference.reference_samples(_problem(False), torch.zeros(1, 1), _cfg("exact"),
                                    torch.Generator(), progress=False)
    assert not calls


def test_a_missing_baseline_is_reported_not_a_crash(calls):
    out = reference.reference_samples(_problem(False), torch.zeros(1, 1),
                                      _cfg("auto", baseline="abc"), torch.Generator())
    assert isinstance(out, str)
    assert "'abc' (eval.reference_baseline) is not installed" in out
    assert "installed baselines: fake, no_reference" in out


def test_a_baseline_without_reference_options_is_reported(calls):
    out = reference.reference_samples(_problem(False), torch.zeros(1, 1),
                                      _cfg("auto", baseline="no_reference"), torch.Generator())
    assert isinstance(out, str) and "declares no reference_options" in out
    assert not calls


def test_the_reference_is_cached(calls):
    for _ in range(2):
        reference.reference_samples(_problem(False), torch.zeros(2, 1), _cfg("auto"),
                                    torch.Generator(), progress=False)
    assert len(calls) == 1
