"""Conditional variational autoencoders (chapter: conditional generative models).

The conditional VAE of Sohn, Lee and Yan (2015) in its simplest form: an
encoder ``q(z | x, c)``, a prior ``p(z) = N(0, I)`` that ignores the condition,
and a Bernoulli decoder ``p(x | z, c)``. The condition ``c`` is any vector: a
one-hot label, or the embedding of a caption (text-to-image at toy scale).
:func:`linear_gaussian_elbo` is the closed-form check of the conditional ELBO.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["gaussian_kl", "CVAE", "cvae_loss", "linear_gaussian_log_evidence",
           "linear_gaussian_elbo"]

F = nn.functional


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))``, summed over the last axis.

    Shapes: ``mu, logvar (N, K)`` -> ``(N,)``.
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar differ in shape: {tuple(mu.shape)} vs "
                         f"{tuple(logvar.shape)}")
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)


class CVAE(nn.Module):
    """A conditional VAE on flattened images in ``[0, 1]``.

    ``forward`` takes the packed input ``[x, c]`` (shape ``(N, D + K)``), so
    that :func:`dlbook.train.fit` can train it, and returns the decoder's
    logits ``(N, D)``, ``mu (N, latent)`` and ``logvar (N, latent)``. The
    reparameterized draw uses ``generator``. ``decode(z, c)`` gives pixel
    probabilities ``(N, D)``.
    """

    def __init__(self, data_dim: int, cond_dim: int, latent_dim: int = 4,
                 hidden: int = 128, *, generator: torch.Generator | None = None
                 ) -> None:
        super().__init__()
        self.data_dim, self.cond_dim, self.latent_dim = data_dim, cond_dim, latent_dim
        self.encoder = mlp([data_dim + cond_dim, hidden, 2 * latent_dim],
                           generator=generator)
        self.decoder = mlp([latent_dim + cond_dim, hidden, data_dim],
                           generator=generator)
        self.generator = generator

    def encode(self, x: torch.Tensor, c: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean and log-variance, each ``(N, latent)``."""
        mu, logvar = self.encoder(torch.cat([x, c], 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def decode_logits(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The decoder's logits ``(N, D)`` for ``z (N, latent)``, ``c (N, K)``."""
        return self.decoder(torch.cat([z, c], 1))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities ``(N, D)`` of ``p(x | z, c)``."""
        return torch.sigmoid(self.decode_logits(z, c))

    def forward(self, xc: torch.Tensor):
        """``(logits, mu, logvar)`` for the packed input ``[x, c]``."""
        if xc.ndim != 2 or xc.shape[1] != self.data_dim + self.cond_dim:
            raise ValueError(f"input must be [x, c] of shape (N, "
                             f"{self.data_dim + self.cond_dim}), got "
                             f"{tuple(xc.shape)}")
        x, c = xc[:, :self.data_dim], xc[:, self.data_dim:]
        mu, logvar = self.encode(x, c)
        eps = torch.randn(mu.shape, generator=self.generator, dtype=mu.dtype)
        z = mu + (0.5 * logvar).exp() * eps  # the reparameterization
        return self.decode_logits(z, c), mu, logvar

    @torch.no_grad()
    def sample(self, c: torch.Tensor, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """One draw of ``x``'s pixel probabilities per row of ``c (N, K)``."""
        z = torch.randn(len(c), self.latent_dim, generator=generator, dtype=c.dtype)
        return self.decode(z, c)


def cvae_loss(out, x: torch.Tensor) -> torch.Tensor:
    """The negative conditional ELBO per example, averaged over the batch.

    ``out = (logits, mu, logvar)`` from :class:`CVAE`; ``x (N, D)`` in
    ``[0, 1]`` (Bernoulli likelihood, one-sample reconstruction term).
    """
    logits, mu, logvar = out
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    return (rec + gaussian_kl(mu, logvar)).mean()


def linear_gaussian_log_evidence(x: torch.Tensor, y: torch.Tensor, a: float,
                                 b: torch.Tensor, sigma: float) -> torch.Tensor:
    """``log p(x | y)`` for ``z ~ N(0, 1)``, ``x | z, y ~ N(a z + b_y, sigma^2)``.

    Marginally ``x | y ~ N(b_y, a^2 + sigma^2)``. Shapes: ``x, y (N,)``,
    ``b (K,)`` -> ``(N,)``.
    """
    var = a * a + sigma * sigma
    return -0.5 * (math.log(2 * math.pi * var) + (x - b[y]) ** 2 / var)


def linear_gaussian_elbo(x: torch.Tensor, y: torch.Tensor, a: float,
                         b: torch.Tensor, sigma: float, m: torch.Tensor,
                         s: torch.Tensor) -> torch.Tensor:
    """The conditional ELBO of the linear-Gaussian model in closed form for
    ``q(z | x, y) = N(m, s^2)``. Shapes: all ``(N,)`` but ``b (K,)``.

    ``E_q log p(x|z,y) - KL(q || N(0, 1))`` with
    ``E_q (x - a z - b_y)^2 = (x - a m - b_y)^2 + a^2 s^2``.
    """
    if (s <= 0).any():
        raise ValueError("s must be positive")
    sq = (x - a * m - b[y]) ** 2 + a * a * s * s
    rec = -0.5 * (math.log(2 * math.pi * sigma ** 2) + sq / sigma ** 2)
    kl = 0.5 * (m ** 2 + s ** 2 - 1 - 2 * torch.log(s))
    return rec - kl
