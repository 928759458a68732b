import numpy as np
import pytest
import torch

from invkit.errors import ConfigError
from invkit.models.inn import PaddedINN, resolve_dims


def _random_init(model: PaddedINN, gen: torch.Generator) -> None:
    # subnets start as the identity (zero last layer): give them weights so the test means something
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


@pytest.mark.parametrize("block", ["glow", "rnvp", "allinone"])
def test_inverse_is_exact_in_float64(block):
    model = PaddedINN(3, 2, block=block, n_blocks=4, subnet_width=32, seed=1)
    model = model.double()
    _random_init(model, torch.Generator().manual_seed(0))
    x = torch.randn(64, model.dim_total, dtype=torch.float64)
    out, ljf = model(x)
    back, ljr = model.inverse(out)
    assert (out - x).abs().max() > 1e-2  # a real transformation, not the identity
    torch.testing.assert_close(back, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(ljf, -ljr, rtol=0, atol=1e-9)


def test_log_det_matches_autograd():
    model = PaddedINN(2, 2, n_blocks=3, subnet_width=16, seed=0).double()
    _random_init(model, torch.Generator().manual_seed(1))
    x = torch.randn(5, model.dim_total, dtype=torch.float64)
    _, log_jac = model(x)
    for i in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: model(v[None])[0][0], x[i])
        assert float(log_jac[i].detach()) == pytest.approx(float(torch.slogdet(jac)[1]), abs=1e-8)


def test_permutations_are_seeded_and_leave_numpy_alone():
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    a = PaddedINN(4, 2, n_blocks=4, seed=5)
    assert np.random.rand() == expected  # FrEIA's reseeding did not leak out
    b = PaddedINN(4, 2, n_blocks=4, seed=5)
    c = PaddedINN(4, 2, n_blocks=4, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    perms = [k for k in sa if "perm" in k]
    assert perms and any(not torch.equal(sa[k], sc[k]) for k in perms)


def test_global_torch_rng_untouched():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    PaddedINN(2, 8, n_blocks=2, seed=3)
    assert torch.equal(torch.rand(1), expected)


def test_dims_auto_and_checked():
    assert resolve_dims(2, 8) == (2, 10)
    assert resolve_dims(4, 2) == (2, 4)
    assert resolve_dims(2, 8, dim_z=2, dim_total=16) == (2, 16)
    with pytest.raises(ConfigError, match="too small"):
        resolve_dims(2, 8, dim_total=5)


def test_untrained_model_is_identity():
    model = PaddedINN(2, 8, n_blocks=2, seed=0)
    x = torch.randn(10, model.dim_total)
    out, lj = model(x)
    # permutations only: the same values, reordered, and log-det zero
    torch.testing.assert_close(out.sort(dim=1).values, x.sort(dim=1).values)
    torch.testing.assert_close(lj, torch.zeros(10))
