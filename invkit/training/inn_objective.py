"""The INN's three-loss training (Ardizzone et al. 2019), plus the authors' reconstruction
term and three opt-in options, as one objective module."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from invkit.config import TrainConfig
from invkit.errors import ConfigError
from invkit.models.inn import PaddedINN
from invkit.training.batch import WHOLE, BatchPart
from invkit.training.losses import mse


class INNObjective(nn.Module):
    """The three losses (plus the authors' reconstruction term) for one batch.

    Forward direction: L_y = MSE of [y, pad] against the noisy y and the padding noise;
    L_z = MMD of [y_pred (detached), z] against [y, N(0, I)]. Inverse direction:
    L_x = MMD of g(y, z ~ N(0, I)) against the batch's x; L_recon = MSE of g(y, f_z(x) + noise)
    against x. Both inverse passes run as one batch. Summing before one backward gives the
    same gradients as the authors' two accumulated backward passes.

    Three options beyond the authors' recipe, off by default: ``train.pad_noise_on="x"`` puts
    the padding noise on x's padding only (the forward then learns to ignore that padding,
    which sampling drops); ``train.lambda_pad`` adds L_pad = MSE of the x-padding of
    g(y, z ~ N(0, I)) against zero (otherwise information can hide there and is lost when
    samples drop it); ``train.lambda_resim`` adds L_resim = MSE of s(x) at those samples
    against their y, through the problem's own (torch, noise-free) forward process, so the
    samples meet y through s itself rather than only through the learnt forward map.
    ``train.mmd_x_y_scale = k > 0`` makes L_x compare the pairs (g(y, z), k y) with (x, k y)
    for the batch's y: the joint of x and y, which matches only when every posterior does,
    where the authors' L_x matches the marginal of x (which any mix-up of posteriors between
    observations also matches); k sets how finely the kernel tells observations apart.
    The plugin guide (docs/guide/plugin.md) has what they do on the arm.

    With ``model.standardise`` x and y are standardised first (the model's fixed maps, set by
    the trainer before the first step), so all the losses, ``train.y_noise`` and the MMD
    widths act in the standardised space.

    ``forward`` returns the weighted terms by name (``l_y``, ``l_z``, ``l_x``, ``l_recon``,
    then ``l_pad`` and ``l_resim`` when their weights are positive).
    """

    def __init__(self, model: PaddedINN, cfg: TrainConfig,
                 simulator: Callable[[Tensor], Tensor] | None = None) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.simulator = simulator
        self._passes = None  # the network's passes, torch.compiled by compile_network()
        self._resim_checked = False
        self.term_names = ("l_y", "l_z", "l_x", "l_recon") + tuple(
            name for name, w in (("l_pad", cfg.lambda_pad), ("l_resim", cfg.lambda_resim)) if w > 0)

    def compile_network(self) -> None:
        """``train.compile``: torch.compile the two network passes (fixed shapes, two graphs);
        the noise, losses and fused MMD stay eager. Measured slower on CPU (see
        docs/performance.md); meant for accelerators."""
        self._passes = torch.compile(self.model.forward, dynamic=False)

    def forward(self, x: Tensor, y: Tensor, gen: torch.Generator, x_weight: float = 1.0,
                part: BatchPart = WHOLE) -> dict[str, Tensor]:
        cfg, m = self.cfg, self.model
        n, dev = x.shape[0], x.device  # the global batch: noise is drawn for all of it
        if m.standardise:
            x, y = m.standardise_x(x), m.standardise_y(y)

        def randn(width: int) -> Tensor:
            return part.rows(torch.randn(n, width, generator=gen, device=dev, dtype=x.dtype))

        mmd = part.mmd2
        net = self._passes if self._passes is not None else m
        x, y = part.rows(x), part.rows(y)
        b = x.shape[0]

        yz_noise = cfg.pad_noise if cfg.pad_noise_on == "both" else 0.0
        x_pad = m.pad_input(x, cfg.pad_noise * randn(m.pad_x))
        y_noisy = y + cfg.y_noise * randn(m.dim_y)
        pad_target = yz_noise * randn(m.pad_yz)  # drawn even when 0: the same stream either way

        out, _ = net(x_pad)
        out_y, out_z, out_pad = m.split_output(out)
        l_y = cfg.lambda_y * mse(torch.cat([out_y, out_pad], 1),
                                 torch.cat([y_noisy, pad_target], 1))
        l_z = cfg.lambda_z * mmd(
            torch.cat([out_y.detach(), out_z], 1),
            torch.cat([y_noisy, randn(m.dim_z)], 1),
            cfg.mmd_widths_z,
        )

        y_rev = y + cfg.y_noise * randn(m.dim_y)
        pad_rev = yz_noise * randn(m.pad_yz)
        z_rand = randn(m.dim_z)
        z_recon = out_z.detach() + cfg.y_noise * randn(m.dim_z)
        yz = torch.cat([m.join_output(y_rev, z_rand, pad_rev),
                        m.join_output(y_rev, z_recon, pad_rev)], 0)
        x_rev, _ = net(yz, rev=True)
        x_rand, x_recon = x_rev[:b], x_rev[b:]
        sampled, data = x_rand[:, :m.dim_x], x  # what L_x compares
        if cfg.mmd_x_y_scale > 0:  # pairs (x, k y): the posteriors, not only the marginal
            y_k = cfg.mmd_x_y_scale * y_rev
            sampled, data = torch.cat([sampled, y_k], 1), torch.cat([data, y_k], 1)
        l_x = (cfg.lambda_x * x_weight) * mmd(sampled, data, cfg.mmd_widths_x)
        terms = {"l_y": l_y, "l_z": l_z, "l_x": l_x,
                 "l_recon": cfg.lambda_recon * mse(x_recon, x_pad)}
        if cfg.lambda_pad > 0:  # samples drop x's padding: keep it empty, not a hiding place
            pad = x_rand[:, m.dim_x:]  # empty without padding: then L_pad is 0, not NaN
            terms["l_pad"] = cfg.lambda_pad * pad.square().sum() / max(1, pad.numel())
        if cfg.lambda_resim > 0:  # the samples g(y, z) should reproduce y through s
            x_hat = m.unstandardise_x(x_rand[:, :m.dim_x])
            terms["l_resim"] = cfg.lambda_resim * mse(m.standardise_y(self._simulate(x_hat)),
                                                      y_rev)
        return terms

    def _simulate(self, x: Tensor) -> Tensor:
        """s(x) for L_resim; the first call checks that gradients pass through s."""
        if self.simulator is None:
            raise ConfigError("train.lambda_resim needs the problem's forward process: build "
                              "the objective with it (INNObjective(model, cfg, simulator)).")
        y = self.simulator(x)
        if not self._resim_checked:
            name = getattr(self.simulator, "name", repr(self.simulator))
            if not isinstance(y, Tensor) or y.shape != (x.shape[0], self.model.dim_y):
                got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                raise ConfigError(f"train.lambda_resim: forward process {name!r} returned "
                                  f"{got} for x of shape {tuple(x.shape)}; expected "
                                  f"({x.shape[0]}, {self.model.dim_y}).")
            if x.requires_grad and not y.requires_grad:
                raise ConfigError(
                    f"train.lambda_resim needs gradients through the forward process, and "
                    f"{name!r} returned a tensor without them (computed outside torch, e.g. in "
                    f"numpy, or under no_grad). Write s(x) in torch operations, or drop "
                    f"--set train.lambda_resim.")
            self._resim_checked = True
        return y
