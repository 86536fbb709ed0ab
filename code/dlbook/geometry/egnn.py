"""E(n)-equivariant networks on point clouds (chapter: geometric deep learning).

* :class:`EGNNLayer` -- one equivariant graph convolutional layer of
  Satorras, Hoogeboom and Welling (2021) on the complete graph, with dense
  pairwise tensors;
* :class:`EGNN` -- a stack of them with an invariant energy read-out and an
  equivariant vector read-out (the displacement of the coordinates);
* :class:`PointMLP` -- the non-equivariant baseline on flattened coordinates;
* :func:`point_clouds`, :func:`spring_energy`, :func:`lennard_jones_energy`
  and :func:`forces` -- the generated physical task.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["EGNNLayer", "EGNN", "PointMLP", "point_clouds", "pairwise_distances",
           "spring_energy", "lennard_jones_energy", "forces"]


def _check_points(x: torch.Tensor, name: str = "x") -> None:
    if x.ndim != 3 or x.shape[1] < 2:
        raise ValueError(f"{name} must have shape (B, N, n) with N >= 2, "
                         f"got {tuple(x.shape)}")


class EGNNLayer(nn.Module):
    """One E(n)-equivariant layer on the complete graph of N points.

    ``m_ij = phi_e(h_i, h_j, ||x_i - x_j||^2)``,
    ``x_i' = x_i + C sum_{j != i} (x_i - x_j) phi_x(m_ij)``, ``C = 1 / (N - 1)``,
    ``h_i' = h_i + phi_h(h_i, sum_{j != i} m_ij)`` (eq. (eq-geometry-egnn)).

    The residual in h is the one of the authors' code; ``residual=False``
    gives their eq. (6) literally. Shapes: h (B, N, features),
    x (B, N, n) -> same shapes.
    """

    def __init__(self, features: int, hidden: int = 32, *,
                 update_coords: bool = True, residual: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.features, self.update_coords, self.residual = (
            features, update_coords, residual)
        self.phi_e = nn.Sequential(
            mlp([2 * features + 1, hidden, hidden], "silu", generator=generator),
            nn.SiLU())
        self.phi_x = mlp([hidden, hidden, 1], "silu", generator=generator)
        self.phi_h = mlp([features + hidden, hidden, features], "silu",
                         generator=generator)

    def forward(self, h: torch.Tensor, x: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        _check_points(x)
        B, N, _ = x.shape
        if h.shape != (B, N, self.features):
            raise ValueError(f"h must have shape {(B, N, self.features)}, "
                             f"got {tuple(h.shape)}")
        diff = x[:, :, None, :] - x[:, None, :, :]          # x_i - x_j
        d2 = (diff ** 2).sum(-1, keepdim=True)
        hi = h[:, :, None, :].expand(B, N, N, -1)
        hj = h[:, None, :, :].expand(B, N, N, -1)
        off = 1.0 - torch.eye(N, dtype=x.dtype, device=x.device)[..., None]
        m = self.phi_e(torch.cat([hi, hj, d2], dim=-1)) * off   # no self-loop
        if self.update_coords:
            x = x + (diff * self.phi_x(m) * off).sum(dim=2) / (N - 1)
        update = self.phi_h(torch.cat([h, m.sum(dim=2)], dim=-1))
        h = h + update if self.residual else update
        return h, x


class EGNN(nn.Module):
    """Embedding, ``layers`` :class:`EGNNLayer`\\ s, and two read-outs:
    an invariant energy sum_i psi(h_i) and the equivariant displacement
    x^(L) - x^(0) of the coordinates.

    Shapes: x (B, N, n), optional node features h (B, N, in_features)
    (ones if omitted) -> energy (B,), displacement (B, N, n).
    """

    def __init__(self, in_features: int = 1, hidden: int = 32, layers: int = 3,
                 *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.in_features = in_features
        self.embed = mlp([in_features, hidden], generator=generator)
        self.layers = nn.ModuleList(
            EGNNLayer(hidden, hidden, generator=generator) for _ in range(layers))
        self.psi = mlp([hidden, hidden, 1], "silu", generator=generator)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        _check_points(x)
        if h is None:
            h = torch.ones(*x.shape[:2], self.in_features, dtype=x.dtype)
        h, y = self.embed(h), x
        for layer in self.layers:
            h, y = layer(h, y)
        return self.psi(h).sum(dim=(1, 2)), y - x


class PointMLP(nn.Module):
    """The baseline: an MLP on the N * n flattened coordinates, returning an
    energy (B,) and a displacement (B, N, n) like :class:`EGNN`.
    """

    def __init__(self, n_points: int, dim: int = 3, hidden: int = 128,
                 depth: int = 3, *, generator: torch.Generator | None = None
                 ) -> None:
        super().__init__()
        self.n_points, self.dim = n_points, dim
        sizes = [n_points * dim] + [hidden] * depth + [1 + n_points * dim]
        self.net = mlp(sizes, "silu", generator=generator)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_points(x)
        if x.shape[1:] != (self.n_points, self.dim):
            raise ValueError(f"x must have shape (B, {self.n_points}, {self.dim}), "
                             f"got {tuple(x.shape)}")
        out = self.net(x.flatten(1))
        return out[:, 0], out[:, 1:].unflatten(1, (self.n_points, self.dim))


def point_clouds(count: int, n_points: int, dim: int = 3, *, scale: float = 0.7,
                 min_distance: float = 0.0, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``count`` configurations of ``n_points`` i.i.d. N(0, scale^2 I) points,
    redrawn until every pair is at least ``min_distance`` apart (rejection
    sampling). The distribution is invariant under O(n) and under
    permutations of the points. Shape: (count, n_points, dim).
    """
    if count < 1 or n_points < 2 or dim < 1:
        raise ValueError(f"need count >= 1, n_points >= 2, dim >= 1; got "
                         f"{count}, {n_points}, {dim}")
    g = torch.Generator().manual_seed(seed)
    out: list[torch.Tensor] = []
    have = 0
    for _ in range(1000):
        x = scale * torch.randn(2 * count, n_points, dim, generator=g,
                                dtype=torch.float64)
        d = pairwise_distances(x) + torch.eye(n_points, dtype=x.dtype) * 1e9
        keep = x[d.flatten(1).min(dim=1).values >= min_distance]
        out.append(keep)
        have += len(keep)
        if have >= count:
            return torch.cat(out)[:count].to(dtype)
    raise ValueError(f"min_distance={min_distance} is too large for scale={scale}")


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """``||x_i - x_j||`` for all pairs. Shape: (B, N, n) -> (B, N, N)."""
    _check_points(x)
    diff = x[:, :, None, :] - x[:, None, :, :]
    # sqrt of a clamped square: finite gradients at coincident points
    return (diff ** 2).sum(-1).clamp_min(1e-12).sqrt()


