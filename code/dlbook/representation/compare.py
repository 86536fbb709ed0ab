"""Comparing representations (chapter: the theory of representations).

Similarity indices between two representations of the same ``n`` examples,
``X`` of shape ``(n, p1)`` and ``Y`` of shape ``(n, p2)``: linear and kernel
CKA (Kornblith et al., 2019) with the HSIC they normalize (Gretton et al.,
2005), the mean squared canonical correlation, two unnormalised alternatives
that lack CKA's invariances, and the mutual nearest-neighbour alignment of
Huh et al. (2024).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["gram_linear", "gram_rbf", "center_gram", "hsic", "hsic_unbiased",
           "cka", "linear_cka", "debiased_linear_cka", "cka_matrix",
           "cca_similarity", "cca_matrix", "linear_hsic",
           "matched_correlation", "knn_indices", "mutual_knn_alignment"]


def _check_pair(X: torch.Tensor, Y: torch.Tensor) -> None:
    for name, A in (("X", X), ("Y", Y)):
        if A.ndim != 2:
            raise ValueError(f"{name} must have shape (n, p), got {tuple(A.shape)}")
    if X.shape[0] != Y.shape[0]:
        raise ValueError("X and Y must describe the same examples: got "
                         f"{X.shape[0]} and {Y.shape[0]} rows")
    if X.shape[0] < 3:
        raise ValueError(f"need at least 3 examples, got {X.shape[0]}")


def _centered(X: torch.Tensor) -> torch.Tensor:
    """Subtract the column means. Shape: ``(n, p) -> (n, p)``."""
    return X - X.mean(dim=0, keepdim=True)


def gram_linear(X: torch.Tensor) -> torch.Tensor:
    """The linear kernel matrix ``X X^T``. Shape: ``(n, p) -> (n, n)``."""
    return X @ X.T


def gram_rbf(X: torch.Tensor, sigma_fraction: float = 1.0) -> torch.Tensor:
    """The Gaussian kernel ``exp(-|x_i - x_j|^2 / (2 s^2))``. Shape: ``(n, n)``.

    The bandwidth ``s`` is ``sigma_fraction`` times the median distance
    between distinct examples, Kornblith et al.'s choice, which makes the
    kernel (and kernel CKA) invariant to isotropic scaling of ``X``.
    """
    if sigma_fraction <= 0:
        raise ValueError(f"sigma_fraction must be positive, got {sigma_fraction}")
    sq = torch.cdist(X, X).square()
    i, j = torch.triu_indices(len(X), len(X), offset=1)
    median = torch.quantile(sq[i, j].sqrt(), 0.5)  # over distinct pairs
    s2 = (sigma_fraction * median) ** 2
    return torch.exp(-sq / (2 * s2))


def center_gram(K: torch.Tensor) -> torch.Tensor:
    """``H K H`` with the centring matrix ``H = I - 11^T/n``. Shape: ``(n, n)``."""
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be square, got shape {tuple(K.shape)}")
    K = K - K.mean(dim=0, keepdim=True)
    return K - K.mean(dim=1, keepdim=True)


def hsic(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """The biased HSIC estimator ``tr(K H L H) / (n - 1)^2`` (a scalar)."""
    if K.shape != L.shape:
        raise ValueError(f"K and L must have one shape, got {tuple(K.shape)} "
                         f"and {tuple(L.shape)}")
    n = K.shape[0]
    return (center_gram(K) * center_gram(L)).sum() / (n - 1) ** 2


def hsic_unbiased(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """The unbiased HSIC estimator of Song et al. (2012) (a scalar).

    With ``K~``, ``L~`` the kernel matrices with their diagonals set to zero,
    ``[tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))``,
    the U-statistic whose expectation is the population HSIC; it is about 0
    for independent representations, where the biased estimator is positive.
    Shapes: ``K``, ``L`` ``(n, n)`` with ``n >= 4``.
    """
    if K.shape != L.shape or K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K and L must be square of one shape, got "
                         f"{tuple(K.shape)} and {tuple(L.shape)}")
    n = K.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs n >= 4 examples, got {n}")
    K, L = K - torch.diag(K.diagonal()), L - torch.diag(L.diagonal())
    one_K, one_L = K.sum(0), L.sum(0)  # 1'K~ and 1'L~, shape (n,)
    total = ((K * L).sum() + K.sum() * L.sum() / ((n - 1) * (n - 2))
             - 2 / (n - 2) * one_K @ one_L)
    return total / (n * (n - 3))


def debiased_linear_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Linear CKA with the unbiased HSIC of :func:`hsic_unbiased`.

    Near 0 for independent representations even when the width is comparable
    to ``n``, where :func:`linear_cka` is biased upwards; it can be slightly
    negative. Shapes: ``X (n, p1)``, ``Y (n, p2)`` with ``n >= 4``.
    """
    _check_pair(X, Y)
    K, L = gram_linear(_centered(X)), gram_linear(_centered(Y))
    kl, kk, ll = hsic_unbiased(K, L), hsic_unbiased(K, K), hsic_unbiased(L, L)
    return (kl / (kk * ll).sqrt()).item()


