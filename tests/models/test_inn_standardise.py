"""model.standardise: the INN on standardised x and y, samples and predictions in original units."""

from __future__ import annotations

import pytest
import torch

from invkit.cli.main import main
from invkit.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from invkit.loading import load_run
from invkit.models.inn import PaddedINN
from invkit.models.kinds import build_model
from invkit.models.network import standard_normal_log_prob
from invkit.problem import ForwardProcess, Prior, Problem
from invkit.training.inn_objective import INNObjective
from invkit.training.objectives import total_loss
from invkit.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

SHIFT = torch.tensor([100.0, -40.0])
SCALE = torch.tensor([10.0, 0.1])


def _random_init(model: PaddedINN, gen: torch.Generator) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _standardised_model(dim_total: int = 0, seed: int = 0) -> PaddedINN:
    cfg = ModelConfig(kind="inn", n_blocks=3, subnet_width=16, standardise=True,
                      dim_total=dim_total)
    model = build_model(cfg, 3, 1, seed=seed).double()
    _random_init(model, torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 3, generator=g, dtype=torch.float64) * torch.tensor([5.0, 0.2, 1.0]) + 7
    y = x[:, :1] * 3 - 20
    model.init_standardisation(x, y)
    return model


def test_samples_invert_to_their_observation_in_original_units():
    model = _standardised_model()  # dim_total = dim_x = dim_y + dim_z: no padding
    assert model.pad_x == 0 and model.pad_yz == 0
    y = torch.tensor([[-5.0], [10.0], [0.0]], dtype=torch.float64).repeat(20, 1)
    x, _ = model.sample_posterior(y, torch.Generator().manual_seed(2))
    torch.testing.assert_close(model.predict(x), y, rtol=0, atol=1e-9)


def test_log_q_is_the_exact_change_of_variables_into_original_units():
    model = _standardised_model(dim_total=5)
    y = torch.tensor([[3.0], [-8.0]], dtype=torch.float64)
    with torch.no_grad():
        x, log_q = model.sample_posterior(y, torch.Generator().manual_seed(4))
    z = torch.randn(2, model.dim_z, generator=torch.Generator().manual_seed(4),
                    dtype=torch.float64)

    def g(v):  # [y_std, z, pad] -> [x in original units, x padding]: what log q is about
        out = model.inverse(v[None])[0][0]
        return torch.cat([out[:model.dim_x] * model.x_scale + model.x_shift, out[model.dim_x:]])

    for i in range(2):
        v = model.join_output(model.standardise_y(y[i:i + 1]), z[i:i + 1],
                              y.new_zeros(1, model.pad_yz))[0]
        torch.testing.assert_close(g(v)[:model.dim_x], x[i], rtol=0, atol=1e-10)
        logdet = torch.slogdet(torch.autograd.functional.jacobian(g, v))[1]
        expected = standard_normal_log_prob(z[i:i + 1])[0] - logdet
        assert float(log_q[i]) == pytest.approx(float(expected), abs=1e-8)


def test_statistics_are_buffers_and_off_adds_none():
    on = PaddedINN(3, 1, n_blocks=2, standardise=True)
    off = PaddedINN(3, 1, n_blocks=2)
    extra = set(on.state_dict()) - set(off.state_dict())
    assert extra == {"x_shift", "x_scale", "y_shift", "y_scale", "standardised"}
    assert not any(k in off.state_dict() for k in extra)


def test_identity_statistics_reproduce_the_unstandardised_model_bitwise():
    # off computes exactly what the model did without the option; on with shift 0, scale 1
    # runs the same network (same seed) on the same numbers, so every output matches bitwise
    cfgs = [ModelConfig(kind="inn", n_blocks=3, subnet_width=16, dim_total=6, standardise=s)
            for s in (False, True)]
    models = [build_model(c, 3, 2, seed=3) for c in cfgs]
    for m in models:
        _random_init(m, torch.Generator().manual_seed(5))
    models[1].standardised.fill_(True)  # identity statistics count as set
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(6))
    y = torch.randn(64, 2, generator=torch.Generator().manual_seed(7))
    outs = []
    for m in models:
        xs, lq = m.sample_posterior(y, torch.Generator().manual_seed(8))
        obj = INNObjective(m, TrainConfig(y_noise=0.1, pad_noise=0.05))
        losses = total_loss(obj(x, y, torch.Generator().manual_seed(9), 0.5))
        outs.append((xs, lq, m.predict(x), losses.detach()))
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def _offset_problem() -> Problem:
    prior = Prior("offset_prior", 2, lambda n, g: torch.randn(n, 2, generator=g) * SCALE + SHIFT)
    fwd = ForwardProcess("offset_sum", 2, 1,
                         lambda x: ((x - SHIFT) / SCALE).sum(1, keepdim=True) * 50.0 + 1000.0)
    return Problem("offset", prior, fwd)


