"""Stability of SGD (chapter optimization-theory).

Two notions. *Linear (dynamical) stability*: near a global minimum of
interpolating least squares, SGD's error ``e = w - w*`` obeys the random
linear recursion ``e <- (I - lr H_B) e``; it is stable in mean square when
the spectral radius of the second-moment operator is below one.
*Algorithmic stability* (Hardt, Recht and Singer 2016): how far SGD's output
moves when one training example is replaced.
"""
from __future__ import annotations

import torch

__all__ = ["second_moment_operator", "mean_square_rate", "max_stable_lr",
           "random_batches", "sgd_error_paths", "empirical_max_stable_lr",
           "logistic_sgd_pair"]


def _check_X(X: torch.Tensor) -> None:
    if X.dim() != 2 or len(X) < 1:
        raise ValueError(f"X must have shape (n, d), got {tuple(X.shape)}")


def _check_batch(batch_size: int, n: int) -> None:
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}], got {batch_size}")


def second_moment_operator(X: torch.Tensor, lr: float,
                           batch_size: int) -> torch.Tensor:
    """Matrix of ``M -> E[(I - lr H_B) M (I - lr H_B)]``, acting on vec(M).

    ``H_B = X_B^T X_B / B`` for a batch of ``B`` rows drawn without
    replacement. With ``A_i = x_i x_i^T``, ``H = mean A_i`` and
    ``S = mean A_i (x) A_i``: ``E[H_B (x) H_B] = c S + (1 - c) H (x) H``,
    ``c = (n - B) / (B (n - 1))``. Shape: ``X`` is ``(n, d)``; result
    ``(d^2, d^2)``.
    """
    _check_X(X)
    n, d = X.shape
    _check_batch(batch_size, n)
    H = X.T @ X / n
    A = torch.einsum("ni,nj->nij", X, X)
    S = torch.einsum("nij,nkl->ikjl", A, A).reshape(d * d, d * d) / n
    HH = torch.kron(H, H)
    c = (n - batch_size) / (batch_size * (n - 1)) if n > 1 else 0.0
    eye = torch.eye(d, dtype=X.dtype)
    I2 = torch.eye(d * d, dtype=X.dtype)
    first = torch.kron(H, eye) + torch.kron(eye, H)
    return I2 - lr * first + lr ** 2 * (c * S + (1 - c) * HH)


def mean_square_rate(X: torch.Tensor, lr: float, batch_size: int) -> float:
    """Spectral radius of :func:`second_moment_operator`: the factor by
    which ``E ||e||^2`` is eventually multiplied per step."""
    T = second_moment_operator(X, lr, batch_size)
    return float(torch.linalg.eigvals(T).abs().max())


def max_stable_lr(X: torch.Tensor, batch_size: int, tol: float = 1e-6) -> float:
    """Largest learning rate at which SGD is mean-square stable, by bisection.

    Mean stability forces ``lr < 2 / lambda_max(H)`` (the full-batch limit),
    so the search runs over ``(0, 2 / lambda_max(H)]``.
    """
    _check_X(X)
    H = X.T @ X / len(X)
    lo, hi = 0.0, 2.0 / float(torch.linalg.eigvalsh(H)[-1])
    while hi - lo > tol * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_square_rate(X, mid, batch_size) < 1 else (lo, mid)
    return lo