def _pair_sum(x: torch.Tensor, v: Callable[[torch.Tensor], torch.Tensor]
              ) -> torch.Tensor:
    N = x.shape[1]
    iu = torch.triu_indices(N, N, offset=1)
    d = pairwise_distances(x)[:, iu[0], iu[1]]
    return v(d).sum(dim=1)


def spring_energy(x: torch.Tensor, rest: float = 1.0,
                  stiffness: float = 1.0) -> torch.Tensor:
    """``E = (k / 2) sum_{i<j} (||x_i - x_j|| - r_0)^2``: springs of rest length r_0
    between every pair. Shape: (B, N, n) -> (B,)."""
    return _pair_sum(x, lambda d: 0.5 * stiffness * (d - rest) ** 2)


def lennard_jones_energy(x: torch.Tensor, sigma: float = 1.0,
                         epsilon: float = 1.0) -> torch.Tensor:
    """E = sum_{i<j} 4 eps ((sigma/r)^12 - (sigma/r)^6), the Lennard-Jones
    pair potential. Shape: (B, N, n) -> (B,)."""
    return _pair_sum(x, lambda d: 4 * epsilon * ((sigma / d) ** 12
                                                 - (sigma / d) ** 6))


def forces(energy: Callable[[torch.Tensor], torch.Tensor],
           x: torch.Tensor) -> torch.Tensor:
    """F = -grad_x E(x) by automatic differentiation. Shape: (B, N, n)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(x).sum(), x)
    return -grad
