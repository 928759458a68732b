"""The cINN's maximum-likelihood objective: its training noise on y, fixed or with a random
level that conditions the network (model.noise_level_input)."""

from __future__ import annotations

import pytest
import torch

from invkit.config import TrainConfig
from invkit.errors import ConfigError
from invkit.models.cinn import ConditionalINN
from invkit.training.cinn_objective import MaxLikelihoodObjective

pytestmark = pytest.mark.usefixtures("one_thread")


def _recording(**model) -> tuple[ConditionalINN, list]:
    net = ConditionalINN(3, 2, n_blocks=2, subnet_width=16, **model)
    seen: list = []
    inner = net.nll_terms

    def nll_terms(x, y, aux=None, level=None):
        seen.append((y.clone(), None if level is None else level.clone()))
        return inner(x, y, aux, level)

    net.nll_terms = nll_terms  # type: ignore[method-assign]
    return net, seen


def _batch(n: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, generator=g), torch.randn(n, 2, generator=g)


def test_fixed_noise_is_y_noise_for_every_pair():
    net, seen = _recording()
    x, y = _batch()
    MaxLikelihoodObjective(net, TrainConfig(y_noise=0.2))(x, y, torch.Generator().manual_seed(1))
    y_in, level = seen[0]
    assert level is None
    assert float((y_in - y).std()) == pytest.approx(0.2, rel=0.05)


def test_noise_level_input_draws_a_level_per_pair_and_passes_it_on():
    net, seen = _recording(noise_level_input=True)
    x, y = _batch()
    MaxLikelihoodObjective(net, TrainConfig(y_noise=0.2))(x, y, torch.Generator().manual_seed(1))
    y_in, level = seen[0]
    assert level.shape == (2000, 1)
    assert float(level.min()) >= 0 and float(level.max()) <= 1
    assert float(level.mean()) == pytest.approx(0.5, abs=0.03)  # U(0, 1)
    # each pair's noise is y_noise * its level * N(0, I): standardised by it, unit normal
    unit = (y_in - y) / (0.2 * level)
    assert float(unit.std()) == pytest.approx(1.0, rel=0.05)
    # exactly what the objective's generator gives: the normal draw, then the levels
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(y.shape, generator=gen)
    expected_level = torch.rand(2000, 1, generator=gen)
    torch.testing.assert_close(level, expected_level, rtol=0, atol=0)
    torch.testing.assert_close(y_in, y + 0.2 * noise * expected_level)


def test_noise_level_input_needs_training_noise():
    net, _ = _recording(noise_level_input=True)
    with pytest.raises(ConfigError, match="train.y_noise > 0"):
        MaxLikelihoodObjective(net, TrainConfig(y_noise=0.0))
