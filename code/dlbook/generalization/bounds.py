"""Classical and PAC-Bayes generalization bounds (chapter: generalization).

Every function returns a number a reader can compare with a measured test
error: finite-class (Hoeffding + union), VC, the spectral margin complexity of
Bartlett, Foster and Telgarsky (2017), and the PAC-Bayes-kl bound with the
inverse of the binary KL divergence.
"""
from __future__ import annotations

import math

import torch

__all__ = ["finite_class_bound", "vc_bound", "spectral_complexity",
           "kl_bernoulli", "kl_inverse", "pac_bayes_kl_bound",
           "mcallester_bound", "sample_convergence_bound"]


def _check_prob(name: str, value: float, open_right: bool = False) -> None:
    hi_ok = value < 1 if open_right else value <= 1
    if not (0 <= value and hi_ok):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


def finite_class_bound(n: int, log_size: float, delta: float) -> float:
    """Width of the uniform deviation for a finite class (Hoeffding + union).

    With probability at least ``1 - delta`` over ``n`` i.i.d. samples, every
    ``h`` in a class of ``exp(log_size)`` hypotheses with a [0, 1]-valued
    loss has ``R(h) <= R_hat(h) + sqrt((log_size + log(1/delta)) / (2 n))``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    return math.sqrt((log_size + math.log(1 / delta)) / (2 * n))


def vc_bound(n: int, vc_dim: float, delta: float) -> float:
    """Width of the VC deviation bound for 0-1 loss (Sauer's lemma form).

    ``sqrt((8 d log(2 e n / d) + 8 log(4 / delta)) / n)`` for ``n >= d``
    (the constants of the textbook proof by symmetrization); ``inf`` when
    ``d > n``, where the bound says nothing.
    """
    if vc_dim > n:
        return math.inf
    growth = vc_dim * math.log(2 * math.e * n / vc_dim)
    return math.sqrt((8 * growth + 8 * math.log(4 / delta)) / n)


def spectral_complexity(weights: list[torch.Tensor]) -> float:
    """Spectral complexity ``R_A`` of a ReLU network (Bartlett et al., 2017).

    ``weights`` are the layer matrices ``W_i`` of shape ``(out, in)``; the
    reference matrices ``M_i`` are zero. Returns
    ``prod_i ||W_i||_2 * (sum_i ||W_i^T||_{2,1}^{2/3} / ||W_i||_2^{2/3})^{3/2}``.
    """
    spec = [torch.linalg.matrix_norm(W.detach().double(), ord=2) for W in weights]
    # ||W^T||_{2,1}: sum over the rows of W of their Euclidean norms
    l21 = [W.detach().double().norm(dim=1).sum() for W in weights]
    ratio = sum((a / s) ** (2 / 3) for a, s in zip(l21, spec))
    return float(torch.stack(spec).prod() * ratio ** 1.5)


def kl_bernoulli(q: float, p: float) -> float:
    """Binary KL divergence ``kl(q || p)`` between Bernoulli(q) and Bernoulli(p)."""
    _check_prob("q", q)
    _check_prob("p", p)
    out = 0.0
    if q > 0:
        out += q * math.log(q / p) if p > 0 else math.inf
    if q < 1:
        out += (1 - q) * math.log((1 - q) / (1 - p)) if p < 1 else math.inf
    return out


def kl_inverse(q: float, c: float, tol: float = 1e-12) -> float:
    """Upper inverse ``sup{p in [q, 1] : kl(q || p) <= c}`` by bisection."""
    _check_prob("q", q)
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    lo, hi = q, 1.0
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if kl_bernoulli(q, mid) > c:
            hi = mid
        else:
            lo = mid
    return hi


def pac_bayes_kl_bound(emp_risk: float, kl: float, n: int, delta: float) -> float:
    """PAC-Bayes-kl bound (Langford-Seeger form with Maurer's constant).

    With probability ``>= 1 - delta``, for all posteriors ``Q``:
    ``kl(R_hat(Q) || R(Q)) <= (KL(Q||P) + log(2 sqrt(n) / delta)) / n``;
    returns the largest ``R(Q)`` allowed.
    """
    rhs = (kl + math.log(2 * math.sqrt(n) / delta)) / n
    return kl_inverse(emp_risk, rhs)


def mcallester_bound(emp_risk: float, kl: float, n: int, delta: float) -> float:
    """The square-root relaxation ``R_hat + sqrt(rhs / 2)`` of the kl bound."""
    rhs = (kl + math.log(2 * math.sqrt(n) / delta)) / n
    return emp_risk + math.sqrt(rhs / 2)


def sample_convergence_bound(emp: float, m: int, delta: float) -> float:
    """Upper bound on ``R_hat(Q)`` from ``m`` Monte Carlo draws of ``Q``.

    Langford and Caruana (2001): with probability ``>= 1 - delta``,
    ``R_hat(Q) <= kl^{-1}(emp, log(2 / delta) / m)``.
    """
    return kl_inverse(emp, math.log(2 / delta) / m)
