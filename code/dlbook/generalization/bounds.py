"""Classical and PAC-Bayes generalization bounds (chapter: generalization).

Every function returns a number a reader can compare with a measured test
error: finite-class (Hoeffding + union), VC, the empirical Rademacher
complexity of a norm-bounded class and the margin bound it gives, the
spectral complexity of Bartlett, Foster and Telgarsky (2017), the PAC-Bayes-kl
bound with the inverse of the binary KL divergence, and the effective ranks
of Bartlett, Long, Lugosi and Tsigler (2020).
"""
from __future__ import annotations

import math

import torch

__all__ = ["finite_class_bound", "vc_bound", "spectral_complexity",
           "augment_bias", "rademacher_linear", "two_layer_norm",
           "ramp_risk", "rademacher_margin_bound", "kl_bernoulli",
           "kl_inverse", "pac_bayes_kl_bound", "mcallester_bound",
           "sample_convergence_bound", "effective_ranks"]


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

    ``sqrt((8 d log(2 e n / d) + 8 log(4 / delta)) / n)`` for ``n >= d``:
    Vapnik and Chervonenkis's (1971) inequality
    ``P(sup |R - R_hat| > eps) <= 4 Pi(2n) exp(-n eps^2 / 8)`` with
    ``Pi(2n) <= (2 e n / d)^d``. Returns ``inf`` when ``d > n``: the theorem
    does not apply there.
    """
    if vc_dim > n:
        return math.inf
    growth = vc_dim * math.log(2 * math.e * n / vc_dim)
    return math.sqrt((8 * growth + 8 * math.log(4 / delta)) / n)


def augment_bias(weights: list[torch.Tensor],
                 biases: list[torch.Tensor]) -> list[torch.Tensor]:
    """Absorb biases into the weights of a ReLU network.

    Layer ``i`` with ``W_i (out, in)`` and ``b_i (out,)`` becomes
    ``[[W_i, b_i], [0, 1]]`` of shape ``(out + 1, in + 1)`` (the last layer
    ``[W_L, b_L]``, shape ``(out, in + 1)``). On inputs ``(x, 1)`` the augmented
    bias-free network computes the same outputs, because ``relu(1) = 1`` keeps
    the constant unit alive through every hidden layer.
    """
    if len(weights) != len(biases):
        raise ValueError(f"need one bias per layer, got {len(weights)} weights "
                         f"and {len(biases)} biases")
    out = []
    for i, (W, b) in enumerate(zip(weights, biases)):
        W, b = W.detach().double(), b.detach().double()
        A = torch.cat([W, b[:, None]], 1)
        if i < len(weights) - 1:
            last = torch.zeros(1, A.shape[1], dtype=A.dtype)
            last[0, -1] = 1.0
            A = torch.cat([A, last], 0)
        out.append(A)
    return out


def spectral_complexity(weights: list[torch.Tensor]) -> float:
    """Spectral complexity ``SC(f)`` of a ReLU network (Bartlett et al., 2017).

    ``weights`` are the layer matrices ``W_i`` of shape ``(out, in)`` of a
    network *without biases* (absorb them first with :func:`augment_bias`);
    the reference matrices ``M_i`` are zero. Returns
    ``prod_i ||W_i||_2 * (sum_i ||W_i^T||_{2,1}^{2/3} / ||W_i||_2^{2/3})^{3/2}``.
    """
    spec = [torch.linalg.matrix_norm(W.detach().double(), ord=2) for W in weights]
    # ||W^T||_{2,1}: sum over the rows of W of their Euclidean norms
    l21 = [W.detach().double().norm(dim=1).sum() for W in weights]
    ratio = sum((a / s) ** (2 / 3) for a, s in zip(l21, spec))
    return float(torch.stack(spec).prod() * ratio ** 1.5)


def rademacher_linear(X: torch.Tensor, *, draws: int = 2000,
                      generator: torch.Generator | None = None
                      ) -> tuple[float, float]:
    """Empirical Rademacher complexity of ``{x -> <u, x> : ||u|| <= 1}``.

    The supremum has a closed form, ``||sum_i sigma_i x_i|| / n``, so the
    complexity ``E_sigma ||sum_i sigma_i x_i|| / n`` is a plain average over
    ``draws`` sign vectors. Returns ``(monte_carlo, upper)`` where
    ``upper = sqrt(sum_i ||x_i||^2) / n`` is at least the exact value (Jensen).
    Shape: ``X (N, D)``.
    """
    if X.ndim != 2:
        raise ValueError(f"X must have shape (N, D), got {tuple(X.shape)}")
    X = X.double()
    n = len(X)
    sigma = torch.randint(0, 2, (draws, n), generator=generator).double() * 2 - 1
    mc = (sigma @ X).norm(dim=1).mean().item() / n
    return mc, X.pow(2).sum().sqrt().item() / n


def two_layer_norm(W: torch.Tensor, b: torch.Tensor, a: torch.Tensor,
                   c: torch.Tensor) -> float:
    """``sum_j |a_j| ||(w_j, b_j)|| + |c|`` for ``f(x) = a^T relu(W x + b) + c``.

    Shapes: ``W (m, D)``, ``b (m,)``, ``a (m,)``, ``c ()`` or ``(1,)``. The
    output bias counts as one more unit whose input is the constant 1.
    """
    Wb = torch.cat([W.detach().double(), b.detach().double()[:, None]], 1)
    norm = (a.detach().double().abs() * Wb.norm(dim=1)).sum()
    return float(norm + c.detach().double().abs().sum())


def ramp_risk(margins: torch.Tensor, gamma: float) -> float:
    """Average of the ramp loss ``min(1, max(0, 1 - t / gamma))`` at margins ``t``.

    The ramp loss lies in [0, 1], is ``1/gamma``-Lipschitz, and is at least
    the 0-1 loss ``1[t <= 0]``. Shape: ``margins (N,)`` of ``y_i f(x_i)``.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    return float((1 - margins.double() / gamma).clamp(0, 1).mean())


