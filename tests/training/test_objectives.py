"""INNObjective's options beyond the authors' losses: where the padding noise goes, L_pad,
L_resim and the joint L_x."""

from __future__ import annotations

import pytest
import torch

from invkit.config import RunConfig, TrainConfig, set_key
from invkit.errors import ConfigError
from invkit.models.inn import PaddedINN
from invkit.training.inn_objective import INNObjective
from invkit.training.losses import mmd2
from invkit.training.objectives import build_objective, set_standardisation, total_loss

LOSS_NAMES = ("total", "l_y", "l_z", "l_x", "l_recon")
PAD_LOSS_NAMES = LOSS_NAMES + ("l_pad",)

pytestmark = pytest.mark.usefixtures("one_thread")

DIM_X, DIM_Y = 3, 1


def _simulator(x: torch.Tensor) -> torch.Tensor:
    """The test problem's forward process (see _batch): y = x_1^2."""
    return x[:, :1] ** 2


def _objective(simulator=_simulator, standardise: bool = False,
               **train) -> tuple[INNObjective, list]:
    """A small padded INN (x 3 -> width 6: y 1, z 2, pad 3) whose passes are recorded."""
    model = PaddedINN(DIM_X, DIM_Y, n_blocks=2, subnet_width=16, dim_total=6,
                      standardise=standardise)
    calls: list = []

    def record(module, args, kwargs, out):
        calls.append((kwargs.get("rev", False), args[0].detach(), out[0].detach()))

    model.register_forward_hook(record, with_kwargs=True)
    train.setdefault("y_noise", 0.1)  # the INN's (invkit's default, 0, is the cINN's)
    return INNObjective(model, TrainConfig(**train), simulator), calls


def _batch(n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, DIM_X, generator=torch.Generator().manual_seed(0))
    return x, x[:, :1] ** 2


def _run(objective: INNObjective) -> torch.Tensor:
    """[total, *terms] of one batch (statistics set first, as the trainer does)."""
    x, y = _batch()
    set_standardisation(objective.model, x, y)
    terms = objective(x, y, torch.Generator().manual_seed(1), 1.0)
    return torch.stack([total_loss(terms), *terms.values()])


def _names(objective: INNObjective) -> tuple[str, ...]:
    return ("total", *objective.term_names)


def test_authors_padding_noise_goes_to_both_sides():
    obj, calls = _objective(pad_noise=0.05)
    _run(obj)
    (fwd, x_in, _), (rev, yz_in, _) = calls
    assert not fwd and rev
    m = obj.model
    assert x_in[:, DIM_X:].std().item() == pytest.approx(0.05, rel=0.15)
    assert yz_in[:, m.dim_y + m.dim_z:].std().item() == pytest.approx(0.05, rel=0.15)


def test_pad_noise_on_x_leaves_the_yz_padding_zero_as_at_sampling():
    obj, calls = _objective(pad_noise=0.05, pad_noise_on="x")
    losses = _run(obj)
    (_, x_in, out), (_, yz_in, _) = calls
    m = obj.model
    assert x_in[:, DIM_X:].std().item() == pytest.approx(0.05, rel=0.15)
    assert torch.count_nonzero(yz_in[:, m.dim_y + m.dim_z:]) == 0
    # L_y's padding target is zero too: L_y is the plain MSE of [y, pad] against [y, 0]
    x, y = _batch()
    out_y, _, out_pad = m.split_output(out)
    y_noisy = y + 0.1 * torch.randn(y.shape, generator=_noise_after_x_pad())
    target = torch.cat([y_noisy, torch.zeros_like(out_pad)], 1)
    assert losses[1].item() == pytest.approx(
        3.0 * torch.mean((torch.cat([out_y, out_pad], 1) - target) ** 2).item(), rel=1e-5)


def _noise_after_x_pad() -> torch.Generator:
    """The objective's generator after it drew x's padding noise (400 x 3): y's noise comes next."""
    gen = torch.Generator().manual_seed(1)
    torch.randn(400, 3, generator=gen)
    return gen


def test_lambda_pad_is_the_mse_of_the_sampling_pass_padding():
    obj, calls = _objective(lambda_pad=7.0)
    assert _names(obj) == PAD_LOSS_NAMES
    losses = _run(obj)
    (_, _, _), (_, _, x_rev) = calls
    x_rand_pad = x_rev[:400, DIM_X:]  # the first half of the inverse batch has fresh z
    assert losses[5].item() == pytest.approx(7.0 * x_rand_pad.pow(2).mean().item(), rel=1e-5)
    assert losses[0].item() == pytest.approx(losses[1:].sum().item(), rel=1e-5)


