"""Test problems and iterations for convergence rates (chapter
optimization-theory).

Each problem knows its constants (smoothness ``L``, Polyak-Lojasiewicz
constant ``mu``, minimum value), so the rates proved in the chapter can be
evaluated and compared with what gradient descent actually does.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["LeastSquares", "CauchyRegression", "gradient_descent",
           "noisy_gradient_descent"]

Grad = Callable[[torch.Tensor], torch.Tensor]


def _check_Ab(A: torch.Tensor, b: torch.Tensor) -> None:
    if A.dim() != 2 or b.shape != A.shape[:1]:
        raise ValueError(f"A must be (n, P) and b (n,), got {tuple(A.shape)} "
                         f"and {tuple(b.shape)}")


@dataclass(frozen=True)
class LeastSquares:
    """``f(x) = ||A x - b||^2 / (2 n)``: convex, L-smooth, PL with ``mu``.

    ``L`` is the largest and ``mu`` the smallest nonzero eigenvalue of
    ``A^T A / n``; ``f`` is not strongly convex when ``A`` has a null space.
    Shapes: ``A`` is ``(n, P)``, ``b`` is ``(n,)``, ``x`` is ``(P,)``.
    """

    A: torch.Tensor
    b: torch.Tensor

    def __post_init__(self) -> None:
        _check_Ab(self.A, self.b)

    def f(self, x: torch.Tensor) -> torch.Tensor:
        """Value; ``x`` of shape ``(P,)`` or a batch ``(R, P)``."""
        return 0.5 * ((x @ self.A.T - self.b) ** 2).mean(-1)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """Gradient, the shape of ``x``."""
        return (x @ self.A.T - self.b) @ self.A / len(self.b)

    def _eig(self) -> torch.Tensor:
        return torch.linalg.eigvalsh(self.A.T @ self.A / len(self.b))

    @property
    def L(self) -> float:
        return float(self._eig()[-1])

    @property
    def mu(self) -> float:
        ev = self._eig()
        return float(ev[ev > 1e-10 * ev[-1]][0])

    def nearest_minimizer(self, x0: torch.Tensor) -> torch.Tensor:
        """The minimizer closest to ``x0``: ``x0 - A^+ (A x0 - b)``."""
        return x0 - torch.linalg.pinv(self.A) @ (self.A @ x0 - self.b)

    @property
    def f_star(self) -> float:
        x = torch.linalg.lstsq(self.A, self.b[:, None]).solution[:, 0]
        return float(self.f(x))


@dataclass(frozen=True)
class CauchyRegression:
    """Robust regression: ``f(x) = mean_i log(1 + r_i^2) / 2``, ``r = A x - b``.

    Smooth and non-convex: ``rho(r) = log(1 + r^2) / 2`` has
    ``rho'' = (1 - r^2) / (1 + r^2)^2``, in ``[-1/8, 1]``, so ``f`` is
    ``L``-smooth with ``L = lambda_max(A^T A / n)``, and ``f >= 0``.
    """

    A: torch.Tensor
    b: torch.Tensor

    def __post_init__(self) -> None:
        _check_Ab(self.A, self.b)

    def f(self, x: torch.Tensor) -> torch.Tensor:
        """Value; ``x`` of shape ``(P,)`` or a batch ``(R, P)``."""
        return 0.5 * torch.log1p((x @ self.A.T - self.b) ** 2).mean(-1)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """Gradient, the shape of ``x``."""
        r = x @ self.A.T - self.b
        return (r / (1 + r ** 2)) @ self.A / len(self.b)

    @property
    def L(self) -> float:
        return float(torch.linalg.eigvalsh(self.A.T @ self.A / len(self.b))[-1])


def gradient_descent(grad: Grad, x0: torch.Tensor, lr: float,
                     steps: int) -> torch.Tensor:
    """Iterates of ``x <- x - lr grad(x)``. Shape: ``(steps + 1, P)``."""
    if lr <= 0 or steps < 0:
        raise ValueError(f"need lr > 0 and steps >= 0, got {lr}, {steps}")
    xs = [x0.clone()]
    for _ in range(steps):
        xs.append(xs[-1] - lr * grad(xs[-1]))
    return torch.stack(xs)


def noisy_gradient_descent(grad: Grad, x0: torch.Tensor, lrs: torch.Tensor,
                           sigma: float, runs: int, *,
                           generator: torch.Generator | None = None
                           ) -> torch.Tensor:
    """SGD with an unbiased oracle ``g = grad(x) + xi``, ``E||xi||^2 = sigma^2``.

    ``xi`` is Gaussian, isotropic, independent across steps and ``runs``;
    ``lrs`` holds one step size per step (shape ``(T,)``). ``grad`` must
    accept a batch of points ``(runs, P)``. Shape: ``(T + 1, runs, P)``.
    """
    if sigma < 0 or runs < 1 or lrs.dim() != 1:
        raise ValueError(f"need sigma >= 0, runs >= 1, lrs of shape (T,); got "
                         f"{sigma}, {runs}, {tuple(lrs.shape)}")
    P = x0.numel()
    x = x0.expand(runs, P).clone()
    xs = [x]
    for lr in lrs:
        xi = torch.randn(runs, P, generator=generator, dtype=x0.dtype)
        x = x - lr * (grad(x) + sigma / P ** 0.5 * xi)
        xs.append(x)
    return torch.stack(xs)
