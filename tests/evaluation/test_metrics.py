"""Benchmark metrics: MMD^2 estimators, Err_post and Err_resim."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invkit.evaluation.metrics import err_post, err_resim, mmd, mmd_batched
from invkit.kernels import benchmark_kernel, imq_kernel

WIDTHS = (0.05, 0.2, 0.9)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed))


def imq_kernel_w():
    return lambda d2: imq_kernel(d2, WIDTHS)


def naive_mmd(x: torch.Tensor, y: torch.Tensor, kernel=benchmark_kernel) -> float:
    """Textbook biased MMD^2 in float64 with explicit differences."""
    x, y = x.double(), y.double()

    def k(a, b):
        return kernel(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).mean()

    return float(k(x, x) + k(y, y) - 2 * k(x, y))


def test_benchmark_kernel_matches_formula_and_value_at_zero():
    d2 = torch.linspace(0, 10, 101)
    expected = 0.5 / (0.5 + d2) + 0.2 / (0.2 + d2) + torch.sqrt(0.1 / (0.2 + d2))
    torch.testing.assert_close(benchmark_kernel(d2), expected)
    assert float(benchmark_kernel(torch.zeros(()))) == pytest.approx(2 + math.sqrt(0.5))
    # The fast path must not touch its input.
    before = d2.clone()
    benchmark_kernel(d2)
    assert torch.equal(d2, before)


def test_kernels_autograd_path_equals_fast_path():
    d2 = torch.rand(50, dtype=torch.float64) * 3
    leaf = d2.clone().requires_grad_()
    torch.testing.assert_close(benchmark_kernel(leaf), benchmark_kernel(d2))
    torch.testing.assert_close(imq_kernel(leaf, WIDTHS), imq_kernel(d2, WIDTHS))
    imq_kernel(leaf, WIDTHS).sum().backward()
    expected_grad = sum(-(a * a) / (a * a + d2) ** 2 for a in WIDTHS)
    torch.testing.assert_close(leaf.grad, expected_grad)


def test_imq_kernel_values():
    d2 = torch.tensor([0.0, 0.01, 1.0])
    expected = sum(a * a / (a * a + d2) for a in WIDTHS)
    torch.testing.assert_close(imq_kernel(d2, WIDTHS), expected)
    assert float(imq_kernel(torch.zeros(()), WIDTHS)) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        imq_kernel(d2, [])


@pytest.mark.parametrize("chunk", [None, 37])
def test_mmd_of_identical_sets_is_zero(chunk):
    x = randn(300, 3, seed=0)
    assert abs(float(mmd(x, x, chunk_elements=chunk))) < 1e-6
    assert abs(float(mmd(x, x.clone(), imq_kernel_w(), chunk_elements=chunk))) < 1e-6


def test_mmd_matches_naive_float64_reference():
    x = randn(200, 2, seed=1)
    y = randn(150, 2, seed=2) * 0.7 + 0.4
    for kernel in (benchmark_kernel, imq_kernel_w()):
        ref = naive_mmd(x, y, kernel)
        assert float(mmd(x, y, kernel)) == pytest.approx(ref, rel=1e-4, abs=1e-6)
        assert float(mmd(x, y, kernel, chunk_elements=101)) == pytest.approx(
            ref, rel=1e-4, abs=1e-6
        )


def test_mmd_grows_with_shift():
    x = randn(400, 2, seed=3)
    shifts = (0.0, 0.05, 0.1, 0.3, 1.0, 3.0)
    copies = [float(mmd(x, x + s)) for s in shifts]
    assert abs(copies[0]) < 1e-6
    assert all(b > a for a, b in zip(copies, copies[1:], strict=False)), copies
    # Independent draws: the biased estimator has an O(1/n) positive offset at zero shift.
    base = randn(400, 2, seed=4)
    values = [float(mmd(x, base + s)) for s in (0.0, 0.3, 1.0, 3.0)]
    assert values[0] < 0.03
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), values


def test_mmd_batched_equals_loop_and_is_chunk_invariant():
    x = randn(7, 120, 3, seed=5)
    y = randn(7, 90, 3, seed=6) + torch.linspace(0, 1, 7)[:, None, None]
    batched = mmd_batched(x, y)
    looped = torch.stack([mmd(a, b) for a, b in zip(x, y, strict=True)])
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)
    for chunk in (1, 50, 120 * 90 * 3, 10**9):  # row chunks, single rows, target batches
        torch.testing.assert_close(
            mmd_batched(x, y, chunk_elements=chunk), batched, rtol=1e-5, atol=1e-6
        )


def test_mmd_dtypes_and_shapes():
    x = randn(2, 20, 2, seed=7).double()
    assert mmd_batched(x, x.float()).dtype == torch.float64
    assert mmd_batched(x.float(), x.float()).dtype == torch.float32
    assert torch.isnan(mmd_batched(x[:, :0], x)).all()
    with pytest.raises(ValueError):
        mmd_batched(x[0], x[0])
    with pytest.raises(ValueError):
        mmd_batched(x, x[:1])
    with pytest.raises(ValueError):
        mmd(x, x)


def test_mmd_is_differentiable():
    x = randn(30, 2, seed=8).double().requires_grad_()
    y = randn(25, 2, seed=9).double() + 0.5
    assert torch.autograd.gradcheck(lambda a: mmd(a, y, chunk_elements=64), (x,))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    m=st.integers(1, 40),
    d=st.integers(1, 4),
    shift=st.floats(-3, 3),
    seed=st.integers(0, 2**16),
)
def test_mmd_symmetric_and_nonnegative(n, m, d, shift, seed):
    x = randn(n, d, seed=seed)
    y = randn(m, d, seed=seed + 1) + shift
    a, b = float(mmd(x, y)), float(mmd(y, x))
    assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    assert a > -1e-6


def test_err_post_tensor_inputs():
    model = randn(5, 200, 2, seed=10)
    ref = randn(5, 150, 2, seed=11) + 0.2
    mean, per = err_post(model, ref)
    torch.testing.assert_close(per, mmd_batched(model, ref))
    assert mean == pytest.approx(float(per.double().mean()))
    assert err_post(model, model)[0] < 1e-6


def test_err_post_ragged_reference_and_model():
    model = randn(6, 100, 2, seed=12)
    counts = [50, 80, 50, 0, 120, 80]
    refs = [randn(c, 2, seed=20 + i) * 0.8 for i, c in enumerate(counts)]
    mean, per = err_post(model, refs)
    assert per.shape == (6,)
    assert torch.isnan(per[3])
    for i, c in enumerate(counts):
        if c:
            assert float(per[i]) == pytest.approx(float(mmd(model[i], refs[i])), abs=1e-6)
    finite = per[~torch.isnan(per)]
    assert mean == pytest.approx(float(finite.double().mean()))
    # Ragged model samples too (e.g. a rejection-ABC baseline against the reference).
    ragged_model = [model[i, : 30 + 10 * i] for i in range(6)]
    _, per2 = err_post(ragged_model, refs)
    assert float(per2[5]) == pytest.approx(float(mmd(ragged_model[5], refs[5])), abs=1e-6)
    with pytest.raises(ValueError):
        err_post(model, refs[:5])


def _sum_forward(x: torch.Tensor) -> torch.Tensor:
    return x[:, :1] + x[:, 1:]


def test_err_resim_exact_solutions_are_zero_and_perturbed_positive():
    b, n = 8, 300
    targets = randn(b, 1, seed=30)
    free = randn(b, n, 1, seed=31)
    exact = torch.cat([free, targets[:, None, :] - free], dim=-1)  # x0 + x1 = y exactly
    mean, per = err_resim(exact, targets, _sum_forward)
    assert per.shape == (b,)
    assert mean < 1e-6
    noisy = exact + 0.1 * randn(b, n, 2, seed=32)
    mean_noisy, per_noisy = err_resim(noisy, targets, _sum_forward)
    assert (per_noisy > 0.01).all()
    # |N(0, 2 * 0.1^2)| has mean 0.1 * sqrt(2) * sqrt(2 / pi).
    assert mean_noisy == pytest.approx(0.1 * math.sqrt(2) * math.sqrt(2 / math.pi), rel=0.1)
    manual = (_sum_forward(noisy.reshape(-1, 2)).reshape(b, n, 1) - targets[:, None]).norm(dim=-1)
    torch.testing.assert_close(per_noisy, manual.mean(1), rtol=1e-5, atol=1e-7)
    _, chunked = err_resim(noisy, targets, _sum_forward, chunk_size=7)
    torch.testing.assert_close(chunked, per_noisy, rtol=1e-5, atol=1e-7)


def test_err_resim_ragged_samples():
    targets = randn(3, 1, seed=40)
    samples = [randn(c, 2, seed=41 + c) for c in (5, 0, 12)]
    mean, per = err_resim(samples, targets, _sum_forward, chunk_size=4)
    assert torch.isnan(per[1])
    for i in (0, 2):
        expect = (_sum_forward(samples[i]) - targets[i]).norm(dim=-1).mean()
        assert float(per[i]) == pytest.approx(float(expect), rel=1e-5)
    assert mean == pytest.approx(float((per[0] + per[2]) / 2), rel=1e-6)
    with pytest.raises(ValueError):
        err_resim(samples, targets[:2], _sum_forward)
