"""Random features, min-norm least squares and double descent.

Chapter: generalization. A two-layer network whose first layer is frozen at
random is a linear model in its ``m`` random features; fitting the second
layer by minimum-norm least squares exposes the double-descent curve of
Belkin et al. (2019), with its peak at the interpolation threshold ``m = n``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlbook.nn import mlp

__all__ = ["random_relu_features", "min_norm_lstsq", "ridge",
           "DoubleDescentResult", "double_descent", "WidthSweepResult",
           "width_sweep"]


def random_relu_features(
    X: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
) -> torch.Tensor:
    """ReLU random features ``relu(X W^T + b) / sqrt(m)``.

    Shapes: ``X (N, D)``, ``W (m, D)``, ``b (m,)`` -> ``(N, m)``. The
    ``1/sqrt(m)`` keeps the feature Gram matrix of order one as ``m`` grows.
    """
    if X.ndim != 2 or W.ndim != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(
            f"X (N, D) and W (m, D) must agree in D, got {tuple(X.shape)}, "
            f"{tuple(W.shape)}")
    return torch.relu(X @ W.T + b) / W.shape[0] ** 0.5


def _gram_eig(Phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Eigen-pairs of the smaller Gram matrix of ``Phi`` (``N x N`` or ``m x m``)."""
    wide = Phi.shape[1] >= Phi.shape[0]
    G = Phi @ Phi.T if wide else Phi.T @ Phi
    evals, evecs = torch.linalg.eigh(G)
    return evals.clamp_min(0.0), evecs, wide


def min_norm_lstsq(
    Phi: torch.Tensor, Y: torch.Tensor, rcond: float = 1e-6,
) -> torch.Tensor:
    """The minimum-norm minimizer of ``||Phi w - Y||^2`` (eq. min-norm).

    Shapes: ``Phi (N, m)``, ``Y (N,)`` or ``(N, C)`` -> ``w (m,)`` or
    ``(m, C)``. Works in the eigenbasis of the smaller Gram matrix, whose
    eigenvalues are the squared singular values ``s^2`` of ``Phi``; those
    below ``(rcond * s_max)^2`` are treated as zero (squaring costs
    precision, so ``rcond`` cannot go much below ``1e-7`` in float64).
    For ``m >= N`` this is ``Phi^T (Phi Phi^T)^+ Y``, for ``m < N`` it is
    ``(Phi^T Phi)^+ Phi^T Y``.
    """
    return _min_norm_from_eig(Phi, Y, _gram_eig(Phi), rcond)


def _min_norm_from_eig(Phi: torch.Tensor, Y: torch.Tensor, eig, rcond: float
                       ) -> torch.Tensor:
    evals, V, wide = eig
    keep = evals > (rcond ** 2) * evals.max()
    V, inv = V[:, keep], 1.0 / evals[keep]
    Y2 = Y.reshape(len(Y), -1)
    if wide:
        w = Phi.T @ (V @ (inv[:, None] * (V.T @ Y2)))
    else:
        w = V @ (inv[:, None] * (V.T @ (Phi.T @ Y2)))
    return w.reshape(Phi.shape[1], *Y.shape[1:])


def ridge(Phi: torch.Tensor, Y: torch.Tensor, lam: float) -> torch.Tensor:
    """Ridge solution ``argmin ||Phi w - Y||^2 + lam ||w||^2`` (``lam > 0``).

    Solved in whichever of the ``m x m`` or ``N x N`` systems is smaller.
    """
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    n, m = Phi.shape
    if m <= n:
        A = Phi.T @ Phi + lam * torch.eye(m, dtype=Phi.dtype)
        return torch.linalg.solve(A, Phi.T @ Y)
    A = Phi @ Phi.T + lam * torch.eye(n, dtype=Phi.dtype)
    return Phi.T @ torch.linalg.solve(A, Y)


@dataclass(frozen=True)
class DoubleDescentResult:
    """Test errors (median over feature draws) for each number of features.

    All arrays have shape ``(len(widths),)``: test mean squared error
    ``test_mse``, classification error ``test_err``, ``train_mse``, the
    smallest singular value ``sigma_min`` of the training feature matrix
    and the norm of the fitted weights ``norm``.
    """

    widths: np.ndarray
    test_mse: np.ndarray
    test_err: np.ndarray
    train_mse: np.ndarray
    sigma_min: np.ndarray
    norm: np.ndarray


