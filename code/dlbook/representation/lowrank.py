"""Low-rank biases (chapter: the theory of representations).

Deep matrix factorization for matrix completion (Arora et al., 2019): the
end-to-end matrix ``W = W_N ... W_1`` is trained by gradient descent on the
observed entries only, from a small initialization. Also a low-rank ground
truth, a random observation mask, the balancedness that gradient flow
conserves, and soft-impute (Mazumder et al., 2010), the nuclear-norm baseline.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .quality import effective_rank

__all__ = ["low_rank_matrix", "observation_mask", "DeepFactorization",
           "balancedness", "CompletionResult", "complete_matrix", "soft_impute",
           "nuclear_norm_completion"]


def low_rank_matrix(n: int, rank: int, *, seed: int,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A random ``n x n`` matrix ``U V^T / sqrt(rank)`` of the given rank.

    ``U`` and ``V`` have i.i.d. standard Gaussian entries of shape
    ``(n, rank)``, so the entries have unit variance. Shape: ``(n, n)``.
    """
    if not 1 <= rank <= n:
        raise ValueError(f"rank must be in [1, n] = [1, {n}], got {rank}")
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(n, rank, generator=g, dtype=dtype)
    V = torch.randn(n, rank, generator=g, dtype=dtype)
    return U @ V.T / rank**0.5


def observation_mask(n: int, n_observed: int, *, seed: int) -> torch.Tensor:
    """A boolean ``n x n`` mask with ``n_observed`` entries drawn uniformly."""
    if not 1 <= n_observed <= n * n:
        raise ValueError(f"n_observed must be in [1, {n * n}], got {n_observed}")
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n * n, dtype=torch.bool)
    mask[torch.randperm(n * n, generator=g)[:n_observed]] = True
    return mask.reshape(n, n)


class DeepFactorization(nn.Module):
    """The product ``W_N ... W_1`` of ``depth`` square ``n x n`` factors.

    Each factor starts with i.i.d. ``N(0, init_scale^2)`` entries; a depth of
    1 is plain gradient descent on the matrix itself. ``forward()`` returns
    the end-to-end matrix, shape ``(n, n)``.
    """

    def __init__(self, n: int, depth: int, init_scale: float = 1e-2, *,
                 generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if depth < 1 or n < 1 or init_scale < 0:
            raise ValueError(f"need n >= 1, depth >= 1, init_scale >= 0; got "
                             f"n={n}, depth={depth}, init_scale={init_scale}")
        self.factors = nn.ParameterList(
            nn.Parameter(init_scale * torch.randn(n, n, generator=generator,
                                                  dtype=dtype))
            for _ in range(depth))

    def forward(self) -> torch.Tensor:
        W = self.factors[0]
        for factor in self.factors[1:]:
            W = factor @ W  # W_j ... W_1, the first factor acts first
        return W


def balancedness(model: DeepFactorization) -> float:
    """``max_j |W_{j+1}^T W_{j+1} - W_j W_j^T|_F``, zero for balanced factors."""
    Ws = list(model.factors)
    gaps = [torch.linalg.matrix_norm(b.T @ b - a @ a.T).item()
            for a, b in zip(Ws[:-1], Ws[1:])]
    return max(gaps, default=0.0)


@dataclass
class CompletionResult:
    """What :func:`complete_matrix` returns: the final matrix and its history."""

    W: torch.Tensor
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    effective_rank: list[float] = field(default_factory=list)
    balancedness: list[float] = field(default_factory=list)


def _relative_error(W: torch.Tensor, target: torch.Tensor,
                    where: torch.Tensor) -> float:
    return ((W - target)[where].norm() / target[where].norm()).item()


def complete_matrix(target: torch.Tensor, mask: torch.Tensor, depth: int, *,
                    steps: int, lr: float, init_scale: float = 1e-2,
                    seed: int = 0, log_every: int = 100) -> CompletionResult:
    """Full-batch gradient descent on ``(1/2) sum_observed (W_ij - M_ij)^2``.

    ``W`` is a :class:`DeepFactorization` of ``depth`` factors. Every
    ``log_every`` steps records the loss, the relative error on the
    unobserved entries, the effective rank of ``W`` and the balancedness.
    Shapes: ``target`` and ``mask`` ``(n, n)``.
    """
    if target.ndim != 2 or target.shape[0] != target.shape[1]:
        raise ValueError(f"target must be square, got {tuple(target.shape)}")
    if mask.shape != target.shape or mask.dtype != torch.bool:
        raise ValueError("mask must be a boolean tensor of the target's shape")
    model = DeepFactorization(target.shape[0], depth, init_scale,
                              generator=torch.Generator().manual_seed(seed),
                              dtype=target.dtype)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    res = CompletionResult(W=target.new_zeros(target.shape))
    for step in range(steps + 1):
        W = model()
        loss = 0.5 * (W - target)[mask].square().sum()
        if step % log_every == 0 or step == steps:
            with torch.no_grad():
                res.steps.append(step)
                res.train_loss.append(loss.item())
                res.test_error.append(_relative_error(W, target, ~mask))
                res.effective_rank.append(effective_rank(W.detach()))
                res.balancedness.append(balancedness(model))
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    res.W = model().detach()
    return res


def soft_impute(target: torch.Tensor, mask: torch.Tensor, lam: float, *,
                iters: int = 500,
                init: torch.Tensor | None = None) -> torch.Tensor:
    """Soft-impute: nuclear-norm-regularized completion (Mazumder et al., 2010).

    Iterates ``W <- S_lam(P_obs(M) + P_unobs(W))``, where ``S_lam`` shrinks the
    singular values by ``lam``; the fixed point minimizes
    ``(1/2) sum_observed (W_ij - M_ij)^2 + lam |W|_*``. Starts from ``init``
    (zeros by default). Shape: ``(n, n)``.
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    W = torch.zeros_like(target) if init is None else init.clone()
    for _ in range(iters):
        filled = torch.where(mask, target, W)
        U, S, Vh = torch.linalg.svd(filled, full_matrices=False)
        W = U @ torch.diag((S - lam).clamp_min(0)) @ Vh
    return W


def nuclear_norm_completion(target: torch.Tensor, mask: torch.Tensor, *,
                            lams: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01,
                                                       0.003, 0.001),
                            iters: int = 250) -> torch.Tensor:
    """Minimum-nuclear-norm completion by a warm-started path of soft-impute.

    Runs :func:`soft_impute` for each ``lam`` in the decreasing sequence
    ``lams``, starting each from the previous solution (Mazumder et al.'s
    continuation, which converges far faster at small ``lam`` than a cold
    start). As ``lam -> 0`` the solution tends to the minimum-nuclear-norm
    matrix that fits the observations. Shape: ``(n, n)``.
    """
    if any(b >= a for a, b in zip(lams, lams[1:])):
        raise ValueError(f"lams must be strictly decreasing, got {lams}")
    W = None
    for lam in lams:
        W = soft_impute(target, mask, lam, iters=iters, init=W)
    return W
