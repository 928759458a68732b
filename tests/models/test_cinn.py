"""The conditional INN: exact inverse and log-det, normalised densities, the Posterior's
``log_prob``, config aliases, a short training run against a closed-form posterior, and the
CLI end to end (``invkit run gmm --preset quick --set model=cinn``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from invkit import ForwardProcess, Prior, Problem
from invkit.config import RunConfig, build_config, resolve_key, set_key
from invkit.errors import InvkitError
from invkit.models.cinn import ConditionalINN
from invkit.models.inn import PaddedINN
from invkit.posterior import Posterior

pytestmark = pytest.mark.usefixtures("one_thread")


def _random_init(model: torch.nn.Module, gen: torch.Generator, scale: float = 0.3) -> None:
    # subnets start as the identity (zero last layer): give them weights so tests mean something
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _model(dim_x=3, dim_y=2, seed=1, scale=0.3, **cfg) -> ConditionalINN:
    cfg = {"n_blocks": 4, "subnet_width": 32, **cfg}
    m = ConditionalINN(dim_x, dim_y, **cfg, seed=seed).double()
    g = torch.Generator().manual_seed(0)
    _random_init(m, g, scale)
    # a non-trivial standardisation, so its log-det is tested as well
    m.init_standardisation(torch.randn(200, dim_x, generator=g, dtype=torch.float64) * 2 + 1,
                           torch.randn(200, dim_y, generator=g, dtype=torch.float64) - 3)
    return m


@pytest.mark.parametrize("block", ["glow", "rnvp", "allinone", "spline"])
@pytest.mark.parametrize("cond_features", [0, 8])
def test_inverse_is_exact_in_float64(block, cond_features):
    m = _model(block=block, cond_features=cond_features, scale=0.2)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 3, generator=g, dtype=torch.float64)
    y = torch.randn(64, 2, generator=g, dtype=torch.float64)
    z, ld_f = m.encode(x, y)
    back, ld_r = m.decode(z, y)
    assert (z - x).abs().max() > 1e-2  # a real transformation
    # random spline weights make some bins nearly flat, and inverting a nearly flat map
    # magnifies rounding (the map itself is exact): a looser bound for them
    atol = 1e-6 if block == "spline" else 1e-10
    torch.testing.assert_close(back, x, rtol=0, atol=atol)
    torch.testing.assert_close(ld_f, -ld_r, rtol=0, atol=10 * atol)


@pytest.mark.parametrize("cond_features", [0, 8])
def test_log_det_matches_autograd(cond_features):
    m = _model(cond_features=cond_features)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.randn(5, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        _, ld = m.encode(x, y)
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda v, i=i: m.encode(v[None], y[i:i + 1])[0][0],
                                                 x[i])
        assert float(ld[i]) == pytest.approx(float(torch.slogdet(jac)[1]), abs=1e-8)


def test_density_of_samples_equals_log_prob():
    m = _model()
    y = torch.randn(50, 2, dtype=torch.float64)
    x, log_q = m.sample_posterior(y, torch.Generator().manual_seed(0))
    assert x.shape == (50, 3)
    torch.testing.assert_close(log_q, m.log_prob(x, y), rtol=0, atol=1e-9)


def test_density_is_normalised():
    # a mildly non-linear 2-D flow with standardisation: exp(log q) integrates to 1 on a grid
    m = _model(dim_x=2, scale=0.1)
    y = torch.tensor([[0.3, -2.0]], dtype=torch.float64)
    xs, _ = m.sample_posterior(y.expand(4000, 2), torch.Generator().manual_seed(0))
    lo, hi = xs.detach().min(0).values - 3, xs.detach().max(0).values + 3
    n = 300
    a = torch.linspace(float(lo[0]), float(hi[0]), n, dtype=torch.float64)
    b = torch.linspace(float(lo[1]), float(hi[1]), n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        q = m.log_prob(grid, y.expand(grid.shape[0], 2)).exp()
    mass = float(q.sum() * (a[1] - a[0]) * (b[1] - b[0]))
    assert mass == pytest.approx(1.0, abs=0.01)


def test_one_dimensional_x_is_padded():
    m = ConditionalINN(1, 2, n_blocks=2, subnet_width=16, seed=0)
    assert m.dim_in == 2 and m.n_aux == 1
    y = torch.randn(10, 2)
    x, log_q = m.sample_posterior(y, torch.Generator().manual_seed(0))
    assert x.shape == (10, 1)
    # untrained: the identity (up to permutation), so q(x | y) = N(x; 0, 1) exactly
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x[:, 0])
    torch.testing.assert_close(log_q, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(m.log_prob(x, y), expected, rtol=0, atol=1e-5)


def test_seeded_and_leaves_global_rngs_alone():
    np.random.seed(123)
    expected_np = np.random.rand()
    torch.manual_seed(0)
    expected_torch = torch.rand(1)
    np.random.seed(123)
    torch.manual_seed(0)
    a = ConditionalINN(4, 2, n_blocks=4, cond_features=4, seed=5)
    assert np.random.rand() == expected_np  # FrEIA's PermuteRandom reseeding did not leak
    assert torch.equal(torch.rand(1), expected_torch)
    b = ConditionalINN(4, 2, n_blocks=4, cond_features=4, seed=5)
    c = ConditionalINN(4, 2, n_blocks=4, cond_features=4, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if "perm" in k)


def test_config_aliases_select_the_cinn():
    assert resolve_key("model") == "model.kind"
    assert resolve_key("kind") == "model.kind"
    cfg = RunConfig()
    assert set_key(cfg, "model", "cinn") == "model.kind" and cfg.model.kind == "cinn"
    cfg = build_config("gmm", {"labels": "all"}, {}, "quick", None,
                       [("model", "cinn"), ("cond_features", "16")])
    assert cfg.model.kind == "cinn" and cfg.model.cond_features == 16
    # a problem option of that name wins over the alias
    assert resolve_key("model", {"model": "a"}) == "problem.model"
    with pytest.raises(InvkitError, match="one of inn, cinn"):
        set_key(RunConfig(), "model", "cnn")


# -- a linear-Gaussian problem with a closed-form posterior ----------------------------------
A = torch.tensor([[1.0, 0.5], [-0.5, 1.0]])
NOISE = 0.5


def _lin_forward(x: torch.Tensor) -> torch.Tensor:
    return x @ A.T.to(x)


def linear_gaussian() -> Problem:
    """x ~ N(0, I), y = A x + N(0, 0.5^2 I): p(x | y) = N(P A^T y / s^2, P),
    P = (I + A^T A / s^2)^-1."""
    prior = Prior("lg_prior", 2, lambda n, g: torch.randn(n, 2, generator=g, device=g.device),
                  log_prob_fn=lambda x: torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1))
    return Problem(name="lingauss", prior=prior,
                   forward=ForwardProcess("lg_forward", 2, 2, _lin_forward),
                   noise_std=NOISE)


def exact_posterior(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(means (m, 2), covariance (2, 2)) of p(x | y)."""
    cov = torch.linalg.inv(torch.eye(2) + A.T @ A / NOISE**2)
    return y @ (cov @ A.T / NOISE**2).T, cov


