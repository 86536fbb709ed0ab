"""Certified robustness by randomized smoothing (Cohen et al., 2019;
chapter ``ood``).

The smoothed classifier ``g(x) = argmax_c P(f(x + noise) = c)`` with Gaussian
noise ``N(0, sigma^2 I)``; ``certify`` is the paper's Monte Carlo procedure
CERTIFY, which returns a class and an l2 radius valid with probability at
least ``1 - alpha``, or abstains.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy import stats
from torch import nn

__all__ = ["noise_counts", "clopper_pearson_lower", "Certificate", "certify",
           "certified_accuracy"]


@torch.no_grad()
def noise_counts(model: nn.Module, x: torch.Tensor, sigma: float, n: int,
                 num_classes: int, generator: torch.Generator | None = None,
                 batch_size: int = 10_000) -> torch.Tensor:
    """How often the base classifier predicts each class under noise.

    Draws ``n`` noisy copies ``x + sigma * z`` of each row of ``x`` with ``z``
    standard normal. Shapes: ``x (N, D)``; returns counts ``(N, num_classes)``.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    model.eval()
    counts = torch.zeros(len(x), num_classes, dtype=torch.int64)
    per = max(1, batch_size // max(1, len(x)))  # noise draws per chunk
    done = 0
    while done < n:
        k = min(per, n - done)
        z = torch.randn((k, *x.shape), generator=generator, dtype=x.dtype)
        pred = model((x.unsqueeze(0) + sigma * z).reshape(-1, *x.shape[1:]))
        pred = pred.argmax(-1).reshape(k, len(x))
        counts += nn.functional.one_hot(pred, num_classes).sum(0)
        done += k
    return counts


def clopper_pearson_lower(k: torch.Tensor, n: int, alpha: float) -> torch.Tensor:
    """One-sided Clopper-Pearson lower confidence bound on a binomial ``p``.

    With probability at least ``1 - alpha`` over ``k ~ Bin(n, p)``, ``p`` is at
    least the returned value: the ``alpha`` quantile of ``Beta(k, n - k + 1)``
    (0 when ``k = 0``). Shape: ``k (N,)``; returns ``(N,)`` float64.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    k_np = k.detach().cpu().numpy()
    if (k_np < 0).any() or (k_np > n).any():
        raise ValueError(f"counts must lie in [0, n = {n}]")
    safe = k_np.clip(min=1)
    low = stats.beta.ppf(alpha, safe, n - safe + 1)
    return torch.as_tensor(low, dtype=torch.float64).where(
        torch.as_tensor(k_np > 0), torch.zeros((), dtype=torch.float64))


@dataclass(frozen=True)
class Certificate:
    """The output of :func:`certify` for N inputs: ``prediction (N,)`` (-1 for
    abstain), ``radius (N,)`` (0 where it abstains) and the bound ``p_lower``."""

    prediction: torch.Tensor
    radius: torch.Tensor
    p_lower: torch.Tensor


def certify(model: nn.Module, x: torch.Tensor, sigma: float, n0: int, n: int,
            alpha: float, num_classes: int,
            generator: torch.Generator | None = None) -> Certificate:
    """CERTIFY of Cohen et al. (2019) for each row of ``x``.

    Guess the top class from ``n0`` noisy samples, estimate its probability
    from ``n`` fresh ones by a lower confidence bound ``p_lower``, and return
    the radius ``sigma * Phi^{-1}(p_lower)`` if ``p_lower > 1/2``, else
    abstain. Shapes: ``x (N, D)``; see :class:`Certificate`.
    """
    guess = noise_counts(model, x, sigma, n0, num_classes, generator).argmax(1)
    counts = noise_counts(model, x, sigma, n, num_classes, generator)
    k = counts.gather(1, guess.unsqueeze(1)).squeeze(1)
    p_lower = clopper_pearson_lower(k, n, alpha)
    ok = p_lower > 0.5
    radius = sigma * torch.as_tensor(stats.norm.ppf(p_lower.clamp(0.5, 1).numpy()))
    return Certificate(torch.where(ok, guess, torch.full_like(guess, -1)),
                       torch.where(ok, radius, torch.zeros_like(radius)), p_lower)


def certified_accuracy(cert: Certificate, y: torch.Tensor,
                       radii: torch.Tensor) -> torch.Tensor:
    """Fraction of inputs certified correct at least to each radius.

    An input counts at radius ``r`` when its prediction equals its label and
    its certified radius is at least ``r`` (abstentions never count).
    Shapes: ``y (N,)``, ``radii (R,)``; returns ``(R,)``.
    """
    good = cert.prediction == y
    return ((cert.radius.unsqueeze(0) >= radii.unsqueeze(1))
            & good.unsqueeze(0)).double().mean(1)