def double_descent(
    X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor, y_test: torch.Tensor,
    widths: list[int], *, num_classes: int, lam: float = 0.0, seeds: int = 5,
    seed: int = 0,
) -> DoubleDescentResult:
    """Sweep the number of random ReLU features ``m`` and fit the top layer.

    Shapes: ``X (N, D)``, ``y (N,)`` integer labels, regressed as one-hot
    targets. ``lam = 0`` uses :func:`min_norm_lstsq`, otherwise
    :func:`ridge`. Each ``m`` takes the median over ``seeds`` feature draws
    (a mean would be ruled by the rare draw that is almost singular).
    """
    mean = X.double().mean(0)  # centred pixels: no feature is dead on all data
    X, X_test = X.double() - mean, X_test.double() - mean
    Y = torch.eye(num_classes, dtype=X.dtype)[y]
    Y_test = torch.eye(num_classes, dtype=X.dtype)[y_test]
    g = torch.Generator().manual_seed(seed)
    rows = []
    for m in widths:
        acc = []
        for _ in range(seeds):
            W = torch.randn(m, X.shape[1], generator=g, dtype=X.dtype)
            b = 0.5 * torch.randn(m, generator=g, dtype=X.dtype)
            W = W / X.shape[1] ** 0.5
            F = random_relu_features(X, W, b)
            F_test = random_relu_features(X_test, W, b)
            eig = _gram_eig(F)
            w = _min_norm_from_eig(F, Y, eig, 1e-6) if lam == 0 else ridge(F, Y, lam)
            out = F_test @ w
            s2 = eig[0]
            s2 = s2[s2 > 1e-12 * s2.max()]
            acc.append([((out - Y_test) ** 2).sum(1).mean().item(),
                        (out.argmax(1) != y_test).double().mean().item(),
                        ((F @ w - Y) ** 2).sum(1).mean().item(),
                        s2.min().sqrt().item(), w.norm().item()])
        rows.append(np.median(np.array(acc), axis=0))
    r = np.array(rows)
    return DoubleDescentResult(np.asarray(widths), *r.T)


@dataclass(frozen=True)
class WidthSweepResult:
    """Median over seeds, per hidden width: train and test MSE, parameters."""

    widths: np.ndarray
    n_params: np.ndarray
    train_mse: np.ndarray
    test_mse: np.ndarray


def _block_networks(X: torch.Tensor, widths: list[int], C: int, seed: int
                    ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Parameters of one ``mlp([D, m, C])`` per width, stacked side by side.

    Returns ``[W1 (M, D), b1 (M,), W2 (K C, M), b2 (K C,)]`` with
    ``M = sum(widths)`` and ``K = len(widths)``, and the 0/1 mask ``(K C, M)``
    that keeps ``W2`` block-diagonal (network ``k`` reads only its own units).
    """
    nets = [mlp([X.shape[1], m, C], generator=torch.Generator().manual_seed(seed))
            for m in widths]
    W1 = torch.cat([n[0].weight for n in nets])
    b1 = torch.cat([n[0].bias for n in nets])
    W2 = torch.block_diag(*[n[2].weight for n in nets])
    b2 = torch.cat([n[2].bias for n in nets])
    mask = torch.block_diag(*[torch.ones(C, m) for m in widths])
    return [p.detach().clone().requires_grad_(True) for p in (W1, b1, W2, b2)], mask


def width_sweep(
    X: torch.Tensor, Y: torch.Tensor, X_test: torch.Tensor, Y_test: torch.Tensor,
    widths: list[int], *, steps: int = 1000, lr: float = 1e-2, seeds: int = 2,
) -> WidthSweepResult:
    """Train one-hidden-layer ReLU networks of several widths (both layers).

    Full-batch Adam on the squared error ``sum_k (f_k(x) - Y_k)^2`` averaged
    over examples, from PyTorch's default initialization (seeded ``0..seeds-1``).
    All widths train at once, as one wide network whose second layer is
    block-diagonal: the summed loss gives each network the gradient of its own
    loss, and Adam acts coordinate by coordinate (off-block weights get zero
    gradients and stay zero), so this is training them one by one, in one pass
    per step instead of one per width.
    Shapes: ``X (N, D)``, ``Y (N, C)`` targets (e.g. one-hot).
    """
    K, C = len(widths), Y.shape[1]

    def errors(params, mask, Xe, Ye):
        W1, b1, W2, b2 = params
        out = torch.relu(Xe @ W1.T + b1) @ (W2 * mask).T + b2    # (N, K C)
        return ((out.reshape(-1, K, C) - Ye[:, None, :]) ** 2).sum(2).mean(0)

    runs = []
    for seed in range(seeds):
        params, mask = _block_networks(X, widths, C, seed)
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            errors(params, mask, X, Y).sum().backward()
            opt.step()
        with torch.no_grad():
            runs.append(torch.stack([errors(params, mask, X, Y),
                                     errors(params, mask, X_test, Y_test)], 1))
    r = np.median(torch.stack(runs).numpy(), axis=0)
    n_params = np.array([m * (X.shape[1] + 1) + (m + 1) * C for m in widths])
    return WidthSweepResult(np.asarray(widths), n_params, r[:, 0], r[:, 1])
