"""Chapter 1 (history): Rosenblatt's perceptron, its learning rule, and data
with a prescribed margin for Novikoff's bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

# --------------------------------------------------------------------------
# Rosenblatt's perceptron
# --------------------------------------------------------------------------
class Perceptron(nn.Module):
    """Rosenblatt's perceptron, laid out like :class:`torch.nn.Linear`.

    ``weight`` has shape ``(out_features, in_features)`` and ``bias`` shape
    ``(out_features,)``; both start at zero and are changed only by
    :meth:`update`, never by autograd. With ``out_features=1`` the model is a
    binary classifier with labels in {-1, +1}; with ``out_features=C >= 2`` it
    is the multiclass perceptron over labels ``0..C-1``.
    Shapes: ``forward`` maps ``(N, in_features)`` to ``(N, out_features)``.
    """

    def __init__(self, in_features: int, out_features: int = 1, bias: bool = True,
                 lr: float = 1.0, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError("in_features and out_features must be >= 1, got "
                             f"{in_features} and {out_features}")
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.in_features, self.out_features, self.lr = in_features, out_features, lr
        zeros = torch.zeros(out_features, in_features, dtype=dtype)
        self.weight = nn.Parameter(zeros, requires_grad=False)
        b = torch.zeros(out_features, dtype=dtype) if bias else None
        self.bias = None if b is None else nn.Parameter(b, requires_grad=False)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Scores ``X W^T + b``. Shape: ``(N, in) -> (N, out)``."""
        out = X @ self.weight.T
        return out if self.bias is None else out + self.bias

    @torch.no_grad()
    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Labels: ``sign`` in {-1, +1} (binary; 0 maps to -1) or arg-max."""
        s = self(X)
        if self.out_features == 1:
            return torch.where(s[:, 0] > 0, 1, -1)
        return s.argmax(dim=1)

    @torch.no_grad()
    def mistakes(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Which rows the learning rule counts as mistakes. Shape: ``(N,)`` bool.

        Binary: ``y <w, x> + y b <= 0``. Multiclass: the true class does not
        score strictly above every other class.
        """
        s = self(X)
        if self.out_features == 1:
            return y * s[:, 0] <= 0
        true = s.gather(1, y[:, None])[:, 0]
        rival = s.scatter(1, y[:, None], -math.inf).amax(dim=1)
        return true <= rival

    @torch.no_grad()
    def update(self, x: torch.Tensor, y: int) -> None:
        """The perceptron rule for one mistaken example ``x`` of shape ``(in,)``."""
        if self.out_features == 1:  # w <- w + lr y x
            self.weight[0] += self.lr * y * x
            if self.bias is not None:
                self.bias[0] += self.lr * y
            return
        s = self(x[None])[0]
        s[y] = -math.inf
        rival = int(s.argmax())  # w_y <- w_y + lr x, w_rival <- w_rival - lr x
        self.weight[y] += self.lr * x
        self.weight[rival] -= self.lr * x
        if self.bias is not None:
            self.bias[y] += self.lr
            self.bias[rival] -= self.lr


@dataclass(frozen=True)
class PerceptronRun:
    """What :func:`train_perceptron` observed.

    ``mistakes_per_epoch[k]`` counts the updates of epoch ``k + 1``;
    ``converged`` is true when the last epoch made none. ``states`` holds the
    flattened ``(weight, bias)`` at the start of every epoch when recorded.
    """

    mistakes_per_epoch: tuple[int, ...]
    converged: bool
    states: tuple[torch.Tensor, ...] = field(default=(), repr=False)

    @property
    def mistakes(self) -> int:
        return sum(self.mistakes_per_epoch)

    @property
    def epochs(self) -> int:
        return len(self.mistakes_per_epoch)


def _check_labels(model: Perceptron, X: torch.Tensor, y: torch.Tensor) -> None:
    if X.ndim != 2 or X.shape[1] != model.in_features:
        raise ValueError(f"X must have shape (N, {model.in_features}), "
                         f"got {tuple(X.shape)}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {tuple(y.shape)}")
    ok = ((y == 1) | (y == -1) if model.out_features == 1
          else (y >= 0) & (y < model.out_features))
    if not bool(ok.all()):
        want = ("{-1, +1}" if model.out_features == 1
                else f"0..{model.out_features - 1}")
        raise ValueError(f"y must take values in {want}, got {y.unique().tolist()}")


def _state(model: Perceptron) -> torch.Tensor:
    parts = [model.weight.reshape(-1)]
    if model.bias is not None:
        parts.append(model.bias)
    return torch.cat(parts).clone()


@torch.no_grad()
def _epoch(model: Perceptron, X: torch.Tensor, y: torch.Tensor) -> int:
    """One pass in the given order; returns the number of updates.

    Equivalent to visiting the rows one by one: the weights change only at a
    mistake, so the next mistake is the first mistaken row after the last one,
    found for all remaining rows at once.
    """
    start, count = 0, 0
    while start < len(X):
        wrong = model.mistakes(X[start:], y[start:]).nonzero()
        if len(wrong) == 0:
            break
        i = start + int(wrong[0, 0])
        model.update(X[i], int(y[i]))
        start, count = i + 1, count + 1
    return count