@pytest.fixture(scope="module")
def trained_lg():
    from invkit.training.trainer import Trainer

    problem = linear_gaussian()
    cfg = RunConfig(problem="lingauss")
    for k, v in {"model.kind": "cinn", "model.n_blocks": 4, "model.subnet_width": 64,
                 "train.steps": 500, "train.batch_size": 500, "data.simulations": 20_000,
                 "data.n_test": 0, "train.lr": 2e-3, "train.y_noise": 0.0,
                 "train.log_every": 100}.items():
        set_key(cfg, k, v)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module scope: set up before the per-test fixture runs
    try:
        trainer = Trainer(problem, cfg, torch.device("cpu"), progress=False)
        result = trainer.fit()
    finally:
        torch.set_num_threads(before)
    assert [h["step"] for h in result.history][-1] == 500
    assert set(result.history[-1]) >= {"total", "z_sq", "neg_log_det"}
    return problem, cfg, trainer.model


def test_trained_log_prob_matches_closed_form(trained_lg):
    problem, _, model = trained_lg
    g = torch.Generator().manual_seed(5)
    ys = problem.sample_joint(5, g)[1]
    means, cov = exact_posterior(ys)
    chol = torch.linalg.cholesky(cov)
    u = torch.stack(torch.meshgrid(torch.linspace(-2.5, 2.5, 11), torch.linspace(-2.5, 2.5, 11),
                                   indexing="ij"), -1).reshape(-1, 2)
    exact, learnt = [], []
    with torch.no_grad():
        for mu, y in zip(means, ys):
            x = mu + u @ chol.T  # a grid within 2.5 posterior std of the mean
            exact.append(torch.distributions.MultivariateNormal(mu, cov).log_prob(x))
            learnt.append(model.log_prob(x, y.expand(x.shape[0], 2)))
    e, q = torch.cat(exact), torch.cat(learnt)
    corr = float(torch.corrcoef(torch.stack([e, q]))[0, 1])
    mae = float((e - q).abs().mean())
    assert corr > 0.97, corr
    assert mae < 0.35, mae


