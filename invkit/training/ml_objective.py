"""Maximum-likelihood objective of the conditional INN, as a module (so DDP sees it whole)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from invkit.config import TrainConfig
from invkit.models.cinn import ConditionalINN


class MaxLikelihoodObjective(nn.Module):
    """Negative log-likelihood of x given y under the cINN, per dimension, for one batch.

    loss = mean over the batch of (||z||^2 / 2 - log|det df/dx|) / D, with z = f(x; y) and D the
    flow's width: -log q(x | y) / D up to the constant log(2 pi) / 2. ``forward`` returns
    ``[total, z_sq, log_det]`` (the last two detached, per dimension, for logging);
    ``loss_names`` names them for the trainer.

    Training noise: the condition is y + ``train.y_noise`` * N(0, I), so the cINN learns the
    posterior of slightly noisy observations (a smoothing that helps with noiseless
    simulators; set ``train.y_noise=0`` for the exact p(x | y)). 1-D x gets its auxiliary
    coordinate e ~ N(0, 1) here. ``train.pad_noise``, the loss weights and ``x_weight`` (the
    INN's inverse-loss ramp) do not apply.

    The model's fixed standardisation of x and y is set from the first batch it sees, unless
    the model already has one (a resumed or loaded model).
    """

    loss_names = ("total", "z_sq", "log_det")

    def __init__(self, model: ConditionalINN, cfg: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self._checked = False  # python flag, so the check costs nothing after the first batch
        # set by invkit.distributed.wrap_objective: then the *global* batch comes in, the
        # standardisation and the noise are drawn from it on every rank alike, and each rank
        # keeps its own rows, so N processes compute what one process computes
        self.shard = None

    def forward(self, x: Tensor, y: Tensor, gen: torch.Generator, x_weight: float = 1.0
                ) -> Tensor:
        m = self.model
        if not self._checked:
            if not bool(m.standardised):
                m.init_standardisation(x, y)
            self._checked = True
        b = x.shape[0]
        if self.cfg.y_noise > 0:
            noise = torch.randn(y.shape, generator=gen, device=y.device, dtype=y.dtype)
            y = y + self.cfg.y_noise * noise
        aux = None
        if m.n_aux:
            aux = torch.randn(b, m.n_aux, generator=gen, device=x.device, dtype=x.dtype)
        if self.shard is not None:
            x, y = self.shard.rows(x), self.shard.rows(y)
            aux = self.shard.rows(aux) if aux is not None else None
        z_sq, log_jac = m.nll_terms(x, y, aux)
        d = float(m.dim_in)
        z_term = z_sq.mean() / d
        ld_term = log_jac.mean() / d
        total = z_term - ld_term
        return torch.stack([total, z_term.detach(), ld_term.detach()])
