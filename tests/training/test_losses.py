import pytest
import torch

from invkit.training.losses import inverse_weight_ramp, mmd2, mmd2_reference

W = [0.05, 0.2, 0.9]


def test_mmd_of_identical_samples_is_zero():
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
    assert abs(float(mmd2(x, x.clone(), W))) < 1e-5


def test_mmd_grows_with_shift():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 2, generator=g)
    y = torch.randn(400, 2, generator=g)
    values = [float(mmd2(x, y + s, W)) for s in (0.0, 0.3, 1.0, 3.0)]
    assert values[0] < 0.02
    assert values == sorted(values) and values[-1] > 0.5


def test_fused_equals_straightforward():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(200, 5, generator=g), 0.5 + torch.randn(150, 5, generator=g)
    torch.testing.assert_close(mmd2(x, y, W), mmd2_reference(x, y, W), rtol=1e-4, atol=1e-6)


def test_mmd_gradient_flows():
    x = torch.randn(50, 2, requires_grad=True)
    mmd2(x, torch.randn(50, 2) + 1, W).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_ramp_matches_authors():
    assert inverse_weight_ramp(0.0) == pytest.approx(0.004)
    assert inverse_weight_ramp(1.0) == 1.0
    assert inverse_weight_ramp(0.5) == pytest.approx(min(1, 2 * 0.002 ** 0.5))


def test_fused_gradient_equals_autograd_of_straightforward():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = (torch.randn(200, 4, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    gx, gy = torch.autograd.grad(mmd2(x, y, W), (x, y))
    rx, ry = torch.autograd.grad(mmd2_reference(x, y, W), (x, y))
    torch.testing.assert_close(gx, rx, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gy, ry, rtol=1e-9, atol=1e-12)
