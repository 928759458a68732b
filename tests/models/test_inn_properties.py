"""Property-based tests of the padded INN over random architectures and dimensions (float64).

For any block type, depth, width, clamp and any (dim_x, dim_y, dim_z, padding), with random
weights: the inverse undoes the forward pass (both ways round), the two log-determinants are
opposite, the log-determinant equals log|det| of the autograd Jacobian, and the seed alone
fixes the network, without reading or changing the global RNGs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invkit.config import ModelConfig
from invkit.models.inn import PaddedINN
from invkit.models.kinds import build_model
from invkit.models.network import standard_normal_log_prob

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


pytestmark = pytest.mark.usefixtures("one_thread")


@st.composite
def architectures(draw):
    dim_x = draw(st.integers(1, 6))
    dim_y = draw(st.integers(1, 6))
    dim_z = draw(st.integers(0, 4))  # 0: the automatic rule
    auto_total = draw(st.booleans())
    cfg = ModelConfig(
        kind="inn",
        block=draw(st.sampled_from(["glow", "rnvp", "allinone"])),
        n_blocks=draw(st.integers(1, 4)),
        subnet_width=draw(st.integers(2, 24)),
        subnet_depth=draw(st.integers(1, 2)),
        clamp=draw(st.floats(0.5, 3.0)),
        dim_z=dim_z,
    )
    if not auto_total:
        z = dim_z or (max(1, dim_x - dim_y) if dim_y < dim_x else dim_x)
        cfg.dim_total = max(dim_x, dim_y + z, 2) + draw(st.integers(0, 3))
    return dim_x, dim_y, cfg


def _model(dim_x: int, dim_y: int, cfg: ModelConfig, seed: int, scale: float) -> PaddedINN:
    model = build_model(cfg, dim_x, dim_y, seed=seed % 1000).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # subnets start as the identity: give them real weights
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model.eval()


@SETTINGS
@given(arch=architectures(), seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 6),
       scale=st.floats(0.05, 0.3))
def test_inverse_undoes_forward_and_log_dets_agree(arch, seed, batch, scale):
    dim_x, dim_y, cfg = arch
    model = _model(dim_x, dim_y, cfg, seed, scale)
    d = model.dim_total
    assert d >= max(dim_x, dim_y + model.dim_z)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, d, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        out, log_fwd = model(x)
        back, log_rev = model.inverse(out)
        torch.testing.assert_close(back, x, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(log_fwd, -log_rev, rtol=1e-9, atol=1e-9)
        # the other way round: from [y | z | pad] to x and back
        v = torch.randn(batch, d, generator=gen, dtype=torch.float64)
        x_of_v, _ = model.inverse(v)
        torch.testing.assert_close(model(x_of_v)[0], v, rtol=1e-9, atol=1e-9)
    assert torch.isfinite(out).all() and log_fwd.shape == (batch,)

    # log|det J| of the forward pass equals the autograd Jacobian's, for one point
    jac = torch.autograd.functional.jacobian(lambda u: model(u[None])[0][0], x[0])
    sign, logabs = torch.linalg.slogdet(jac)
    assert float(sign) != 0.0
    assert float(log_fwd[0]) == pytest.approx(float(logabs), abs=1e-7, rel=1e-9)


@SETTINGS
@given(arch=architectures(), seed=st.integers(0, 2**31 - 1), m=st.integers(1, 5))
def test_posterior_samples_have_the_right_shape_and_density(arch, seed, m):
    dim_x, dim_y, cfg = arch
    model = _model(dim_x, dim_y, cfg, seed, 0.2)
    y = torch.randn(m, dim_y, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        x, log_q = model.sample_posterior(y, torch.Generator().manual_seed(seed))
        assert x.shape == (m, dim_x) and log_q.shape == (m,)
        assert torch.isfinite(x).all() and torch.isfinite(log_q).all()
        # the density is log p(z) - log|det| of the inverse pass at the same [y, z, 0]
        z = torch.randn(m, model.dim_z, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(seed))
        yz = model.join_output(y, z, y.new_zeros(m, model.pad_yz))
        x_pad, log_rev = model.inverse(yz)
        torch.testing.assert_close(x, x_pad[:, :dim_x])
        torch.testing.assert_close(log_q, standard_normal_log_prob(z) - log_rev)
        # and x_pad is mapped exactly back onto that observation
        torch.testing.assert_close(model.split_output(model(x_pad)[0])[0], y,
                                   rtol=1e-9, atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(arch=architectures(), seed=st.integers(0, 2**32 - 1),
       global_seed=st.integers(0, 2**32 - 1))
def test_the_seed_alone_fixes_the_network(arch, seed, global_seed):
    dim_x, dim_y, cfg = arch
    np.random.seed(global_seed)
    torch.manual_seed(global_seed)
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    a = build_model(cfg, dim_x, dim_y, seed=seed).state_dict()
    # neither global RNG was read-and-advanced or reseeded
    assert all(np.array_equal(u, v) for u, v in zip(np.random.get_state(), np_state))
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.random.seed((global_seed + 1) % 2**32)
    torch.manual_seed(global_seed + 1)
    b = build_model(cfg, dim_x, dim_y, seed=seed).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
