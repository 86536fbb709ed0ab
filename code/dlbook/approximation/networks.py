"""Building networks: interpolants and a lean batched trainer.

Random networks come from :func:`dlbook.nn.mlp`.

Chapter: approximation (constructive universal approximation).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.ndimage import maximum_filter1d, minimum_filter1d
from torch import nn

__all__ = [
    "relu_interpolant",
    "modulus_of_continuity",
    "sup_error",
    "as_float64",
    "train_mse",
]


def relu_interpolant(knots: torch.Tensor, values: torch.Tensor) -> nn.Sequential:
    """One hidden ReLU layer equal to the piecewise-linear interpolant.

    The network is ``g(x) = values[0] + sum_i c_i relu(x - knots[i])`` with
    ``c_0`` the first slope and ``c_i`` the change of slope at ``knots[i]``;
    it passes through every ``(knots[i], values[i])`` and is affine between
    knots (and beyond the last one). Width ``m - 1`` for ``m`` knots.
    Shapes: ``knots (m,)`` strictly increasing, ``values (m,)``; the model maps
    ``(N, 1) -> (N, 1)`` in the dtype of ``knots``.
    """
    if knots.ndim != 1 or knots.shape != values.shape or knots.numel() < 2:
        raise ValueError("knots and values must be 1-D of equal length >= 2, got "
                         f"{tuple(knots.shape)} and {tuple(values.shape)}")
    if not torch.all(knots[1:] > knots[:-1]):
        raise ValueError("knots must be strictly increasing")
    slopes = (values[1:] - values[:-1]) / (knots[1:] - knots[:-1])
    c = torch.cat([slopes[:1], slopes[1:] - slopes[:-1]])
    m = knots.numel() - 1
    hidden, out = nn.Linear(1, m, dtype=knots.dtype), nn.Linear(m, 1, dtype=knots.dtype)
    with torch.no_grad():
        hidden.weight.fill_(1.0)
        hidden.bias.copy_(-knots[:-1])
        out.weight.copy_(c[None, :].to(knots.dtype))
        out.bias.fill_(float(values[0]))
    return nn.Sequential(hidden, nn.ReLU(), out)


def modulus_of_continuity(values: np.ndarray, spacing: float,
                          delta: float) -> float:
    """``omega_f(delta) = sup {|f(x) - f(y)| : |x - y| <= delta}`` on a grid.

    ``values`` are samples of ``f`` on a uniform grid with step ``spacing``;
    the supremum is over grid pairs, a lower estimate that is exact in the
    limit of a fine grid. Computed in O(N) with sliding max/min filters.
    """
    if delta < 0 or spacing <= 0:
        raise ValueError(f"need delta >= 0 and spacing > 0, got {delta}, {spacing}")
    size = int(math.floor(delta / spacing + 1e-9)) + 1
    v = np.asarray(values, dtype=np.float64)
    hi = maximum_filter1d(v, size=size, origin=-(size // 2) if size > 1 else 0)
    lo = minimum_filter1d(v, size=size, origin=-(size // 2) if size > 1 else 0)
    valid = len(v) - size + 1  # windows that lie inside the grid
    return float(np.max((hi - lo)[:max(valid, 1)]))


def sup_error(model: nn.Module, f: Callable[[torch.Tensor], torch.Tensor],
              a: float, b: float, n_grid: int = 20001) -> float:
    """Largest ``|model(x) - f(x)|`` over a uniform grid of ``[a, b]`` (float64).

    The model is evaluated in float64 on a copy; ``model`` itself is unchanged.
    """
    x = torch.linspace(a, b, n_grid, dtype=torch.float64)[:, None]
    with torch.no_grad():
        return float((as_float64(model)(x) - f(x)).abs().max())


def as_float64(model: nn.Module) -> nn.Module:
    """``model`` if all its parameters are float64, else a float64 copy of it."""
    if all(p.dtype == torch.float64 for p in model.parameters()):
        return model
    return copy.deepcopy(model).double()


def train_mse(models: Sequence[nn.Sequential], X: torch.Tensor, y: torch.Tensor,
              *, steps: int, lr: float = 1e-2) -> torch.Tensor:
    """Train several same-shaped ReLU nets at once: full-batch Adam on the MSE.

    The members' weights are stacked into ``(S, out, in)`` tensors and run with
    batched matrix products; Adam acts coordinate-wise, so this is exactly
    ``S`` independent runs, at about the cost of one. The trained weights are
    copied back into ``models``. Shapes ``X (N, d)``, ``y (N, 1)``; returns the
    loss of every member at every step, ``(steps, S)``.
    """
    if steps < 1 or y.shape != (len(X), 1):
        raise ValueError(f"need steps >= 1 and y of shape ({len(X)}, 1), "
                         f"got steps={steps}, y {tuple(y.shape)}")
    lins = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
    Ws = [torch.stack([ls[i].weight.detach() for ls in lins]).requires_grad_()
          for i in range(len(lins[0]))]
    bs = [torch.stack([ls[i].bias.detach() for ls in lins]).requires_grad_()
          for i in range(len(lins[0]))]
    opt = torch.optim.Adam(Ws + bs, lr=lr, foreach=True)
    losses = torch.empty(steps, len(models))
    for step in range(steps):
        h = X.to(Ws[0].dtype).expand(len(models), *X.shape)
        for i, (W, b) in enumerate(zip(Ws, bs)):
            h = torch.baddbmm(b[:, None, :], h, W.transpose(1, 2))
            h = torch.relu(h) if i < len(Ws) - 1 else h
        per_member = (h - y.to(h.dtype)).pow(2).mean(dim=(1, 2))
        opt.zero_grad()
        per_member.sum().backward()  # members do not interact
        opt.step()
        losses[step] = per_member.detach()
    with torch.no_grad():
        for s, ls in enumerate(lins):
            for i, lin in enumerate(ls):
                lin.weight.copy_(Ws[i][s])
                lin.bias.copy_(bs[i][s])
    return losses
