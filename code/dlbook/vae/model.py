"""A variational autoencoder with a Bernoulli decoder, its ELBO and the
importance-weighted bounds (VAE chapter)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from dlbook.nn import mlp

from .kl import gaussian_kl, reparameterize

__all__ = ["VAEConfig", "VAEOutput", "VAE", "bernoulli_log_lik", "elbo",
           "NegativeELBO", "iwae_bound", "kl_per_dimension", "active_units",
           "binarize", "log_joint_on_grid"]


@dataclass(frozen=True)
class VAEConfig:
    """Sizes of a VAE: ``d_in`` pixels, ``d_latent`` latents, one hidden
    layer of ``hidden`` units in the encoder and in the decoder."""

    d_in: int = 64
    d_latent: int = 2
    hidden: int = 128

    def __post_init__(self) -> None:
        for name in ("d_in", "d_latent", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class VAEOutput(NamedTuple):
    """What :meth:`VAE.forward` returns; each field's shape is in brackets:
    decoder ``logits`` (N, d_in), encoder ``mu`` and ``log_var`` (N, d_latent),
    and the reparameterized sample ``z`` (N, d_latent)."""

    logits: torch.Tensor
    mu: torch.Tensor
    log_var: torch.Tensor
    z: torch.Tensor


class VAE(nn.Module):
    """Encoder ``q(z | x) = N(mu(x), diag sigma^2(x))``, prior ``N(0, I)`` and
    Bernoulli decoder ``p(x | z)`` with logits ``decoder(z)``.

    ``forward`` draws one ``z`` per example from ``generator`` (the global RNG
    if ``None``), in training and in evaluation mode alike.
    Shapes: ``(N, d_in) -> VAEOutput``.
    """

    def __init__(self, config: VAEConfig = VAEConfig(), *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        c = config
        self.config = c
        self.encoder = mlp([c.d_in, c.hidden, 2 * c.d_latent], generator=generator)
        self.decoder = mlp([c.d_latent, c.hidden, c.d_in], generator=generator)
        self.generator = generator

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log_var)`` of ``q(z | x)``. Shape: ``(N, d_in) -> 2 x (N, D)``."""
        if x.ndim != 2 or x.shape[1] != self.config.d_in:
            raise ValueError(f"x must be (N, {self.config.d_in}), got "
                             f"{tuple(x.shape)}")
        mu, log_var = self.encoder(x).chunk(2, dim=-1)
        return mu, log_var

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of ``p(x | z)``. Shape: ``(..., D) -> (..., d_in)``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mu, log_var = self.encode(x)
        z = reparameterize(mu, log_var, generator=self.generator)
        return VAEOutput(self.decode(z), mu, log_var, z)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Pixel means ``E[x | z]`` for ``n`` prior draws ``z ~ N(0, I)``.
        Shape: ``(n, d_in)``."""
        z = torch.randn(n, self.config.d_latent, generator=generator)
        return torch.sigmoid(self.decode(z))


def bernoulli_log_lik(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``log p(x | z) = sum_j x_j log p_j + (1 - x_j) log(1 - p_j)`` with
    ``p = sigmoid(logits)``, computed stably; the two arguments broadcast.
    Shape: ``(..., d) -> (...)``."""
    logits, x = torch.broadcast_tensors(logits, x)
    return -nn.functional.binary_cross_entropy_with_logits(
        logits, x, reduction="none").sum(-1)


def elbo(out: VAEOutput, x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Single-sample ELBO per example, eq. (vae-elbo):
    ``log p(x | z) - beta * KL(q(z | x) || p(z))`` with the KL in closed
    form; ``beta = 1`` is the evidence lower bound. Shape: ``(N,)``."""
    kl = gaussian_kl(out.mu, out.log_var).sum(-1)
    return bernoulli_log_lik(out.logits, x) - beta * kl


class NegativeELBO:
    """The training loss ``-mean_i ELBO_beta(x_i)``, for ``fit(model, loss,
    ..., (X, X))``: the target of a VAE is its input."""

    def __init__(self, beta: float = 1.0) -> None:
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = beta

    def __call__(self, out: VAEOutput, x: torch.Tensor) -> torch.Tensor:
        return -elbo(out, x, self.beta).mean()


@torch.no_grad()
def iwae_bound(model: VAE, x: torch.Tensor, k: int, *,
               generator: torch.Generator | None = None,
               chunk: int = 256) -> torch.Tensor:
    """The importance-weighted bound ``L_k(x) = E log (1/k) sum_i w_i``,
    ``w_i = p(x, z_i) / q(z_i | x)``, ``z_i ~ q(z | x)`` (Burda et al.), one
    draw of the ``k`` samples per example. ``L_1`` is the ELBO and ``L_k``
    increases to ``log p(x)`` as ``k`` grows. Shape: ``(N, d_in) -> (N,)``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    mu, log_var = model.encode(x)
    parts = []
    for start in range(0, k, chunk):  # chunks keep memory at chunk * N * d_in
        z = reparameterize(mu, log_var, generator=generator,
                           n_samples=min(chunk, k - start))
        parts.append(_log_weights(model, x, z, mu, log_var))
    log_w = torch.cat(parts)  # (k, N)
    return torch.logsumexp(log_w, dim=0) - math.log(k)


def _log_weights(model: VAE, x: torch.Tensor, z: torch.Tensor,
                 mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``log p(x | z) + log p(z) - log q(z | x)``. Shape: ``z (k, N, D) ->
    (k, N)``."""
    normal = torch.distributions.Normal
    log_prior = normal(0.0, 1.0).log_prob(z).sum(-1)
    log_q = normal(mu, torch.exp(0.5 * log_var)).log_prob(z).sum(-1)
    return bernoulli_log_lik(model.decode(z), x) + log_prior - log_q


@torch.no_grad()
def kl_per_dimension(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """Mean over examples of each latent coordinate's ``KL(q(z_j | x) ||
    N(0, 1))``; coordinates near zero are collapsed. Shape: ``(D,)``."""
    mu, log_var = model.encode(x)
    return gaussian_kl(mu, log_var).mean(0)


def active_units(kl_dims: torch.Tensor, threshold: float = 0.01) -> int:
    """Number of latent coordinates whose mean KL exceeds ``threshold`` nats."""
    return int((kl_dims > threshold).sum())


def binarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Pixels ``> threshold`` become 1, the others 0 (same dtype), so that a
    Bernoulli decoder gives a true probability of the data."""
    return (x > threshold).to(x.dtype)


@torch.no_grad()
def log_joint_on_grid(model: VAE, x: torch.Tensor, z: torch.Tensor
                      ) -> torch.Tensor:
    """``log p(x_n, z_g) = log p(x_n | z_g) + log N(z_g; 0, 1)`` for a VAE with
    a one-dimensional latent, on the grid ``z``; with a fine, wide grid,
    ``logsumexp`` over the grid plus ``log dz`` is ``log p(x)`` by quadrature.
    Shapes: ``x (N, d_in)``, ``z (G,)`` -> ``(G, N)``."""
    if model.config.d_latent != 1 or z.ndim != 1:
        raise ValueError("needs d_latent == 1 and a (G,) grid, got "
                         f"d_latent={model.config.d_latent}, z {tuple(z.shape)}")
    logits = model.decode(z[:, None].to(x.dtype))  # (G, d_in)
    log_p, log_1mp = F.logsigmoid(logits), F.logsigmoid(-logits)
    log_lik = log_p @ x.T + log_1mp @ (1 - x).T  # (G, N), a Bernoulli per pixel
    return log_lik + torch.distributions.Normal(0.0, 1.0).log_prob(z)[:, None]