def test_lambda_pad_without_padding_is_zero_not_nan():
    model = PaddedINN(DIM_X, DIM_Y, n_blocks=2, subnet_width=16)  # width 3
    assert model.pad_x == 0
    losses = _run(INNObjective(model, TrainConfig(lambda_pad=30.0)))
    assert losses[5].item() == 0.0 and torch.isfinite(losses).all()


def test_lambda_pad_off_keeps_the_four_losses():
    obj, _ = _objective()
    assert _names(obj) == LOSS_NAMES
    assert _run(obj).shape == (len(LOSS_NAMES),)


def _train(obj: INNObjective, steps: int = 60) -> None:
    opt = torch.optim.Adam(obj.model.parameters(), lr=3e-3)
    x, y = _batch()
    gen = torch.Generator().manual_seed(3)
    for _ in range(steps):
        loss = total_loss(obj(x, y, gen, 1.0))
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_lambda_pad_empties_the_padding_that_samples_drop():
    """A few steps with L_pad shrink the x-padding of g(y, z) far more than without it."""
    def pad_after_training(lambda_pad: float) -> float:
        torch.manual_seed(0)
        obj, calls = _objective(lambda_pad=lambda_pad, pad_noise=0.05, pad_noise_on="x")
        _train(obj)
        calls.clear()
        x, y = _batch()
        with torch.no_grad():
            obj(x, y, torch.Generator().manual_seed(3), 1.0)
        return calls[1][2][:400, DIM_X:].pow(2).mean().item()

    with_l_pad, without = pad_after_training(30.0), pad_after_training(0.0)
    assert with_l_pad < 0.3 * without, (with_l_pad, without)


def test_pad_noise_on_is_checked():
    cfg = RunConfig()
    set_key(cfg, "train.pad_noise_on", "x")
    assert cfg.train.pad_noise_on == "x"
    with pytest.raises(ConfigError, match="must be one of both, x"):
        set_key(cfg, "train.pad_noise_on", "yz")
    with pytest.raises(ConfigError, match="zero or positive"):
        set_key(cfg, "train.lambda_pad", "-1")


@pytest.mark.parametrize("standardise", [False, True])
def test_lambda_resim_is_the_mse_of_s_of_the_samples_against_their_y(standardise):
    """L_resim = lambda * MSE(s(g(y, z))[standardised], y fed to g), in the space of the losses."""
    seen: list = []

    def simulator(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach())
        return _simulator(x)

    obj, calls = _objective(simulator, standardise=standardise, lambda_resim=5.0, y_noise=0.0)
    assert _names(obj) == LOSS_NAMES + ("l_resim",)
    losses = _run(obj)
    m = obj.model
    (_, _, _), (_, yz_in, x_rev) = calls
    x_hat = x_rev[:400, :DIM_X]  # the samples: fresh z, x's padding dropped
    if standardise:
        x_hat = x_hat * m.x_scale + m.x_shift
    assert torch.allclose(seen[0], x_hat, atol=1e-6)  # s sees samples in the problem's units
    y_fed = yz_in[:400, :DIM_Y]
    expected = 5.0 * torch.mean((m.standardise_y(_simulator(x_hat)) - y_fed) ** 2)
    assert losses[5].item() == pytest.approx(expected.item(), rel=1e-5)
    assert losses[0].item() == pytest.approx(losses[1:].sum().item(), rel=1e-5)


def test_lambda_resim_and_lambda_pad_both_logged_in_order():
    obj, _ = _objective(lambda_pad=1.0, lambda_resim=1.0)
    assert _names(obj) == PAD_LOSS_NAMES + ("l_resim",)
    assert _run(obj).shape == (len(PAD_LOSS_NAMES) + 1,)


def test_lambda_resim_brings_samples_onto_their_target():
    """A few steps with L_resim shrink |s(g(y, z)) - y| far more than the same steps without."""
    def resim_after_training(lambda_resim: float) -> float:
        torch.manual_seed(0)
        obj, calls = _objective(lambda_resim=lambda_resim, y_noise=0.0)
        _train(obj, steps=300)
        calls.clear()
        x, y = _batch()
        with torch.no_grad():
            obj(x, y, torch.Generator().manual_seed(3), 1.0)
        x_hat = calls[1][2][:400, :DIM_X]
        return (_simulator(x_hat) - y).abs().mean().item()

    with_resim, without = resim_after_training(30.0), resim_after_training(0.0)
    assert with_resim < 0.5 * without, (with_resim, without)


