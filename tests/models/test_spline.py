"""The rational-quadratic spline coupling block (invkit.models.spline): the spline and its
inverse, its log-derivative, the identity at initialisation and outside the interval, and the
block inside both model kinds (exact inverse, log-det against autograd, normalised density)."""

from __future__ import annotations

import pytest
import torch

from invkit.models.cinn import ConditionalINN
from invkit.models.inn import PaddedINN
from invkit.models.network import dense_subnet
from invkit.models.spline import RQSplineCouplingBlock, rq_spline

pytestmark = pytest.mark.usefixtures("one_thread")

BINS, BOUND = 6, 3.0


def _params(n=2000, d=3, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 2.5 * torch.randn(n, d, generator=g, dtype=torch.float64)  # some outside [-3, 3]
    raw = [scale * torch.randn(n, d, k, generator=g, dtype=torch.float64)
           for k in (BINS, BINS, BINS - 1)]
    return x, raw


def test_inverse_undoes_the_spline_and_negates_its_log_derivative():
    x, raw = _params()
    y, ld = rq_spline(x, *raw, BOUND)
    back, ld_inv = rq_spline(y, *raw, BOUND, inverse=True)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-9)
    torch.testing.assert_close(ld_inv, -ld, rtol=0, atol=1e-9)


def test_log_derivative_matches_autograd_and_the_map_is_monotone():
    x, raw = _params(n=500)
    x = x.requires_grad_()
    y, ld = rq_spline(x, *raw, BOUND)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad.log(), ld, rtol=0, atol=1e-10)
    assert bool((grad > 0).all())


def test_identity_outside_the_interval_and_at_zero_parameters():
    x, raw = _params()
    y, ld = rq_spline(x, *raw, BOUND)
    out = x.abs() > BOUND
    assert out.any()
    assert torch.equal(y[out], x[out]) and bool((ld[out] == 0).all())
    # the interval maps onto itself
    inside = ~out
    assert bool((y[inside].abs() <= BOUND + 1e-12).all())
    zero = [torch.zeros_like(r) for r in raw]
    y0, ld0 = rq_spline(x, *zero, BOUND)
    torch.testing.assert_close(y0, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(ld0, torch.zeros_like(x), rtol=0, atol=1e-12)


def test_map_is_continuous_at_the_knots_and_the_bounds():
    _, raw = _params(n=1, d=1, scale=2.0)
    grid = torch.linspace(-4, 4, 20001, dtype=torch.float64)[:, None]
    raw = [r.expand(grid.shape[0], 1, r.shape[-1]) for r in raw]
    y, _ = rq_spline(grid, *raw, BOUND)
    steps = y[1:, 0] - y[:-1, 0]
    assert bool((steps > 0).all())
    assert float(steps.max()) < 0.05  # no jump anywhere (the finest slope here is < 125)


def test_block_starts_as_the_identity():
    block = RQSplineCouplingBlock([(5,)], [(2,)], subnet_constructor=dense_subnet(16, 2, 0.01))
    x, c = torch.randn(50, 5), torch.randn(50, 2)
    (y,), jac = block([x], c=[c])
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(jac, torch.zeros(50))


@pytest.mark.parametrize("bad", [{"bins": 1}, {"bound": 0.0}])
def test_block_refuses_bad_settings(bad):
    with pytest.raises(ValueError):
        RQSplineCouplingBlock([(4,)], subnet_constructor=dense_subnet(8, 1, 0.01), **bad)


def _randomised(model, scale=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def test_spline_cinn_log_det_matches_autograd():
    m = _randomised(ConditionalINN(3, 2, block="spline", n_blocks=3, subnet_width=16,
                                   spline_bins=BINS, seed=0).double())
    m.init_standardisation(torch.randn(100, 3, dtype=torch.float64),
                           torch.randn(100, 2, dtype=torch.float64))
    x = torch.randn(4, 3, dtype=torch.float64)
    y = torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        _, ld = m.encode(x, y)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(
            lambda v, i=i: m.encode(v[None], y[i:i + 1])[0][0], x[i])
        assert float(ld[i]) == pytest.approx(float(torch.slogdet(jac)[1]), abs=1e-8)


def test_spline_cinn_density_is_normalised():
    m = _randomised(ConditionalINN(2, 1, block="spline", n_blocks=2, subnet_width=16,
                                   seed=0).double(), scale=0.3)
    m.init_standardisation(torch.randn(100, 2, dtype=torch.float64),
                           torch.randn(100, 1, dtype=torch.float64))
    y = torch.tensor([[0.4]], dtype=torch.float64)
    n = 400
    a = torch.linspace(-7, 7, n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        q = m.log_prob(grid, y.expand(grid.shape[0], 1)).exp()
    assert float(q.sum() * (a[1] - a[0]) ** 2) == pytest.approx(1.0, abs=0.01)


def test_spline_inn_is_exactly_invertible():
    m = _randomised(PaddedINN(2, 3, block="spline", n_blocks=3, subnet_width=16, seed=0)
                    .double())
    u = torch.randn(20, m.dim_total, dtype=torch.float64)
    out, ld = m.net(u, jac=True)
    back, ld_r = m.net(out, rev=True, jac=True)
    torch.testing.assert_close(back, u, rtol=0, atol=1e-10)
    torch.testing.assert_close(ld, -ld_r, rtol=0, atol=1e-10)