def test_posterior_log_prob_shapes_and_consistency(trained_lg):
    problem, cfg, model = trained_lg
    post = Posterior(model, problem, cfg, torch.device("cpu"))
    assert post.has_density and not post.learns_forward
    y = torch.tensor([[0.5, -0.2], [1.0, 1.0], [-1.0, 0.3]])
    x, lp = post.sample_and_log_prob(y, 7, seed=0)
    assert x.shape == (3, 7, 2) and lp.shape == (3, 7)
    torch.testing.assert_close(post.log_prob(x, y), lp, rtol=0, atol=1e-4)  # (m, n)
    torch.testing.assert_close(post.log_prob(x[:, 0], y), lp[:, 0], rtol=0, atol=1e-4)  # (m,)
    torch.testing.assert_close(post.log_prob(x[1], y[1]), lp[1], rtol=0, atol=1e-4)  # (n,)
    assert post.log_prob(x[1, 0].numpy(), y[1].tolist()).shape == ()
    with pytest.raises(InvkitError, match="must be"):
        post.log_prob(torch.zeros(4, 2), y)  # 4 rows for 3 observations
    with pytest.raises(InvkitError, match="forward process"):
        post.predict(torch.zeros(1, 2))


def test_inn_posterior_log_prob_is_a_clear_error():
    problem = linear_gaussian()
    post = Posterior(PaddedINN(2, 2, n_blocks=2), problem, RunConfig(),
                     torch.device("cpu"))
    assert not post.has_density
    with pytest.raises(InvkitError, match="sample_and_log_prob") as info:
        post.log_prob(torch.zeros(3, 2), torch.zeros(2))
    assert "model=cinn" in str(info.value)


@pytest.fixture
def _denormals_restored():
    # `invkit run` flushes denormals on CPU (process-wide); hypothesis-based tests later in
    # the session refuse to run with flush-to-zero on, so put the default back
    yield
    torch.set_flush_denormal(False)