def test_lambda_resim_needs_gradients_through_the_forward_process():
    def numpy_forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.detach().numpy()[:, :1] ** 2)

    obj, _ = _objective(numpy_forward, lambda_resim=1.0)
    with pytest.raises(ConfigError, match="gradients through the forward process"):
        _run(obj)


def test_lambda_resim_checks_the_forward_output_shape():
    obj, _ = _objective(lambda x: x[:, :2], lambda_resim=1.0)
    with pytest.raises(ConfigError, match=r"expected \(400, 1\)"):
        _run(obj)


def test_lambda_resim_refuses_a_noisy_problem():
    from invkit.problem import ForwardProcess, Prior, Problem

    cfg = RunConfig()
    set_key(cfg, "model.kind", "inn")
    set_key(cfg, "train.lambda_resim", "10")
    problem = Problem("noisy", Prior("p", DIM_X, lambda n, g: torch.randn(n, DIM_X, generator=g)),
                      ForwardProcess("s", DIM_X, DIM_Y, _simulator), noise_std=0.1)
    model = PaddedINN(DIM_X, DIM_Y, n_blocks=2, subnet_width=16)
    with pytest.raises(ConfigError, match="'noisy' has observation noise"):
        build_objective(cfg, model, problem)
    problem = Problem("exact", problem.prior, problem.forward)
    assert build_objective(cfg, model, problem).simulator is problem.forward


@pytest.mark.parametrize("scale", [0.0, 3.0])
def test_mmd_x_y_scale_compares_x_with_the_scaled_y_it_was_drawn_for(scale):
    """L_x = lambda * MMD((g(y, z), k y), (x, k y)) over the batch; k = 0: the authors' MMD of x."""
    obj, calls = _objective(mmd_x_y_scale=scale, lambda_x=7.0)
    losses = _run(obj)
    (_, _, _), (_, yz_in, x_rev) = calls
    x, _ = _batch()
    x_hat, y_fed = x_rev[:400, :DIM_X], yz_in[:400, :DIM_Y]
    if scale:
        x_hat, x = torch.cat([x_hat, scale * y_fed], 1), torch.cat([x, scale * y_fed], 1)
    expected = 7.0 * mmd2(x_hat, x, obj.cfg.mmd_widths_x)
    assert losses[3].item() == pytest.approx(expected.item(), rel=1e-4)
    assert _names(obj) == LOSS_NAMES  # a variant of L_x, not a loss of its own


def test_joint_l_x_sees_posteriors_mixed_up_between_observations():
    """Why the option exists: x's drawn for the wrong y have the right marginal, so the
    authors' L_x cannot see them, while the joint over (x, k y) can."""
    x, y = _batch()
    wrong = x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(2))]
    widths = TrainConfig().mmd_widths_x
    marginal = mmd2(wrong, x, widths).item()
    joint = mmd2(torch.cat([wrong, 3 * y], 1), torch.cat([x, 3 * y], 1), widths).item()
    assert abs(marginal) < 1e-4
    assert joint > 100 * max(abs(marginal), 1e-6)


def test_mmd_x_y_scale_is_checked():
    cfg = RunConfig()
    with pytest.raises(ConfigError, match="mmd_x_y_scale"):
        set_key(cfg, "train.mmd_x_y_scale", -1)


@pytest.mark.parametrize("kind", [dict(backend="numpy"), dict(rng="generator"),
                                  dict(vectorized=False)])
def test_lambda_resim_refuses_a_simulator_without_gradients(kind):
    import numpy as np

    from invkit.problem import ForwardProcess, Prior, Problem
    from invkit.training.objectives import build_objective

    def fn(x, *rng):
        return x[..., :1] ** 2 if not isinstance(x, np.ndarray) else x[..., :1] ** 2

    cfg = RunConfig()
    set_key(cfg, "model.kind", "inn")
    set_key(cfg, "train.lambda_resim", "10")
    prior = Prior("p", DIM_X, lambda n, g: torch.randn(n, DIM_X, generator=g))
    problem = Problem("numpyish", prior, ForwardProcess("s", DIM_X, DIM_Y, fn, **kind))
    model = PaddedINN(DIM_X, DIM_Y, n_blocks=2, subnet_width=16)
    with pytest.raises(ConfigError, match="needs gradients through the forward process, and "
                                          "'s' of problem 'numpyish' has none to give"):
        build_objective(cfg, model, problem)