def cka(X: torch.Tensor, Y: torch.Tensor, kernel: str = "linear",
        sigma_fraction: float = 1.0) -> float:
    """Centred kernel alignment ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``.

    ``kernel`` is ``"linear"`` or ``"rbf"`` (see :func:`gram_rbf`), for both
    representations. Shapes: ``X (n, p1)``, ``Y (n, p2)``; returns a number in
    ``[0, 1]``.
    """
    _check_pair(X, Y)
    grams = {"linear": gram_linear,
             "rbf": lambda A: gram_rbf(A, sigma_fraction)}
    if kernel not in grams:
        raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}")
    K, L = grams[kernel](X), grams[kernel](Y)
    return (hsic(K, L) / (hsic(K, K) * hsic(L, L)).sqrt()).item()


def linear_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Linear CKA in feature space, ``|Y^T X|_F^2 / (|X^T X|_F |Y^T Y|_F)``.

    The columns are centred first. Equal to ``cka(X, Y, "linear")`` but costs
    ``O(n p1 p2)`` instead of ``O(n^2 p)``. Shapes: ``X (n, p1)``, ``Y (n, p2)``.
    """
    _check_pair(X, Y)
    X, Y = _centered(X), _centered(Y)
    num = torch.linalg.matrix_norm(Y.T @ X).square()
    den = torch.linalg.matrix_norm(X.T @ X) * torch.linalg.matrix_norm(Y.T @ Y)
    return (num / den).item()


def cka_matrix(reps_a: Sequence[torch.Tensor],
               reps_b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Linear CKA between every pair of layers. Shape: ``(len(a), len(b))``."""
    return torch.tensor([[linear_cka(A, B) for B in reps_b] for A in reps_a])


def _orthonormal_basis(X: torch.Tensor, rtol: float) -> torch.Tensor:
    """An orthonormal basis of the column space of the centred ``X``."""
    U, S, _ = torch.linalg.svd(_centered(X), full_matrices=False)
    return U[:, S > rtol * S[0]]


def cca_similarity(X: torch.Tensor, Y: torch.Tensor,
                   rtol: float = 1e-6) -> float:
    """Mean squared canonical correlation ``|Q_Y^T Q_X|_F^2 / min(p1, p2)``.

    ``Q_X``, ``Q_Y`` are orthonormal bases of the centred column spaces (the
    ``R^2_CCA`` of Kornblith et al.); directions with singular value below
    ``rtol`` times the largest are dropped. Invariant to any invertible linear
    map of either representation.
    """
    _check_pair(X, Y)
    Qx, Qy = _orthonormal_basis(X, rtol), _orthonormal_basis(Y, rtol)
    p = min(Qx.shape[1], Qy.shape[1])
    return (torch.linalg.matrix_norm(Qy.T @ Qx).square() / p).item()


