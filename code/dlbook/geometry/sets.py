"""Functions on sets: DeepSets and its tasks (chapter: geometric deep learning).

* :class:`DeepSets` -- psi(sum_i phi(x_i)), invariant to permutations of the
  set's elements by construction (Zaheer et al., 2017);
* :class:`SetMLP` -- the baseline that reads the set as one ordered vector;
* :func:`set_task` and :func:`spread_task` -- random sets with a
  permutation-invariant target;
* :func:`power_sums` and :func:`set_from_power_sums` -- the explicit sum
  decomposition behind the representation theorem.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["DeepSets", "SetMLP", "set_task", "spread_task", "power_sums",
           "set_from_power_sums"]


def _check_sets(x: torch.Tensor, d: int) -> None:
    if x.ndim != 3 or x.shape[-1] != d:
        raise ValueError(f"x must have shape (B, n, {d}), got {tuple(x.shape)}")


class DeepSets(nn.Module):
    """f(X) = psi(sum_{x in X} phi(x)) with MLPs phi and psi.

    ``phi``: in_features -> hidden -> hidden -> latent, ``psi``: latent ->
    hidden -> hidden -> out_features, with ``activation`` between layers.
    ``pool="mean"`` divides the sum by n (the same function class for a
    fixed n).
    Shape: (B, n, in_features) -> (B, out_features); any n.
    """

    def __init__(self, in_features: int, out_features: int, *, latent: int = 16,
                 hidden: int = 32, pool: str = "sum", activation: str = "relu",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if pool not in ("sum", "mean"):
            raise ValueError(f"pool must be 'sum' or 'mean', got {pool!r}")
        self.in_features, self.pool = in_features, pool
        self.phi = mlp([in_features, hidden, hidden, latent], activation,
                       generator=generator)
        self.psi = mlp([latent, hidden, hidden, out_features], activation,
                       generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_sets(x, self.in_features)
        z = self.phi(x).sum(dim=1)  # sum pooling: eq. (deepsets)
        return self.psi(z / x.shape[1] if self.pool == "mean" else z)


class SetMLP(nn.Module):
    """An MLP on the concatenated elements x_1, ..., x_n (order-sensitive).

    Shape: (B, n, in_features) -> (B, out_features), n fixed at construction.
    """

    def __init__(self, n: int, in_features: int, out_features: int, *,
                 hidden: int = 64, depth: int = 2,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.n, self.in_features = n, in_features
        sizes = [n * in_features] + [hidden] * depth + [out_features]
        self.net = mlp(sizes, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_sets(x, self.in_features)
        if x.shape[1] != self.n:
            raise ValueError(f"SetMLP was built for sets of {self.n}, "
                             f"got {x.shape[1]}")
        return self.net(x.flatten(1))


def set_task(count: int, n: int, *, target: str = "std", seed: int = 0,
             dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` sets of ``n`` numbers drawn uniformly from [0, 1] and a
    permutation-invariant target: ``"std"`` (population standard deviation),
    ``"range"`` (max - min), ``"median"``, or ``"sorted"`` (the n sorted
    values). Returns X (count, n, 1) and y (count, 1) or (count, n).
    """
    if count < 1 or n < 1:
        raise ValueError(f"count and n must be >= 1, got {count}, {n}")
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(count, n, 1, generator=g, dtype=dtype)
    v = X[..., 0]
    if target == "std":
        y = v.std(dim=1, unbiased=False, keepdim=True)
    elif target == "range":
        y = (v.max(dim=1).values - v.min(dim=1).values)[:, None]
    elif target == "median":
        y = v.median(dim=1).values[:, None]  # lower median when n is even
    elif target == "sorted":
        y = v.sort(dim=1).values
    else:
        raise ValueError(f"target must be 'std', 'range', 'median' or 'sorted', "
                         f"got {target!r}")
    return X, y


def spread_task(count: int, n: int = 16, dim: int = 2, *, seed: int = 0,
                dtype: torch.dtype = torch.float32
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` sets of ``n`` points uniform in [-1, 1]^dim and their spread,
    the root-mean-square distance to the centroid,
    ``sqrt((1/n) sum_i ||x_i - mean(x)||^2)``, a continuous permutation-invariant
    function of the set. Returns X (count, n, dim) and y (count, 1).
    """
    if count < 1 or n < 1 or dim < 1:
        raise ValueError(f"count, n and dim must be >= 1, got {count}, {n}, {dim}")
    g = torch.Generator().manual_seed(seed)
    X = 2 * torch.rand(count, n, dim, generator=g, dtype=dtype) - 1
    centred = X - X.mean(dim=1, keepdim=True)
    return X, centred.pow(2).sum(-1).mean(1, keepdim=True).sqrt()


def power_sums(x: torch.Tensor) -> torch.Tensor:
    """The sum decomposition phi(x) = (x, x^2, ..., x^n) summed over a set.

    Shape: (B, n) -> (B, n): p_k = sum_i x_i^k for k = 1..n.
    """
    if x.ndim != 2:
        raise ValueError(f"x must have shape (B, n), got {tuple(x.shape)}")
    k = torch.arange(1, x.shape[1] + 1, dtype=x.dtype)
    return (x[..., None] ** k).sum(dim=1)


def set_from_power_sums(p: torch.Tensor) -> torch.Tensor:
    """Invert :func:`power_sums`: the sorted set with power sums ``p``.

    Newton's identities give the elementary symmetric polynomials e_k; the
    set is the multiset of roots of t^n - e_1 t^{n-1} + ... + (-1)^n e_n.
    Shape: (B, n) -> (B, n) (real parts, sorted).
    """
    if p.ndim != 2:
        raise ValueError(f"p must have shape (B, n), got {tuple(p.shape)}")
    out = []
    for row in p.detach().cpu().double().numpy():
        n = len(row)
        e = [1.0]
        for k in range(1, n + 1):  # Newton: k e_k = sum_i (-1)^(i-1) e_{k-i} p_i
            e.append(sum((-1) ** (i - 1) * e[k - i] * row[i - 1]
                         for i in range(1, k + 1)) / k)
        coeffs = [(-1) ** k * e[k] for k in range(n + 1)]
        out.append(np.sort(np.roots(coeffs).real))
    return torch.tensor(np.array(out), dtype=p.dtype)
