"""Energy-based models and Langevin sampling.

Chapter: generative-basics. ``GaussianMixture`` is a known density whose
energy, score and noised score are exact, so that samplers and learned scores
can be measured against the truth. ``langevin`` runs the unadjusted Langevin
algorithm; ``annealed_langevin`` runs it down a ladder of noise levels (Song
and Ermon, 2019).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["GaussianMixture", "langevin", "annealed_langevin"]


@dataclass(frozen=True)
class GaussianMixture:
    """``p(x) = sum_k w_k N(x; mu_k, std^2 I)`` in ``D`` dimensions.

    ``weights (K,)`` sum to one, ``means (K, D)``. ``noised(sigma)`` is the
    law of ``x + sigma * z`` (std becomes ``sqrt(std^2 + sigma^2)``) and
    ``scaled(a)`` that of ``a * x``: together they give the marginals of a
    diffusion exactly.
    """

    weights: torch.Tensor
    means: torch.Tensor
    std: float

    def __post_init__(self) -> None:
        w, mu = self.weights, self.means
        if w.ndim != 1 or mu.ndim != 2 or len(w) != len(mu):
            raise ValueError(f"weights must be (K,) and means (K, D), got "
                             f"{tuple(w.shape)} and {tuple(mu.shape)}")
        if (w < 0).any() or abs(float(w.sum()) - 1) > 1e-6:
            raise ValueError("weights must be non-negative and sum to 1")
        if self.std <= 0:
            raise ValueError(f"std must be > 0, got {self.std}")

    @property
    def dim(self) -> int:
        """The dimension ``D``."""
        return self.means.shape[1]

    def noised(self, sigma: float) -> "GaussianMixture":
        """The law of ``x + sigma z``, ``z ~ N(0, I)``."""
        return GaussianMixture(self.weights, self.means,
                               math.sqrt(self.std ** 2 + sigma ** 2))

    def scaled(self, a: float) -> "GaussianMixture":
        """The law of ``a x`` for ``a > 0``."""
        return GaussianMixture(self.weights, a * self.means, a * self.std)

    def _component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``log w_k + log N(x; mu_k, std^2 I)``. Shape: (N, D) -> (N, K)."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must be (N, {self.dim}), got {tuple(x.shape)}")
        mu = self.means.to(x.dtype)
        sq = (x[:, None, :] - mu[None]).pow(2).sum(-1)
        norm = self.dim * math.log(2 * math.pi * self.std ** 2) / 2
        return self.weights.to(x.dtype).log() - sq / (2 * self.std ** 2) - norm

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)``. Shape: (N, D) -> (N,)."""
        return torch.logsumexp(self._component_log_probs(x), dim=1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x) = -log p(x)``. Shape: (N, D) -> (N,)."""
        return -self.log_prob(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """``grad_x log p(x)``, in closed form. Shape: (N, D) -> (N, D)."""
        r = torch.softmax(self._component_log_probs(x), dim=1)  # responsibilities
        mean = r @ self.means.to(x.dtype)
        return (mean - x) / self.std ** 2

    def sample(self, n: int, *, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws and their components. Shape: (n, D), (n,)."""
        comp = torch.multinomial(self.weights, n, replacement=True,
                                 generator=generator)
        z = torch.randn(n, self.dim, generator=generator)
        return self.means[comp] + self.std * z, comp


def langevin(energy_grad: Callable[[torch.Tensor], torch.Tensor],
             x0: torch.Tensor, step: float, n_steps: int, *,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Unadjusted Langevin algorithm for ``p(x) ∝ exp(-E(x))``:
    ``x <- x - step * grad E(x) + sqrt(2 step) z`` for ``n_steps`` steps.

    ``energy_grad`` maps ``(N, D)`` to ``(N, D)``. Returns the final states,
    shape of ``x0``; each row is an independent chain.
    """
    if step <= 0 or n_steps < 0:
        raise ValueError(f"need step > 0 and n_steps >= 0, got {step}, {n_steps}")
    x = x0.clone()
    for _ in range(n_steps):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = x - step * energy_grad(x) + math.sqrt(2 * step) * z  # eq. (ula)
    return x


def annealed_langevin(score: Callable[[torch.Tensor, float], torch.Tensor],
                      x0: torch.Tensor, sigmas: Sequence[float], step: float,
                      n_steps: int, *,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Annealed Langevin dynamics (Song and Ermon, 2019).

    For each noise level ``sigma`` of the decreasing ``sigmas``, run
    ``n_steps`` Langevin steps on the noised density ``p_sigma``, whose score
    ``score(x, sigma)`` is given, with step ``step * sigma^2 / sigmas[-1]^2``
    (the step shrinks with the noise, as in the paper). Shape: ``x0`` (N, D).
    """
    if any(a < b for a, b in zip(sigmas, sigmas[1:])):
        raise ValueError("sigmas must be non-increasing")
    x = x0.clone()
    for sigma in sigmas:
        alpha = step * sigma ** 2 / sigmas[-1] ** 2
        x = langevin(lambda y, s=sigma: -score(y, s), x, alpha, n_steps,
                     generator=generator)
    return x
