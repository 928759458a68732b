"""Which reference the evaluation uses for each eval.reference, and when it needs ABC."""

from types import SimpleNamespace

import pytest
import torch

from invkit import ForwardProcess, Prior, Problem
from invkit.errors import InvkitError
from invkit.evaluation import reference


def _problem(exact: bool) -> Problem:
    post = (lambda y, n, g: torch.full((y.shape[0], n, 1), 7.0)) if exact else None
    return Problem("line", Prior("p", 1, lambda n, g: torch.zeros(n, 1)),
                   ForwardProcess("f", 1, 1, lambda x: x), reference_posterior=post)


def _cfg(mode: str) -> SimpleNamespace:
    return SimpleNamespace(seed=0, eval=SimpleNamespace(reference=mode, n_samples=3,
                                                        abc_pool=100))


@pytest.fixture
def abc_calls(monkeypatch) -> list:
    calls: list = []

    def fake(problem, targets, n, pool, seed, progress=True, together=False):
        calls.append((n, pool, seed))
        return torch.zeros(targets.shape[0], n, 1)

    monkeypatch.setattr(reference, "abc_reference", fake)
    return calls


@pytest.mark.parametrize(("mode", "exact", "expected"), [
    ("auto", True, "exact"), ("auto", False, "abc"), ("abc", True, "abc"),
    ("abc", False, "abc"), ("exact", True, "exact"), ("none", True, None),
    ("none", False, None),
])
def test_each_mode_picks_its_reference(abc_calls, mode, exact, expected):
    targets = torch.zeros(2, 1)
    out = reference.reference_samples(_problem(exact), targets, _cfg(mode),
                                      torch.Generator(), progress=False)
    assert (out if out is None else out[1]) == expected
    assert bool(abc_calls) == (expected == "abc")
    assert reference.needs_abc(_problem(exact), _cfg(mode)) == (expected == "abc")
    if expected == "exact":
        assert torch.equal(out[0], torch.full((2, 3, 1), 7.0))
    if expected == "abc":
        assert abc_calls == [(3, 100, 0)]


def test_exact_without_an_exact_posterior_says_what_to_use(abc_calls):
    with pytest.raises(InvkitError, match="has no exact posterior. Use eval.reference=abc"):
        reference.reference_samples(_problem(False), torch.zeros(1, 1), _cfg("exact"),
                                    torch.Generator(), progress=False)
    assert not abc_calls and not reference.needs_abc(_problem(False), _cfg("exact"))
