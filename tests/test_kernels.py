"""The shared kernels and squared distances."""

import torch

from invkit.kernels import sq_dists


def test_squared_distances_of_a_batch():
    a = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
    torch.testing.assert_close(sq_dists(a, a), torch.tensor([[[0.0, 25.0], [25.0, 0.0]]]))


def test_squared_distances_match_explicit_differences():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 7, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    explicit = ((a[:, :, None, :] - b[:, None, :, :]) ** 2).sum(-1)
    torch.testing.assert_close(sq_dists(a, b), explicit, rtol=1e-5, atol=1e-5)
    assert bool((sq_dists(a, a) >= 0).all())  # rounding never gives a negative distance
