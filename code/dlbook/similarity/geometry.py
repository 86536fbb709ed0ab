"""Alignment and uniformity on the hypersphere (Wang and Isola 2020), and the
mutual-information bound of InfoNCE on a Gaussian pair (chapter: learning by
similarity)."""
from __future__ import annotations

import math

import torch

__all__ = ["alignment", "uniformity", "uniformity_sphere", "gaussian_pair",
           "gaussian_mi", "gaussian_critic", "infonce_estimate"]


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> float:
    """``E ||z1_i - z2_i||^alpha`` over positive pairs (lower is better aligned).

    Shapes: ``z1, z2 (N, d)``, normally unit-norm rows.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have equal shapes (N, d), got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    return (z1 - z2).norm(dim=1).pow(alpha).mean().item()


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """``log E exp(-t ||z_i - z_j||^2)`` over pairs ``i < j`` (lower is more
    uniform; 0 when all rows coincide). Shape: ``z (N, d)``, ``N >= 2``."""
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"z must have shape (N, d) with N >= 2, got {tuple(z.shape)}")
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t!r}")
    sq = torch.pdist(z).pow(2)  # the N(N-1)/2 distinct pairs
    return (torch.logsumexp(-t * sq, 0) - math.log(len(sq))).item()


def uniformity_sphere(dim: int, t: float = 2.0) -> float:
    """The uniformity ``log E exp(-t ||u - v||^2)`` of ``u, v`` independent and
    uniform on the sphere in ``R^dim`` (``dim >= 2``), in closed form.

    With ``s = u . v``, ``||u - v||^2 = 2 - 2 s`` and ``E exp(a s) =
    Gamma(d/2) (a/2)^(1 - d/2) I_{d/2-1}(a)`` (a modified Bessel function), so
    the value is ``log Gamma(d/2) + (1 - d/2) log t + log ive(d/2 - 1, 2t)``.
    """
    from scipy.special import gammaln, ive
    if dim < 2:
        raise ValueError(f"dim must be >= 2, got {dim}")
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t!r}")
    nu = dim / 2 - 1
    return float(gammaln(dim / 2) - nu * math.log(t) + math.log(ive(nu, 2 * t)))


def gaussian_pair(n: int, dim: int, rho: float, *,
                  generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float64):
    """``n`` draws of ``(X, Y)``: ``X ~ N(0, I)``, ``Y = rho X + sqrt(1-rho^2) E``.

    Coordinates are independent pairs with correlation ``rho``. Shapes:
    ``X, Y (n, dim)``.
    """
    if not -1 < rho < 1:
        raise ValueError(f"rho must lie in (-1, 1), got {rho!r}")
    if n < 1 or dim < 1:
        raise ValueError(f"n and dim must be >= 1, got n={n}, dim={dim}")
    x = torch.randn(n, dim, generator=generator, dtype=dtype)
    e = torch.randn(n, dim, generator=generator, dtype=dtype)
    return x, rho * x + math.sqrt(1 - rho**2) * e


def gaussian_mi(dim: int, rho: float) -> float:
    """``I(X; Y) = -dim/2 log(1 - rho^2)`` nats for :func:`gaussian_pair`."""
    if not -1 < rho < 1:
        raise ValueError(f"rho must lie in (-1, 1), got {rho!r}")
    return -0.5 * dim * math.log1p(-rho**2)


def gaussian_critic(x: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
    """All-pairs ``log p(y_j | x_i) / p(y_j)`` for :func:`gaussian_pair`, the
    optimal InfoNCE critic. Shapes: ``x (N, d)``, ``y (M, d)`` -> ``(N, M)``."""
    s2 = 1 - rho**2
    sq_cond = torch.cdist(rho * x, y).pow(2)             # ||y_j - rho x_i||^2
    sq_marg = y.pow(2).sum(1)                            # ||y_j||^2
    d = x.shape[1]
    return -sq_cond / (2 * s2) + sq_marg / 2 - 0.5 * d * math.log(s2)


def infonce_estimate(scores: torch.Tensor) -> float:
    """``log N - L_N`` from a critic matrix ``scores (N, N)`` whose diagonal
    holds the positive pairs: the InfoNCE lower bound on ``I(X; Y)``."""
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be square (N, N), got {tuple(scores.shape)}")
    n = len(scores)
    loss = (torch.logsumexp(scores, 1) - scores.diagonal()).mean()
    return math.log(n) - loss.item()