def train_perceptron(
    model: Perceptron, X: torch.Tensor, y: torch.Tensor, *, max_epochs: int = 100,
    generator: torch.Generator | None = None, record_states: bool = False,
) -> PerceptronRun:
    """Cycle through ``(X, y)`` with the perceptron rule until an epoch is clean.

    Rows are visited in their given order, or in a fresh random order each
    epoch when a ``generator`` is passed. Stops after the first epoch without
    a mistake or after ``max_epochs``. Shapes: ``X (N, D)``, ``y (N,)``.
    """
    _check_labels(model, X, y)
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
    X = X.to(model.weight.dtype)
    per_epoch, states = [], []
    for _ in range(max_epochs):
        if record_states:
            states.append(_state(model))
        order = (torch.randperm(len(X), generator=generator) if generator
                 is not None else torch.arange(len(X)))
        per_epoch.append(_epoch(model, X[order], y[order]))
        if per_epoch[-1] == 0:
            break
    return PerceptronRun(tuple(per_epoch), per_epoch[-1] == 0, tuple(states))


def find_cycle(states: tuple[torch.Tensor, ...]) -> tuple[int, int] | None:
    """First ``(start, period)`` with ``states[start] == states[start + period]``.

    Meant for integer-valued weights (integer data, ``lr=1``), where equality
    is exact. With a fixed visiting order the epoch map is deterministic, so
    one repeat proves the weights cycle forever. ``None`` if none is seen.
    """
    seen: dict[tuple, int] = {}
    for k, s in enumerate(states):
        key = tuple(s.tolist())
        if key in seen:
            return seen[key], k - seen[key]
        seen[key] = k
    return None


# --------------------------------------------------------------------------
# Linearly separable data with a prescribed margin
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class SeparableData:
    """Points ``X (n, d)``, labels ``y (n,)`` in {-1, +1}, unit separator ``u (d,)``.

    Every point satisfies ``y_i <u, x_i> >= gamma`` and ``||x_i|| <= R``.
    """

    X: torch.Tensor
    y: torch.Tensor
    u: torch.Tensor
    gamma: float
    R: float


def separable_data(
    n: int, d: int, *, gamma: float, R: float = 1.0, seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> SeparableData:
    """``n`` labelled points in the ball of radius ``R`` with margin ``gamma``.

    A random unit vector ``u`` is drawn; each point is ``s u + v`` with
    ``|s|`` uniform on ``[gamma, R]``, a random sign, and ``v`` orthogonal to
    ``u`` drawn uniformly in the ball of radius ``sqrt(R^2 - s^2)``. The
    first two points lie exactly at distance ``gamma`` on either side, so
    ``u`` attains margin ``gamma``. Shapes: ``X (n, d)``, ``y (n,)``.
    """
    if not 0 < gamma <= R:
        raise ValueError(f"need 0 < gamma <= R, got gamma={gamma}, R={R}")
    if n < 2 or d < 2:
        raise ValueError(f"need n >= 2 and d >= 2, got n={n}, d={d}")
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g, dtype=dtype)
    u = u / u.norm()
    s = gamma + (R - gamma) * torch.rand(n, generator=g, dtype=dtype)
    sign = torch.where(torch.rand(n, generator=g, dtype=dtype) < 0.5, -1.0, 1.0)
    s[:2], sign[:2] = gamma, torch.tensor([1.0, -1.0], dtype=dtype)
    v = torch.randn(n, d, generator=g, dtype=dtype)
    v = v - (v @ u)[:, None] * u  # project out u
    r = torch.rand(n, generator=g, dtype=dtype) ** (1 / (d - 1))
    v = v / v.norm(dim=1, keepdim=True) * r[:, None]
    v = v * torch.sqrt(R**2 - s**2)[:, None]
    X = (sign * s)[:, None] * u + v
    return SeparableData(X, sign.to(torch.int64), u, float(gamma), float(R))


def margin(X: torch.Tensor, y: torch.Tensor, u: torch.Tensor) -> float:
    """``min_i y_i <u, x_i> / ||u||``: the margin of the hyperplane ``u``."""
    return float((y.to(X.dtype) * (X @ u)).min() / u.norm())


def max_margin(X: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The data's own margin: ``max_{||u|| = 1} min_i y_i <u, x_i>`` and its ``u``.

    This is the hard-margin linear SVM through the origin, the separator that
    makes Novikoff's bound tightest. It is solved exactly as the least-distance
    problem ``min ||w||`` subject to ``y_i <w, x_i> >= 1``, which Lawson and
    Hanson reduce to one non-negative least-squares problem; the margin is
    ``1 / ||w||`` and ``u = w / ||w||``. Shapes: ``X (n, d)``, ``y (n,)`` in
    {-1, +1}; returns ``(margin, u)`` with ``u`` of shape ``(d,)``.
    """
    import numpy as np
    from scipy.optimize import nnls

    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"need X (n, d) and y (n,), got {tuple(X.shape)} "
                         f"and {tuple(y.shape)}")
    Z = (y.to(torch.float64)[:, None] * X.to(torch.float64)).numpy()
    n, d = Z.shape
    E = np.vstack([Z.T, np.ones((1, n))])  # (d + 1, n)
    f = np.zeros(d + 1)
    f[d] = 1.0
    alpha, _ = nnls(E, f, maxiter=50 * max(n, d))
    r = E @ alpha - f  # the least-distance solution is w = -r[:d] / r[d]
    if abs(r[d]) < 1e-12:
        raise ValueError("the data are not linearly separable through the origin")
    w = torch.from_numpy(-r[:d] / r[d])
    return float(1.0 / w.norm()), w / w.norm()


def radius(X: torch.Tensor) -> float:
    """``max_i ||x_i||``: the radius of the smallest centred ball holding X."""
    return float(X.norm(dim=1).max())


def novikoff_bound(R: float, gamma: float) -> float:
    """Novikoff's mistake bound ``(R / gamma)^2``."""
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    return (R / gamma) ** 2