def random_batches(n: int, batch_size: int, steps: int, runs: int, *,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of batches drawn without replacement, independently per step
    and run: the ``batch_size`` largest of ``n`` uniforms form a uniformly
    random subset. Shape: ``(steps, runs, batch_size)``."""
    _check_batch(batch_size, n)
    u = torch.rand(steps, runs, n, generator=generator)
    return u.topk(batch_size, dim=-1).indices


def _error_paths(X: torch.Tensor, lr: float, idx: torch.Tensor) -> torch.Tensor:
    steps, runs, batch_size = idx.shape
    d = X.shape[1]
    E = torch.full((runs, d, 1), d ** -0.5, dtype=X.dtype)  # unit e_0
    out = torch.empty(runs, steps + 1, dtype=X.dtype)
    out[:, 0] = 1.0
    for t in range(steps):
        Xb = X[idx[t]]                                # (runs, B, d)
        r = torch.bmm(Xb, E)                          # residuals x_i^T e
        E = E - lr / batch_size * torch.bmm(Xb.transpose(1, 2), r)
        out[:, t + 1] = (E ** 2).sum((1, 2))
    return out


def sgd_error_paths(X: torch.Tensor, lr: float, batch_size: int, steps: int,
                    runs: int, *, generator: torch.Generator | None = None
                    ) -> torch.Tensor:
    """Squared error ``||e_t||^2`` of ``runs`` independent SGD runs on
    interpolating least squares, eq. (linear) of the chapter.

    Every run starts from the unit vector ``e_0 = (1, ..., 1) / sqrt(d)`` and
    draws its own batches without replacement. Shape: ``(runs, steps + 1)``.
    """
    _check_X(X)
    idx = random_batches(len(X), batch_size, steps, runs, generator=generator)
    return _error_paths(X, lr, idx)


def empirical_max_stable_lr(X: torch.Tensor, batch_size: int, *, steps: int,
                            runs: int, seed: int = 0, rounds: int = 10) -> float:
    """Largest lr whose measured ``mean_r ||e_T||^2`` stays below ``||e_0||^2``.

    Bisection over ``(0, 2 / lambda_max(H)]`` with the same random batches
    (seed ``seed``) at every candidate, ``rounds`` halvings.
    """
    _check_X(X)
    idx = random_batches(len(X), batch_size, steps, runs,
                         generator=torch.Generator().manual_seed(seed))
    H = X.T @ X / len(X)
    lo, hi = 0.0, 2.0 / float(torch.linalg.eigvalsh(H)[-1])
    for _ in range(rounds):
        mid = (lo + hi) / 2
        grew = _error_paths(X, mid, idx)[:, -1].mean() >= 1.0
        lo, hi = (lo, mid) if grew else (mid, hi)
    return lo


def logistic_sgd_pair(X: torch.Tensor, y: torch.Tensor, X2: torch.Tensor,
                      y2: torch.Tensor, *, lr: float, steps: int, runs: int,
                      generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SGD on logistic loss on two data sets, with shared random indices.

    Loss ``log(1 + exp(-y w^T x))``, labels in ``{-1, +1}``, ``w_0 = 0``; at
    each step both runs use the same uniformly drawn index (sampling with
    replacement), as in Hardt, Recht and Singer (2016). Shapes: ``X, X2`` are
    ``(n, d)``, ``y, y2`` are ``(n,)``. Returns the final weights ``(W, W2)``,
    each ``(runs, d)``, and the gaps ``||w_t - w'_t||``, ``(runs, steps + 1)``.
    """
    if X.shape != X2.shape or y.shape != y2.shape or y.shape != X.shape[:1]:
        raise ValueError("the two data sets must have matching shapes (n, d), (n,)")
    if lr <= 0 or steps < 0 or runs < 1:
        raise ValueError(f"need lr > 0, steps >= 0, runs >= 1; got {lr}, {steps}, "
                         f"{runs}")
    n, d = X.shape
    W = torch.zeros(runs, d, dtype=X.dtype)
    W2 = torch.zeros(runs, d, dtype=X.dtype)
    gaps = torch.zeros(runs, steps + 1, dtype=X.dtype)
    for t in range(steps):
        i = torch.randint(n, (runs,), generator=generator)
        for w, A, b in ((W, X, y), (W2, X2, y2)):
            xb, yb = A[i], b[i]
            margin = yb * (w * xb).sum(1)
            w -= lr * (-(yb * torch.sigmoid(-margin))[:, None] * xb)
        gaps[:, t + 1] = (W - W2).norm(dim=1)
    return W, W2, gaps
