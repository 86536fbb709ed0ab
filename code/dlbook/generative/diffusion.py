"""Denoising diffusion (Ho et al., 2020) and deterministic DDIM sampling
(Song et al., 2021).

Chapter: generative-basics. ``DDPMSchedule`` holds ``beta_t``, ``alpha_t``
and ``alpha_bar_t``; ``q_sample`` draws from the forward marginal
``q(x_t | x_0)``; ``ddpm_loss`` is ``L_simple``; ``ddpm_sample`` is
ancestral sampling with ``sigma_t^2 = beta_t``; ``ddim_sample`` the
deterministic sampler on a sub-sequence of the steps. Steps are indexed
``t = 1..T`` in the text and ``t - 1`` in the tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["DDPMSchedule", "q_sample", "NoisePredictor", "ddpm_loss",
           "train_ddpm", "ddpm_sample", "ddim_sample"]


@dataclass(frozen=True)
class DDPMSchedule:
    """A variance schedule: ``betas (T,)``, ``alphas = 1 - betas`` and
    ``alpha_bar[t-1] = prod_{s <= t} alpha_s``."""

    betas: torch.Tensor

    def __post_init__(self) -> None:
        b = self.betas
        if b.ndim != 1 or not ((b > 0) & (b < 1)).all():
            raise ValueError("betas must be a 1-D tensor with entries in (0, 1)")

    @classmethod
    def linear(cls, T: int, beta_1: float | None = None,
               beta_T: float | None = None) -> "DDPMSchedule":
        """Ho et al.'s linear schedule, ``1e-4`` to ``0.02`` for ``T = 1000``;
        for other ``T`` both ends are scaled by ``1000 / T`` by default, which
        keeps ``alpha_bar_T`` near zero."""
        s = 1000 / T
        b1 = 1e-4 * s if beta_1 is None else beta_1
        bT = 0.02 * s if beta_T is None else beta_T
        return cls(torch.linspace(b1, bT, T, dtype=torch.float64))

    @property
    def T(self) -> int:
        """The number of steps."""
        return len(self.betas)

    @property
    def alphas(self) -> torch.Tensor:
        """``alpha_t = 1 - beta_t``, shape (T,)."""
        return 1 - self.betas

    @property
    def alpha_bar(self) -> torch.Tensor:
        """``alpha_bar_t = prod_{s <= t} alpha_s``, shape (T,)."""
        return torch.cumprod(self.alphas, 0)


def _per_row(v: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``v[t - 1]`` shaped to broadcast against ``like (N, ...)``."""
    out = v[t - 1].to(like.dtype)
    return out.reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, schedule: DDPMSchedule,
             noise: torch.Tensor) -> torch.Tensor:
    """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``, the forward
    marginal. Shape: ``x0``, ``noise`` (N, ...), ``t`` (N,) in ``1..T``."""
    if t.min() < 1 or t.max() > schedule.T:
        raise ValueError(f"t must lie in [1, {schedule.T}]")
    ab = _per_row(schedule.alpha_bar, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise  # eq. (forward-marginal)


class NoisePredictor(nn.Module):
    """``eps_theta(x_t, t)``: an MLP on ``x_t`` concatenated with a sinusoidal
    embedding of ``t / T``. Shape: (N, D), (N,) -> (N, D)."""

    def __init__(self, dim: int, T: int, hidden: int = 128, depth: int = 3,
                 n_freq: int = 8, *, generator: torch.Generator | None = None
                 ) -> None:
        super().__init__()
        self.T, self.n_freq = T, n_freq
        self.register_buffer("freqs", 2.0 ** torch.arange(n_freq) * math.pi / 2)
        self.net = mlp([dim + 2 * n_freq, *[hidden] * depth, dim],
                       activation="silu", generator=generator)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``eps_theta(x_t, t)``. Shape: (N, D), (N,) int -> (N, D)."""
        u = (t.to(x.dtype) / self.T)[:, None] * self.freqs.to(x.dtype)
        return self.net(torch.cat([x, u.sin(), u.cos()], dim=1))


def ddpm_loss(model: nn.Module, x0: torch.Tensor, schedule: DDPMSchedule, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """``L_simple = E_{t, eps} |eps - eps_theta(x_t, t)|^2`` (mean over
    coordinates) with ``t`` uniform on ``1..T``. Shape: ``x0`` (N, D)."""
    t = torch.randint(1, schedule.T + 1, (len(x0),), generator=generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    return (eps - model(q_sample(x0, t, schedule, eps), t)).pow(2).mean()


def train_ddpm(model: nn.Module, data: torch.Tensor, schedule: DDPMSchedule, *,
               steps: int, batch_size: int = 256, lr: float = 2e-3,
               generator: torch.Generator | None = None) -> list[float]:
    """Adam on ``L_simple`` with fresh ``(t, eps)`` every step and a cosine
    decay of the learning rate; returns the loss of every step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for _ in range(steps):
        batch = data[torch.randint(len(data), (batch_size,), generator=generator)]
        loss = ddpm_loss(model, batch, schedule, generator=generator)
        opt.zero_grad(), loss.backward(), opt.step(), sched.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def ddpm_sample(model: nn.Module, schedule: DDPMSchedule, x_T: torch.Tensor, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Ancestral sampling from ``x_T (N, D)``: ``x_{t-1} = (x_t - beta_t /
    sqrt(1 - alpha_bar_t) eps_theta) / sqrt(alpha_t) + sqrt(beta_t) z``, with
    no noise at the last step. Returns ``x_0``."""
    x = x_T.clone()
    for t in range(schedule.T, 0, -1):
        tt = torch.full((len(x),), t, dtype=torch.int64)
        b, a = schedule.betas[t - 1].item(), schedule.alphas[t - 1].item()
        ab = schedule.alpha_bar[t - 1].item()
        x = (x - b / math.sqrt(1 - ab) * model(x, tt)) / math.sqrt(a)
        if t > 1:
            x = x + math.sqrt(b) * torch.randn(x.shape, generator=generator,
                                               dtype=x.dtype)
    return x


@torch.no_grad()
def ddim_sample(model: nn.Module, schedule: DDPMSchedule, x_T: torch.Tensor,
                n_steps: int) -> torch.Tensor:
    """Deterministic DDIM (``eta = 0``) on ``n_steps`` evenly spaced steps
    ``tau_S > ... > tau_1``: predict ``x_0`` from ``x_tau``, then move to
    ``x_tau' = sqrt(ab') x0_hat + sqrt(1 - ab') eps_theta``. Shape: (N, D)."""
    if not 1 <= n_steps <= schedule.T:
        raise ValueError(f"n_steps must lie in [1, {schedule.T}], got {n_steps}")
    taus = torch.linspace(schedule.T, 1, n_steps).round().long().tolist()
    x = x_T.clone()
    for i, t in enumerate(taus):
        ab = schedule.alpha_bar[t - 1].item()
        eps = model(x, torch.full((len(x),), t, dtype=torch.int64))
        x0_hat = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
        ab_next = schedule.alpha_bar[taus[i + 1] - 1].item() \
            if i + 1 < len(taus) else 1.0
        x = math.sqrt(ab_next) * x0_hat + math.sqrt(1 - ab_next) * eps
    return x
