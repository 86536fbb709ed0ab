"""Normalizing flows: affine coupling layers (RealNVP, Dinh et al., 2017).

Chapter: generative-basics. A coupling layer keeps the coordinates where
``mask == 1`` and transforms the others by ``y = x * exp(s(x_masked)) +
t(x_masked)``; its Jacobian is triangular, with log-determinant
``sum(s)``. ``RealNVP`` stacks couplings with alternating masks over a
standard Gaussian base, so ``log_prob`` is exact.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["AffineCoupling", "RealNVP"]


class AffineCoupling(nn.Module):
    """One affine coupling ``R^D -> R^D`` with a fixed binary ``mask (D,)``.

    ``forward(x)`` returns ``(y, log|det dy/dx|)``, shapes ``(N, D)`` and
    ``(N,)``; ``inverse(y)`` returns ``x``. The scale is ``tanh``-bounded
    (times a learned per-coordinate factor) so that early training is stable.
    """

    def __init__(self, mask: torch.Tensor, hidden: int = 64, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        D = len(mask)
        self.register_buffer("mask", mask.float())
        self.net = mlp([D, hidden, hidden, 2 * D], activation="relu",
                       generator=generator, init="zero-output")
        self.scale = nn.Parameter(torch.ones(D))

    def _s_t(self, x_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(x_masked).chunk(2, dim=1)
        free = 1 - self.mask  # only the transformed coordinates move
        return self.scale * torch.tanh(s) * free, t * free

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, log|det dy/dx|)``. Shape: (N, D) -> (N, D), (N,)."""
        s, t = self._s_t(x * self.mask)
        return x * torch.exp(s) + t, s.sum(1)  # eq. (coupling)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """``x`` with ``forward(x)[0] == y``. Shape: (N, D) -> (N, D)."""
        s, t = self._s_t(y * self.mask)  # y and x agree on the masked part
        return (y - t) * torch.exp(-s)


class RealNVP(nn.Module):
    """``n_layers`` couplings with alternating masks on a ``N(0, I)`` base.

    ``forward(x)`` maps data to latent, ``(z, log|det dz/dx|)``;
    ``log_prob(x)`` is the change of variables, shape (N,);
    ``sample(n, generator)`` runs the inverses. Data dimension ``D >= 2``.
    """

    def __init__(self, dim: int = 2, n_layers: int = 6, hidden: int = 64, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        base = (torch.arange(dim) % 2).float()
        self.layers = nn.ModuleList(
            AffineCoupling(base if i % 2 else 1 - base, hidden, generator=generator)
            for i in range(n_layers))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log|det dz/dx|)``. Shape: (N, D) -> (N, D), (N,)."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must be (N, {self.dim}), got {tuple(x.shape)}")
        logdet = torch.zeros(len(x), dtype=x.dtype)
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x) = log N(f(x); 0, I) + log|det J_f(x)|`` (nats)."""
        z, logdet = self(x)
        base = -0.5 * z.pow(2).sum(1) - self.dim * math.log(2 * math.pi) / 2
        return base + logdet  # eq. (change-of-variables)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """``x = f^{-1}(z)``, ``z ~ N(0, I)``. Shape: (n, dim)."""
        x = torch.randn(n, self.dim, generator=generator)
        for layer in reversed(self.layers):
            x = layer.inverse(x)
        return x