def _offset_cfg(steps: int) -> RunConfig:
    cfg = RunConfig(problem="offset")
    cfg.model = ModelConfig(kind="inn", n_blocks=3, subnet_width=32, dim_total=4,
                            standardise=True)
    cfg.data = DataConfig(simulations=4000, n_test=10)
    cfg.train = TrainConfig(batch_size=200, steps=steps,
                            y_noise=0.02, pad_noise=0.0, lambda_y=30.0, log_every=50,
                            checkpoint_every=0)
    return cfg


def test_large_offset_and_scale_train_and_sample_in_original_units():
    trainer = Trainer(_offset_problem(), _offset_cfg(300), torch.device("cpu"), progress=False)
    model = trainer.fit().model
    # statistics from the first batch: close to the prior's mean and std
    torch.testing.assert_close(model.x_shift, SHIFT, rtol=0, atol=0.3 * SCALE.max().item())
    torch.testing.assert_close(model.x_scale / SCALE, torch.ones(2), rtol=0, atol=0.2)
    with torch.no_grad():
        y = torch.full((2000, 1), 1000.0)  # the prior mean's observation: x on a line
        x, log_q = model.sample_posterior(y, torch.Generator().manual_seed(0))
        u = (x - SHIFT) / SCALE
        assert torch.isfinite(log_q).all()
        assert (u.mean(0).abs() < 0.5).all()  # centred like the posterior, in original units
        assert (u.std(0) > 0.3).all() and (u.std(0) < 1.5).all()  # posterior std: 1/sqrt(2)
        assert u.sum(1).abs().mean() < 0.5  # and close to the line x1 + x2 = 0 (standardised)
        pred = model.predict(x)
        assert (pred - 1000.0).abs().mean() < 25.0  # f_y in the original units of y


def test_trainer_state_round_trip_keeps_the_statistics():
    problem, device = _offset_problem(), torch.device("cpu")
    a = Trainer(problem, _offset_cfg(4), device, progress=False)
    a.fit()
    state = a.state_dict()
    b = Trainer(problem, _offset_cfg(8), device, progress=False)
    b.load_state_dict(state)
    for k in ("x_shift", "x_scale", "y_shift", "y_scale"):
        assert torch.equal(getattr(a.model, k), getattr(b.model, k))
    saved = b.model.x_shift.clone()
    b.fit()  # continues on other batches: the loaded statistics stay
    assert torch.equal(b.model.x_shift, saved)


def test_run_directory_round_trip(tmp_path):
    out = tmp_path / "run"
    args = ["run", "kinematics", "--preset", "quick", "--quiet", "--no-eval",
            "--set", "data.simulations=500", "--set", "data.n_test=32",
            "--set", "train.batch_size=32", "--set", "model.subnet_width=8",
            "--set", "model.n_blocks=2", "--set", "train.steps=6",
            "--set", "model.standardise=true", "--out", str(out)]
    assert main(args) == 0
    posterior, cfg, ckpt = load_run(out)
    assert cfg.model.standardise
    weights = ckpt["state"]["model"]
    assert bool(weights["standardised"])
    assert (weights["x_scale"] - 1).abs().max() > 0.1  # real statistics, not the identity
    for k in ("x_shift", "x_scale", "y_shift", "y_scale"):
        assert torch.equal(getattr(posterior.model, k), weights[k])
    y = [1.5, 0.0]
    assert torch.equal(posterior.sample(y, 50, seed=1), posterior.sample(y, 50, seed=1))
