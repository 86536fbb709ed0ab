"""What makes a representation good (chapter: the theory of representations).

Measurements of a representation ``Z`` of shape ``(n, p)``: its effective rank
(Roy and Vetterli, 2007), the accuracy of a linear probe, the invariance to a
transformation of the input, and a correlation version of the mutual
information gap of Chen et al. (2018) as a score of disentanglement. Also the
helpers that produce representations: the hidden layers of an MLP and a PCA
embedding.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["effective_rank", "ridge_probe", "probe_accuracy",
           "balanced_subset", "invariance_score", "correlation_gap",
           "hidden_representations", "pca_embedding"]


def _check_matrix(name: str, Z: torch.Tensor) -> None:
    if Z.ndim != 2 or Z.shape[0] < 2:
        raise ValueError(f"{name} must have shape (n, p) with n >= 2, "
                         f"got {tuple(Z.shape)}")


def effective_rank(Z: torch.Tensor, center: bool = False) -> float:
    """``exp(H(p))`` with ``p_i = s_i / sum_j s_j`` the normalized singular values.

    Roy and Vetterli's effective rank, the measure of Huh et al. (2023): it
    lies between 1 and ``rank(Z)`` and equals ``r`` when ``Z`` has ``r`` equal
    non-zero singular values. ``center`` subtracts the column means first.
    Shape: ``(n, p)``.
    """
    _check_matrix("Z", Z)
    Z = Z - Z.mean(0, keepdim=True) if center else Z
    s = torch.linalg.svdvals(Z.double())
    if s.sum() <= 0:
        raise ValueError("Z is zero: its effective rank is undefined")
    p = s / s.sum()
    p = p[p > 0]
    return torch.exp(-(p * p.log()).sum()).item()


def ridge_probe(Z: torch.Tensor, y: torch.Tensor, num_classes: int,
                lam: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares linear probe on one-hot targets with ridge penalty ``lam``.

    Minimizes ``|Z W^T + b - Y|_F^2 + lam n |W|_F^2`` in closed form (the
    intercept is not penalized). Shapes: ``Z (n, p)``, ``y (n,)``; returns
    ``W (C, p)`` and ``b (C,)``, PyTorch's ``Linear`` layout.
    """
    _check_matrix("Z", Z)
    if y.shape != (Z.shape[0],):
        raise ValueError(f"y must have shape ({Z.shape[0]},), got {tuple(y.shape)}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    Z = Z.double()
    Y = nn.functional.one_hot(y, num_classes).double()
    mu_z, mu_y = Z.mean(0), Y.mean(0)
    Zc, Yc = Z - mu_z, Y - mu_y
    A = Zc.T @ Zc + lam * len(Z) * torch.eye(Z.shape[1], dtype=Z.dtype)
    W = torch.linalg.lstsq(A, Zc.T @ Yc).solution.T
    return W, mu_y - W @ mu_z


def probe_accuracy(Z_train: torch.Tensor, y_train: torch.Tensor,
                   Z_test: torch.Tensor, y_test: torch.Tensor,
                   num_classes: int = 10, lam: float = 1e-3) -> float:
    """Test accuracy of :func:`ridge_probe` fitted on the training pair."""
    W, b = ridge_probe(Z_train, y_train, num_classes, lam)
    pred = (Z_test.double() @ W.T + b).argmax(1)
    return (pred == y_test).double().mean().item()


def balanced_subset(y: torch.Tensor, per_class: int,
                    generator: torch.Generator) -> torch.Tensor:
    """Indices of ``per_class`` random examples of every class. Shape: ``(C k,)``."""
    idx = []
    for c in torch.unique(y):
        members = (y == c).nonzero().flatten()
        if len(members) < per_class:
            raise ValueError(f"class {int(c)} has {len(members)} examples, "
                             f"fewer than per_class={per_class}")
        perm = torch.randperm(len(members), generator=generator)
        idx.append(members[perm[:per_class]])
    return torch.cat(idx)


def invariance_score(Z: torch.Tensor, Z_moved: torch.Tensor,
                     generator: torch.Generator) -> float:
    """``1 - E|z(x) - z(t x)|^2 / E|z(x) - z(x')|^2`` for random pairs ``x, x'``.

    1 means the transformation ``t`` does not move the representation; 0 means
    it moves it as far as replacing the example by another one. ``Z[i]`` and
    ``Z_moved[i]`` represent ``x_i`` and ``t x_i``. Shapes: both ``(n, p)``.
    The score does not change when ``Z`` and ``Z_moved`` are scaled together.
    """
    _check_matrix("Z", Z)
    if Z_moved.shape != Z.shape:
        raise ValueError(f"Z_moved must have shape {tuple(Z.shape)}, "
                         f"got {tuple(Z_moved.shape)}")
    n = Z.shape[0]
    other = (torch.arange(n) + torch.randint(1, n, (n,), generator=generator)) % n
    moved = (Z - Z_moved).square().sum(1).mean()
    between = (Z - Z[other]).square().sum(1).mean()
    return (1 - moved / between).item()


def correlation_gap(Z: torch.Tensor, factors: torch.Tensor) -> float:
    """Mean over factors of the gap between the two largest ``|corr(z_i, v_j)|``.

    A correlation version of the mutual information gap (Chen et al., 2018):
    near 1 when each factor ``v_j`` is carried by one coordinate of ``Z``
    alone, near 0 when it is spread over several. Shapes: ``Z (n, p)`` with
    ``p >= 2``, ``factors (n, m)``.
    """
    _check_matrix("Z", Z)
    _check_matrix("factors", factors)
    if Z.shape[0] != factors.shape[0] or Z.shape[1] < 2:
        raise ValueError(f"need Z (n, p >= 2) and factors (n, m) on the same n, "
                         f"got {tuple(Z.shape)} and {tuple(factors.shape)}")
    Zc = Z.double() - Z.double().mean(0)
    Vc = factors.double() - factors.double().mean(0)
    Zc = Zc / Zc.norm(dim=0).clamp_min(1e-12)
    Vc = Vc / Vc.norm(dim=0).clamp_min(1e-12)
    corr = (Zc.T @ Vc).abs()  # (p, m)
    top2 = corr.topk(2, dim=0).values
    return (top2[0] - top2[1]).mean().item()


def hidden_representations(model: nn.Sequential, X: torch.Tensor,
                           include_output: bool = True) -> list[torch.Tensor]:
    """The output of every activation module of an MLP, and the logits.

    Runs ``model`` (a :func:`dlbook.nn.mlp`) module by module without gradients
    and collects the tensor after each non-``Linear`` module (the hidden
    representations), then the final output. Shapes: ``(N, m_l)`` each.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    reps, h = [], X
    with torch.no_grad():
        for module in model:
            h = module(h)
            if not isinstance(module, nn.Linear):
                reps.append(h)
    if include_output:
        reps.append(h)
    return reps


def pca_embedding(X_fit: torch.Tensor, X: torch.Tensor,
                  n_components: int) -> torch.Tensor:
    """Project ``X`` on the top principal directions of ``X_fit``.

    Centred by the mean of ``X_fit``. Shapes: ``X_fit (n, d)``, ``X (N, d)``;
    returns ``(N, n_components)``.
    """
    _check_matrix("X_fit", X_fit)
    if not 1 <= n_components <= min(X_fit.shape):
        raise ValueError(f"n_components must be in [1, {min(X_fit.shape)}], "
                         f"got {n_components}")
    mu = X_fit.mean(0)
    _, _, Vh = torch.linalg.svd(X_fit - mu, full_matrices=False)
    return (X - mu) @ Vh[:n_components].T
