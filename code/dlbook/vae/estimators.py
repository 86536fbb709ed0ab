"""Two unbiased estimators of the gradient of ``E_{z ~ N(mu, sigma^2)} f(z)``
with respect to ``mu``: the reparameterization (pathwise) estimator and the
score-function (REINFORCE) estimator (VAE chapter)."""
from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["pathwise_gradients", "score_function_gradients",
           "square_gradient_variances"]

Objective = Callable[[torch.Tensor], torch.Tensor]


def _draws(mu: torch.Tensor, sigma: torch.Tensor, n: int,
           generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    if mu.ndim != 1 or mu.shape != sigma.shape:
        raise ValueError(f"mu and sigma must be equal (D,) vectors, got "
                         f"{tuple(mu.shape)} and {tuple(sigma.shape)}")
    if n < 1 or not bool((sigma > 0).all()):
        raise ValueError(f"need n >= 1 and sigma > 0, got n={n}")
    eps = torch.randn(n, mu.shape[0], generator=generator, dtype=mu.dtype)
    return eps, mu + sigma * eps


def pathwise_gradients(f: Objective, mu: torch.Tensor, sigma: torch.Tensor,
                       n: int, *, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
    """``n`` single-sample estimates ``grad f(mu + sigma * eps)`` of
    ``d/dmu E f(z)``; ``f`` maps ``(n, D)`` to ``(n,)`` and is differentiable.
    Shape: ``(n, D)``."""
    _, z = _draws(mu, sigma, n, generator)
    z = z.detach().requires_grad_()
    (grad,) = torch.autograd.grad(f(z).sum(), z)
    return grad  # dz/dmu = I, so the gradient in z is the gradient in mu


@torch.no_grad()
def score_function_gradients(f: Objective, mu: torch.Tensor, sigma: torch.Tensor,
                             n: int, *, generator: torch.Generator | None = None,
                             baseline: float = 0.0) -> torch.Tensor:
    """``n`` single-sample estimates ``(f(z) - b) grad_mu log q(z)``, with
    ``grad_mu log q(z) = (z - mu) / sigma^2``; ``f`` only needs values. A
    constant ``baseline`` ``b`` keeps the estimator unbiased.
    Shape: ``(n, D)``."""
    eps, z = _draws(mu, sigma, n, generator)
    return (f(z) - baseline)[:, None] * eps / sigma


def square_gradient_variances(mu: float, sigma: float) -> tuple[float, float]:
    """Exact variances of the two estimators for ``f(z) = z^2`` in one
    dimension (proposition in the chapter): ``4 sigma^2`` (pathwise) and
    ``mu^4 / sigma^2 + 14 mu^2 + 15 sigma^2`` (score function)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return 4 * sigma**2, mu**4 / sigma**2 + 14 * mu**2 + 15 * sigma**2
