"""Maximum-likelihood objective of the conditional INN, as a module (so DDP sees it whole)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from invkit.config import TrainConfig
from invkit.errors import ConfigError
from invkit.models.cinn import ConditionalINN
from invkit.training.batch import WHOLE, BatchPart


class MaxLikelihoodObjective(nn.Module):
    """Negative log-likelihood of x given y under the cINN, per dimension, for one batch.

    -log q(x | y) / D = (||z||^2 / 2 - log|det df/dx|) / D up to the constant log(2 pi) / 2,
    with z = f(x; y) and D the flow's width, as two terms: ``z_sq`` (the mean of
    ||z||^2 / 2D) and ``neg_log_det`` (minus the mean log-determinant over D).

    Training noise: the condition is y + ``train.y_noise`` * N(0, I), so the cINN learns the
    posterior of slightly noisy observations (a smoothing that helps with noiseless
    simulators; set ``train.y_noise=0`` for the exact p(x | y)). With the model's
    ``noise_level_input`` each pair's noise is ``train.y_noise`` * u * N(0, I), u ~ U(0, 1),
    and u is part of the condition. 1-D x gets its auxiliary
    coordinate e ~ N(0, 1) here. ``train.pad_noise``, the loss weights and ``x_weight`` (the
    INN's inverse-loss ramp) do not apply.
    """

    term_names = ("z_sq", "neg_log_det")

    def __init__(self, model: ConditionalINN, cfg: TrainConfig) -> None:
        super().__init__()
        if model.noise_level_input and not cfg.y_noise > 0:
            raise ConfigError("model.noise_level_input=true draws each pair's noise level as a "
                              "fraction of train.y_noise, which is 0: set train.y_noise > 0 "
                              "(the largest smoothing, in the units of y) "
                              "or model.noise_level_input=false.")
        self.model = model
        self.cfg = cfg

    def forward(self, x: Tensor, y: Tensor, gen: torch.Generator, x_weight: float = 1.0,
                part: BatchPart = WHOLE) -> dict[str, Tensor]:
        m = self.model
        b = x.shape[0]  # the global batch: noise is drawn for all of it, then sliced
        level = None
        if self.cfg.y_noise > 0:
            noise = torch.randn(y.shape, generator=gen, device=y.device, dtype=y.dtype)
            if m.noise_level_input:
                level = torch.rand(b, 1, generator=gen, device=y.device, dtype=y.dtype)
                noise = noise * level
                level = part.rows(level)
            y = y + self.cfg.y_noise * noise
        aux = None
        if m.n_aux:
            aux = part.rows(torch.randn(b, m.n_aux, generator=gen, device=x.device,
                                        dtype=x.dtype))
        z_sq, log_jac = m.nll_terms(part.rows(x), part.rows(y), aux, level)
        d = float(m.dim_in)
        return {"z_sq": z_sq.mean() / d, "neg_log_det": -(log_jac.mean() / d)}