def rademacher_margin_bound(margins: torch.Tensor, norm: float, rad_lin: float,
                            delta: float, *, grid: int = 40) -> tuple[float, float]:
    """Rademacher margin bound for the two-layer class of :func:`two_layer_norm`.

    With probability ``>= 1 - delta``, for every ``f`` with norm at most
    ``B`` and every margin ``gamma``, the 0-1 risk of ``sign f`` is at most
    ``ramp_risk(gamma) + 2 (2 B / gamma) rad_lin + 3 sqrt(log(2/delta') / (2n))``,
    where ``rad_lin`` is the Rademacher complexity of the unit linear class on
    the inputs ``(x, 1)`` (an upper bound such as the second value of
    :func:`rademacher_linear`). ``B`` is rounded up to ``2^k`` with ``k`` in a
    range of ``grid`` integers fixed in advance (``-grid/2 .. grid/2 - 1``),
    ``gamma = B 2^-j`` with ``j`` in ``0 .. grid - 1``, and the union bound
    over the ``grid^2`` pairs sets ``delta' = delta / grid^2``.
    Returns ``(bound, best_gamma)``.
    """
    n = len(margins)
    k = math.ceil(math.log2(norm))
    if not -(grid // 2) <= k < grid - grid // 2:
        raise ValueError(f"norm {norm} is outside the grid 2^{-(grid // 2)}.."
                         f"2^{grid - grid // 2 - 1} fixed in advance")
    B = 2.0 ** k
    d_each = delta / grid ** 2
    conf = 3 * math.sqrt(math.log(2 / d_each) / (2 * n))
    best = (math.inf, math.nan)
    for j in range(grid):                       # gamma = B 2^{-j}
        gamma = B * 2.0 ** -j
        value = ramp_risk(margins, gamma) + 4 * B * rad_lin / gamma + conf
        best = min(best, (value, gamma))
    return best


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
    """Pinsker relaxation ``R_hat + sqrt(rhs / 2)`` of the PAC-Bayes-kl bound.

    ``rhs`` is Maurer's ``(KL + log(2 sqrt(n) / delta)) / n``; McAllester's
    original (1999) bound has a different logarithmic term.
    """
    rhs = (kl + math.log(2 * math.sqrt(n) / delta)) / n
    return emp_risk + math.sqrt(rhs / 2)


def sample_convergence_bound(emp: float, m: int, delta: float) -> float:
    """Upper bound on ``R_hat(Q)`` from ``m`` Monte Carlo draws of ``Q``.

    Langford and Caruana (2001): with probability ``>= 1 - delta``,
    ``R_hat(Q) <= kl^{-1}(emp, log(2 / delta) / m)``.
    """
    return kl_inverse(emp, math.log(2 / delta) / m)


def effective_ranks(eigenvalues: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Effective ranks ``r_k`` and ``R_k`` of a covariance (Bartlett et al., 2020).

    For eigenvalues ``l_1 >= l_2 >= ...`` (sorted here), with tail sums
    ``T_k = sum_{i > k} l_i``: ``r_k = T_k / l_{k+1}`` and
    ``R_k = T_k^2 / sum_{i > k} l_i^2``, for ``k = 0 .. len - 1``.
    Shape: ``(P,)`` -> two tensors of shape ``(P,)``.
    """
    lam = eigenvalues.double().sort(descending=True).values
    if lam.ndim != 1 or (lam < 0).any():
        raise ValueError("eigenvalues must be a 1-D tensor of non-negative numbers")
    tail = lam.flip(0).cumsum(0).flip(0)          # T_k = sum_{i >= k+1} l_i
    tail2 = lam.pow(2).flip(0).cumsum(0).flip(0)
    return tail / lam, tail ** 2 / tail2