def cca_matrix(reps_a: Sequence[torch.Tensor], reps_b: Sequence[torch.Tensor],
               rtol: float = 1e-6) -> torch.Tensor:
    """:func:`cca_similarity` between every pair of layers, one SVD per layer.

    Shape: ``(len(reps_a), len(reps_b))``.
    """
    for A in (*reps_a, *reps_b):
        _check_pair(A, reps_a[0])
    Qa = [_orthonormal_basis(A, rtol) for A in reps_a]
    Qb = [_orthonormal_basis(B, rtol) for B in reps_b]
    return torch.tensor([[(torch.linalg.matrix_norm(qb.T @ qa).square()
                           / min(qa.shape[1], qb.shape[1])).item()
                          for qb in Qb] for qa in Qa], dtype=torch.float64)


def linear_hsic(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Unnormalised linear HSIC ``|Y^T X|_F^2 / (n - 1)^2`` of centred data."""
    _check_pair(X, Y)
    X, Y = _centered(X), _centered(Y)
    return (torch.linalg.matrix_norm(Y.T @ X).square() / (len(X) - 1) ** 2).item()


def matched_correlation(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Mean Pearson correlation of matching coordinates ``X[:, j]``, ``Y[:, j]``.

    A naive index that assumes unit ``j`` of one network plays the role of unit
    ``j`` of the other. Shapes: ``X`` and ``Y`` both ``(n, p)``.
    """
    _check_pair(X, Y)
    if X.shape != Y.shape:
        raise ValueError(f"X and Y must have one shape, got {tuple(X.shape)} "
                         f"and {tuple(Y.shape)}")
    X, Y = _centered(X), _centered(Y)
    num = (X * Y).sum(0)
    den = (X.norm(dim=0) * Y.norm(dim=0)).clamp_min(1e-12)
    return (num / den).mean().item()


def knn_indices(X: torch.Tensor, k: int, metric: str = "cosine") -> torch.Tensor:
    """The ``k`` nearest other examples of every example. Shape: ``(n, k)``.

    ``metric`` is ``"cosine"`` (largest inner product of unit vectors, as in
    Huh et al., 2024) or ``"euclidean"``. An example is never its own
    neighbour.
    """
    if not 1 <= k < X.shape[0]:
        raise ValueError(f"k must be in [1, n-1] = [1, {X.shape[0] - 1}], got {k}")
    if metric == "cosine":
        Z = X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)
        D = -(Z @ Z.T)
    elif metric == "euclidean":
        D = torch.cdist(X, X)
    else:
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    D = D.clone()
    D.fill_diagonal_(float("inf"))
    return D.topk(k, dim=1, largest=False).indices


def mutual_knn_alignment(X: torch.Tensor, Y: torch.Tensor, k: int = 10,
                         metric: str = "cosine") -> float:
    """Mean fraction of shared ``k``-nearest neighbours of each example.

    ``(1/n) sum_i |N_X(i) & N_Y(i)| / k`` with ``N_X(i)`` the neighbours of
    example ``i`` in ``X`` (:func:`knn_indices`). It is 1 when the two spaces
    agree on every neighbourhood and ``k / (n - 1)`` in expectation when the
    rows of ``Y`` are randomly permuted. Shapes: ``X (n, p1)``, ``Y (n, p2)``.
    """
    _check_pair(X, Y)
    n = X.shape[0]
    A = torch.zeros(n, n, dtype=torch.bool)
    B = torch.zeros(n, n, dtype=torch.bool)
    A.scatter_(1, knn_indices(X, k, metric), True)
    B.scatter_(1, knn_indices(Y, k, metric), True)
    return ((A & B).sum(1).double() / k).mean().item()
