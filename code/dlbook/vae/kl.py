"""Gaussian KL divergences and the reparameterized sample (VAE chapter)."""
from __future__ import annotations

import torch

__all__ = ["gaussian_kl", "reparameterize"]


def _check_same_shape(**tensors: torch.Tensor) -> None:
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shapes must agree, got {shapes}")


def gaussian_kl(mu: torch.Tensor, log_var: torch.Tensor,
                mu_p: torch.Tensor | None = None,
                log_var_p: torch.Tensor | None = None) -> torch.Tensor:
    """Per-coordinate ``KL(N(mu, diag e^log_var) || N(mu_p, diag e^log_var_p))``.

    The closed form of eq. (gaussian-kl); the prior defaults to the standard
    normal (``mu_p = 0``, ``log_var_p = 0``). Sum over the last axis for the
    KL of the whole diagonal Gaussian. Nats.
    Shape: all arguments ``(..., D)`` -> ``(..., D)``.
    """
    mu_p = torch.zeros_like(mu) if mu_p is None else mu_p
    log_var_p = torch.zeros_like(log_var) if log_var_p is None else log_var_p
    _check_same_shape(mu=mu, log_var=log_var, mu_p=mu_p, log_var_p=log_var_p)
    ratio = torch.exp(log_var - log_var_p)  # sigma^2 / sigma_p^2
    return 0.5 * (ratio + (mu - mu_p) ** 2 / log_var_p.exp() - 1
                  - (log_var - log_var_p))


def reparameterize(mu: torch.Tensor, log_var: torch.Tensor, *,
                   generator: torch.Generator | None = None,
                   n_samples: int | None = None) -> torch.Tensor:
    """``z = mu + sigma * eps`` with ``eps ~ N(0, I)``: the reparameterization.

    The sample is a differentiable function of ``mu`` and ``log_var``.
    Shape: ``(..., D)`` -> ``(..., D)``, or ``(n_samples, ..., D)``.
    """
    _check_same_shape(mu=mu, log_var=log_var)
    shape = mu.shape if n_samples is None else (n_samples, *mu.shape)
    eps = torch.randn(shape, generator=generator, dtype=mu.dtype)
    return mu + torch.exp(0.5 * log_var) * eps
