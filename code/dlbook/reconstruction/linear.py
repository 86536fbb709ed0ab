"""PCA from the SVD and the linear autoencoder (chapter: reconstruction).

The linear autoencoder ``x -> A B x`` is the subject of the theorem of Baldi
and Hornik (1989): its critical points with ``A`` of full rank are the
projections onto spans of eigenvectors of the covariance, and only the top
``k`` eigenvectors give a minimum. The functions here build those critical
points, measure principal angles, and compute PCA directly from the SVD.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["PCAResult", "pca", "principal_angles", "LinearAutoencoder",
           "reconstruction_error", "critical_point", "autoencoder_loss"]


def _check_matrix(name: str, X: torch.Tensor) -> None:
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"{name} must be (N, D) with N >= 2, got "
                         f"{tuple(X.shape)}")


@dataclass(frozen=True)
class PCAResult:
    """Principal components of a data matrix.

    ``components (k, D)`` has orthonormal rows, ordered by decreasing
    ``explained_variance (k,)`` (the eigenvalues of the covariance with the
    unbiased ``1/(N-1)`` normalization, as in scikit-learn); ``mean (D,)``.
    """

    components: torch.Tensor
    explained_variance: torch.Tensor
    mean: torch.Tensor

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """Codes ``(X - mean) V^T``. Shape: ``(N, D) -> (N, k)``."""
        return (X - self.mean) @ self.components.T

    def inverse_transform(self, Z: torch.Tensor) -> torch.Tensor:
        """Reconstructions ``Z V + mean``. Shape: ``(N, k) -> (N, D)``."""
        return Z @ self.components + self.mean


def pca(X: torch.Tensor, n_components: int) -> PCAResult:
    """Principal component analysis of ``X`` by the thin SVD of ``X - mean``.

    Signs follow scikit-learn's convention (the entry of largest absolute
    value of each component is positive) so that components can be compared
    directly. Shape: ``X (N, D)``; ``1 <= n_components <= min(N, D)``.
    """
    _check_matrix("X", X)
    n, d = X.shape
    if not 1 <= n_components <= min(n, d):
        raise ValueError(f"n_components must lie in [1, {min(n, d)}], got "
                         f"{n_components}")
    mean = X.mean(dim=0)
    _, s, Vh = torch.linalg.svd(X - mean, full_matrices=False)
    V = Vh[:n_components]
    idx = V.abs().argmax(dim=1)
    signs = torch.sign(V[torch.arange(n_components), idx])
    V = V * signs[:, None]
    return PCAResult(V, s[:n_components] ** 2 / (n - 1), mean)


def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, increasing) between ``span(A)`` and
    ``span(B)``, the columns of ``A (D, k)`` and ``B (D, l)``.

    The cosines are the singular values of ``Q_A^T Q_B`` for orthonormal
    bases ``Q`` (Björck and Golub, 1973). Shape: ``(min(k, l),)``.
    """
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise ValueError(f"A and B must be (D, k) and (D, l), got "
                         f"{tuple(A.shape)} and {tuple(B.shape)}")
    qa, _ = torch.linalg.qr(A)
    qb, _ = torch.linalg.qr(B)
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)
    return torch.arccos(cos)  # cosines decrease, so angles increase


class LinearAutoencoder(nn.Module):
    """``x -> decoder(encoder(x))`` with two bias-free linear maps.

    ``encoder.weight`` is ``B (k, D)`` and ``decoder.weight`` is ``A (D, k)``
    in PyTorch's ``(out, in)`` layout; inputs are assumed centred.
    Shape: ``(N, D) -> (N, D)``; ``encode``: ``(N, D) -> (N, k)``.
    """

    def __init__(self, in_features: int, code_features: int, *,
                 generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if not 1 <= code_features <= in_features:
            raise ValueError(f"code_features must lie in [1, {in_features}], "
                             f"got {code_features}")
        self.encoder = nn.Linear(in_features, code_features, bias=False,
                                 dtype=dtype)
        self.decoder = nn.Linear(code_features, in_features, bias=False,
                                 dtype=dtype)
        std = in_features ** -0.5  # a small random start, away from A = B = 0
        with torch.no_grad():
            for lin in (self.encoder, self.decoder):
                lin.weight.copy_(std * torch.randn(lin.weight.shape,
                                                   generator=generator,
                                                   dtype=dtype))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code ``B x``. Shape: ``(N, D) -> (N, k)``."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``A B x``. Shape: ``(N, D) -> (N, D)``."""
        return self.decoder(self.encoder(x))


def reconstruction_error(X: torch.Tensor, X_hat: torch.Tensor) -> float:
    """Mean squared error per example, ``(1/N) sum_i ||x_i - x_hat_i||^2``."""
    if X.shape != X_hat.shape:
        raise ValueError(f"shapes differ: {tuple(X.shape)} and "
                         f"{tuple(X_hat.shape)}")
    return float(((X - X_hat) ** 2).sum(dim=1).mean())


def autoencoder_loss(A: torch.Tensor, B: torch.Tensor,
                     Sigma: torch.Tensor) -> torch.Tensor:
    """The population loss ``tr((I - AB) Sigma (I - AB)^T)`` of the linear
    autoencoder, i.e. ``E ||x - A B x||^2`` for centred ``x`` with covariance
    ``Sigma``. Shapes: ``A (D, k)``, ``B (k, D)``, ``Sigma (D, D)``.
    """
    R = torch.eye(Sigma.shape[0], dtype=Sigma.dtype) - A @ B
    return torch.trace(R @ Sigma @ R.T)


def critical_point(Sigma: torch.Tensor, subset: Sequence[int],
                   C: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The critical point ``A = U_I C``, ``B = C^{-1} U_I^T`` of
    :func:`autoencoder_loss` for the eigenvectors ``U_I`` of ``Sigma``
    indexed by ``subset`` (0 = largest eigenvalue) and an invertible
    ``C (k, k)`` (identity by default). Returns ``(A (D, k), B (k, D))``.
    """
    lam, U = torch.linalg.eigh(Sigma)
    U = U.flip(1)  # decreasing eigenvalues
    idx = list(subset)
    if len(set(idx)) != len(idx) or not all(0 <= i < len(lam) for i in idx):
        raise ValueError(f"subset must hold distinct indices in "
                         f"[0, {len(lam)}), got {idx}")
    U_I = U[:, idx]
    C = torch.eye(len(idx), dtype=Sigma.dtype) if C is None else C
    return U_I @ C, torch.linalg.inv(C) @ U_I.T
