"""Approximation in d dimensions: ridge networks, hyperplane arrangements and
memorization.

Chapter: approximation (universal approximation in R^d, regions of a layer,
memorization capacity).
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch
from scipy.optimize import linprog
from torch import nn

from .networks import relu_interpolant

__all__ = [
    "ridge_cosine_net",
    "arrangement_regions",
    "count_arrangement_regions",
    "memorizing_net",
]


def ridge_cosine_net(W: torch.Tensor, b: torch.Tensor, a: torch.Tensor,
                     radius: float, knots: int) -> nn.Sequential:
    """One hidden ReLU layer approximating ``sum_k a_k cos(W_k . x + b_k)``.

    Each ridge profile ``z -> cos(z + b_k)`` is replaced by its piecewise-linear
    interpolant at ``knots + 1`` equally spaced points of
    ``[-R_k, R_k]``, ``R_k = radius * |W_k|`` (so the net is exact at the
    knots for every ``|x| <= radius``), and composed with ``z = W_k . x``: the
    d-dimensional construction of the chapter. Width ``K * knots``.
    Shapes: ``W (K, d)``, ``b (K,)``, ``a (K,)``; the net maps ``(N, d) -> (N, 1)``.
    """
    K, d = W.shape
    if b.shape != (K,) or a.shape != (K,) or knots < 1 or radius <= 0:
        raise ValueError(f"need W (K, d), b (K,), a (K,), knots >= 1, radius > 0; "
                         f"got {tuple(W.shape)}, {tuple(b.shape)}, {tuple(a.shape)}, "
                         f"{knots}, {radius}")
    W, b, a = W.double(), b.double(), a.double()
    hidden = nn.Linear(d, K * knots, dtype=torch.float64)
    out = nn.Linear(K * knots, 1, dtype=torch.float64)
    with torch.no_grad():
        out.bias.zero_()
        for k in range(K):
            R = radius * W[k].norm().item()
            z = torch.linspace(-R, R, knots + 1, dtype=torch.float64)
            inner = relu_interpolant(z, torch.cos(z + b[k]))
            rows = slice(k * knots, (k + 1) * knots)
            hidden.weight[rows] = W[k]               # relu(W_k . x - z_i)
            hidden.bias[rows] = inner[0].bias
            out.weight[0, rows] = a[k] * inner[2].weight[0]
            out.bias += a[k] * inner[2].bias
    return nn.Sequential(hidden, nn.ReLU(), out)


def arrangement_regions(n: int, d: int) -> int:
    """``sum_{i <= d} C(n, i)``: regions of ``n`` hyperplanes in general position
    in R^d (Buck 1943; Zaslavsky 1975), the most any ``n`` hyperplanes make."""
    if n < 0 or d < 0:
        raise ValueError(f"need n, d >= 0, got {n}, {d}")
    return sum(math.comb(n, i) for i in range(min(n, d) + 1))


def _region_exists(A: np.ndarray, c: np.ndarray, signs: np.ndarray) -> bool:
    """Is ``{x : signs_j (A_j x + c_j) > 0 for all j}`` nonempty? (an LP)."""
    d = A.shape[1]
    # maximize t subject to -s_j (A_j x + c_j) + t <= 0, t <= 1
    A_ub = np.hstack([-signs[:, None] * A, np.ones((len(c), 1))])
    res = linprog(np.r_[np.zeros(d), -1.0], A_ub=A_ub, b_ub=signs * c,
                  bounds=[(None, None)] * d + [(None, 1.0)], method="highs")
    return res.status == 0 and -res.fun > 1e-9


def count_arrangement_regions(layer: nn.Linear) -> int:
    """Exact number of activation regions of one ReLU layer on all of R^d.

    The regions are the sign patterns ``s`` for which
    ``{x : s_j (w_j . x + b_j) > 0}`` is nonempty. They are enumerated by a
    breadth-first search from the pattern of one point, flipping one sign at a
    time and testing feasibility with a linear program; neighbouring regions
    differ in one sign, so the search reaches them all. An oracle independent of
    :func:`arrangement_regions`.
    """
    A = layer.weight.detach().double().numpy()
    c = layer.bias.detach().double().numpy()
    start = tuple(np.where(c > 0, 1.0, -1.0))  # the pattern at a point near 0
    x0 = np.zeros(A.shape[1])
    if not _region_exists(A, c, np.array(start)):
        x0 = np.random.default_rng(0).standard_normal(A.shape[1])
        start = tuple(np.sign(A @ x0 + c))
    seen, queue = {start}, deque([start])
    while queue:
        s = queue.popleft()
        for j in range(len(s)):
            t = list(s)
            t[j] = -t[j]
            t = tuple(t)
            if t not in seen and _region_exists(A, c, np.array(t)):
                seen.add(t)
                queue.append(t)
    return len(seen)


def memorizing_net(X: torch.Tensor, y: torch.Tensor, *,
                   generator: torch.Generator | None = None) -> nn.Sequential:
    """One hidden ReLU layer of width ``n - 1`` with ``net(x_i) = y_i`` exactly.

    A random direction ``u`` gives distinct projections ``z_i = u . x_i``
    (almost surely); the one-dimensional interpolant of the ``(z_i, y_i)``
    composed with ``z = u . x`` interpolates the data. Its ``2n + d - 1``
    distinct numbers (``u``, ``n - 1`` biases, ``n - 1`` output weights and
    one output bias) echo Zhang et al.'s ``2n + d``. Shapes ``X (n, d)``
    with distinct rows, ``y (n,)``; the net maps ``(N, d) -> (N, 1)``.
    """
    if X.ndim != 2 or y.shape != (len(X),) or len(X) < 2:
        raise ValueError(f"need X (n, d) with n >= 2 and y (n,), got "
                         f"{tuple(X.shape)} and {tuple(y.shape)}")
    X, y = X.double(), y.double()
    u = torch.randn(X.shape[1], generator=generator, dtype=torch.float64)
    z = X @ u
    order = torch.argsort(z)
    z, ys = z[order], y[order]
    if not torch.all(z[1:] > z[:-1]):
        raise ValueError("two inputs have the same projection; are the rows distinct?")
    inner = relu_interpolant(z, ys)
    hidden = nn.Linear(X.shape[1], len(z) - 1, dtype=torch.float64)
    with torch.no_grad():
        hidden.weight.copy_(u.expand(len(z) - 1, -1))
        hidden.bias.copy_(inner[0].bias)
    return nn.Sequential(hidden, nn.ReLU(), inner[2])
