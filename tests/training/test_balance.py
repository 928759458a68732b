"""data.balance: training pairs drawn in proportion to p(y)^-a, every p(x | y) unchanged."""

from __future__ import annotations

import pytest
import torch

from invkit.config import RunConfig, set_key
from invkit.errors import ConfigError
from invkit.training.balance import balance_weights, cumulative, draw
from invkit.training.data import Dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _pairs(n: int = 40_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(0, 1), y = x + 0.1 noise: y's tails are rare, p(x | y) is known."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=g)
    return x, x + 0.1 * torch.randn(n, 1, generator=g)


def test_exponent_zero_gives_equal_weights():
    _, y = _pairs(1000)
    assert torch.equal(balance_weights(y, 0.0), torch.ones(1000, dtype=torch.float64))


def test_rare_observations_get_more_weight_and_weights_depend_on_y_only():
    _, y = _pairs()
    w = balance_weights(y, 1.0)
    assert w.shape == (y.shape[0],) and bool((w > 0).all())
    assert abs(float(w.mean()) - 1.0) < 1e-9
    tail, centre = y[:, 0].abs() > 2.0, y[:, 0].abs() < 0.5
    assert float(w[tail].mean()) > 5 * float(w[centre].mean())
    # a = 1 flattens y's distribution: the tails' share of the draws grows from ~5% to ~25%+
    share = float(w[y[:, 0].abs() > 1.5].sum() / w.sum())
    assert share > 0.25, share
    # the same y twice (a duplicated pair) gets the same weight
    y2 = torch.cat([y, y[:10]])
    w2 = balance_weights(y2, 1.0)
    assert torch.allclose(w2[:10] / w2[:10].mean(), w2[-10:] / w2[-10:].mean())


def test_weights_are_capped():
    _, y = _pairs()
    y[0] = 40.0  # one isolated observation far out
    w = balance_weights(y, 1.0, cap=30.0)
    assert float(w.max()) <= 30.0 * float(w.median()) * (1 + 1e-9)


def test_draw_follows_the_weights():
    w = torch.tensor([1.0, 3.0, 0.0, 6.0], dtype=torch.float64)
    idx = draw(cumulative(w), 100_000, torch.Generator().manual_seed(0))
    freq = torch.bincount(idx, minlength=4).double() / idx.numel()
    assert torch.allclose(freq, w / w.sum(), atol=0.01)
    assert int(freq[2]) == 0


def test_balanced_batches_keep_every_posterior():
    """Within a bin of y, x of the balanced batches has the prior batches' law (p(x | y))."""
    x, y = _pairs(200_000)
    data = Dataset(x, y, x[:1], y[:1])
    data.balance(1.0, seed=0)
    assert data.simulations["balance_rarest_tenth_share"] > 0.2
    g = torch.Generator().manual_seed(1)
    xb, yb = data.batch(200_000, g)
    assert float((yb.abs() > 1.5).float().mean()) > 2 * float((y.abs() > 1.5).float().mean())
    for lo, hi in ((-2.2, -1.8), (-0.2, 0.2), (1.0, 1.4), (1.8, 2.2)):
        sel = (yb[:, 0] >= lo) & (yb[:, 0] < hi)
        ref = (y[:, 0] >= lo) & (y[:, 0] < hi)
        res_b, res_p = (xb - yb)[sel, 0], (x - y)[ref, 0]
        # residual x - y given y: the same mean and spread (0.1 / sqrt(1.01) about 0.0995)
        assert abs(float(res_b.std()) - float(res_p.std())) < 0.01
        assert abs(float(res_b.mean()) - float(res_p.mean())) < 0.01
    data.balance(0.0, seed=0)
    assert data.cdf is None


def test_balance_is_checked():
    cfg = RunConfig()
    set_key(cfg, "data.balance", "0.5")
    assert cfg.data.balance == 0.5
    with pytest.raises(ConfigError, match="data.balance"):
        set_key(cfg, "data.balance", "1.5")