def test_cli_run_gmm_quick_cinn_end_to_end(tmp_path, _denormals_restored):
    from invkit.cli.main import main

    out = tmp_path / "gmm-cinn"
    code = main(["run", "gmm", "--preset", "quick", "--set", "model=cinn", "--out", str(out),
                 "--quiet", "--set", "train.steps=150", "--set", "data.simulations=5000",
                 "--set", "calibration_targets=100"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "forward_accuracy" not in metrics  # a cINN learns no forward process
    for key in ("err_post", "err_resim", "mode_tv_mean", "calibration_max_coverage_deviation",
                "calibration_rank_pvalue_min", "calibration_bins_outside_band"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert metrics["calibration_hpd_score"] == "log_prob"
    assert metrics["calibration_targets"] == 100
    assert set(metrics["final_losses"]) >= {"total", "z_sq", "neg_log_det"}
    for name in ("losses.png", "gmm_forward_inverse.png", "calibration_ranks.png",
                 "calibration_coverage.png"):
        assert (out / "plots" / name).exists(), name
    assert 'kind = "cinn"' in (out / "config.toml").read_text()

    import invkit

    post = invkit.load(out)
    lp = post.log_prob(torch.tensor([[2.4142, 1.0], [0.0, 0.0]]), torch.eye(8)[0])
    assert lp.shape == (2,) and lp[0] > lp[1]  # a mode of the mixture vs the empty centre
    assert main(["sample", str(out), "--y", "1,0,0,0,0,0,0,0", "-n", "20"]) == 0
    assert main(["evaluate", str(out), "--quiet", "--set", "eval.calibration_targets=50",
                 "--set", "eval.plots=false"]) == 0
    assert json.loads((out / "metrics.json").read_text())["calibration_targets"] == 50


# -- data-parallel training: 2 gloo ranks compute what one process computes ------------------
TINY_DDP = {"model.kind": "cinn", "data.simulations": 4096, "data.n_test": 16,
            "train.batch_size": 128, "train.steps": 8, "train.log_every": 2,
            "model.n_blocks": 2, "model.subnet_width": 32}


def _train_tiny() -> tuple[list[dict], dict]:
    from invkit import api
    from invkit.training.trainer import Trainer

    cfg, prob = api.resolve("gmm", "quick", dict(TINY_DDP), device="cpu")
    trainer = Trainer(prob, cfg, torch.device("cpu"), progress=False)
    result = trainer.fit()
    return result.history, {k: v.clone() for k, v in trainer.model.state_dict().items()}


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import os

    from invkit import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.init_from_env(torch.device("cpu"))
    try:
        history, state = _train_tiny()
        torch.save({"history": history, "state": state}, f"{out}/rank{rank}.pt")
    finally:
        distributed.shutdown()


def test_two_ranks_match_one_process(tmp_path):
    import socket

    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    one_history, one_state = _train_tiny()
    for got in ranks:
        assert [h["step"] for h in got["history"]] == [h["step"] for h in one_history]
        for mine, ref in zip(got["history"], one_history):
            for name in ("total", "z_sq", "neg_log_det"):
                assert mine[name] == pytest.approx(ref[name], rel=1e-5, abs=1e-6), name
        for key, value in one_state.items():  # incl. the standardisation from the 1st batch
            torch.testing.assert_close(got["state"][key], value, rtol=1e-5, atol=1e-5)


# -- the noise level as a condition (model.noise_level_input) ---------------------------------
def test_noise_level_conditions_the_flow_and_stays_invertible():
    m = _model(noise_level_input=True, noise_level_sampled=0.25, cond_features=8)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(32, 3, generator=g, dtype=torch.float64)
    y = torch.randn(32, 2, generator=g, dtype=torch.float64)
    level = torch.rand(32, 1, generator=g, dtype=torch.float64)
    z, ld = m.encode(x, y, level=level)
    u, ld_r = m.decode(z, y, level=level)
    torch.testing.assert_close(u, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(ld, -ld_r, rtol=0, atol=1e-9)
    # the level is an input: another level, another map
    z_other, _ = m.encode(x, y, level=1 - level)
    assert (z_other - z).abs().max() > 1e-3
    # without a level the model uses noise_level_sampled, for encoding and for sampling
    z_default, _ = m.encode(x, y)
    z_fixed, _ = m.encode(x, y, level=torch.full((32, 1), 0.25, dtype=torch.float64))
    torch.testing.assert_close(z_default, z_fixed, rtol=0, atol=0)
    xs, log_q = m.sample_posterior(y, torch.Generator().manual_seed(0))
    torch.testing.assert_close(log_q, m.log_prob(xs, y), rtol=0, atol=1e-9)


def test_noise_level_sampled_is_checked():
    with pytest.raises(InvkitError, match="noise_level_sampled"):
        ConditionalINN(2, 2, noise_level_input=True, noise_level_sampled=1.5)
    cfg = RunConfig()
    with pytest.raises(InvkitError, match="between 0 and 1"):
        set_key(cfg, "model.noise_level_sampled", "2")


def test_noise_level_learns_the_family_of_smoothed_posteriors():
    """Trained with y + 1.0 * u * N(0, I), the level-conditioned cINN gives at u = 0 the
    posterior of the observation's own noise (0.5) and at u = 1 that of noise sqrt(0.5^2 + 1):
    one network, both closed forms; a model trained at the fixed noise is wrong at u = 0."""
    from invkit.training.trainer import Trainer

    problem = linear_gaussian()
    cfg = RunConfig(problem="lingauss")
    for k, v in {"model.kind": "cinn", "model.n_blocks": 4, "model.subnet_width": 64,
                 "model.noise_level_input": True, "train.y_noise": 1.0,
                 "train.steps": 800, "train.batch_size": 500, "data.simulations": 20_000,
                 "data.n_test": 0, "data.validation": 0.0, "train.lr": 2e-3,
                 "train.log_every": 200}.items():
        set_key(cfg, k, v)
    model = Trainer(problem, cfg, torch.device("cpu"), progress=False)
    model.fit()
    net = model.model.eval()
    y = torch.tensor([[1.5, -1.0], [-0.5, 2.0]])

    def sampled(level: float) -> tuple[torch.Tensor, torch.Tensor]:
        net.noise_level_sampled = level
        with torch.no_grad():
            x, _ = net.sample_posterior(y.repeat_interleave(20_000, 0),
                                        torch.Generator().manual_seed(1))
        x = x.reshape(2, 20_000, 2)
        return x.mean(1), x.std(1)

    def closed_form(noise: float) -> tuple[torch.Tensor, torch.Tensor]:
        cov = torch.linalg.inv(torch.eye(2) + A.T @ A / noise**2)
        return y @ (cov @ A.T / noise**2).T, cov.diagonal().sqrt().expand(2, 2)

    sharp, smoothed = closed_form(NOISE), closed_form(math.sqrt(NOISE**2 + 1.0))
    for level, (exact_mean, exact_std) in ((0.0, sharp), (1.0, smoothed)):
        mean, std = sampled(level)
        torch.testing.assert_close(mean, exact_mean, rtol=0, atol=0.08)
        torch.testing.assert_close(std, exact_std, rtol=0.1, atol=0)
    # the two closed forms differ by far more than the tolerance: the level is what tells them
    assert (smoothed[0] - sharp[0]).abs().max() > 0.3
