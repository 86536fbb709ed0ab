"""How ReLU networks extrapolate (Xu et al., 2021; chapter ``ood``): evaluate a
network along rays that leave the training support and measure how linear it
is there, and generate the arithmetic tasks on which the chapter measures what
that means for algorithmic tasks.
"""
from __future__ import annotations

import torch
from torch import nn

#: The binary operations of :func:`arithmetic_task`: addition is linear, the
#: maximum is piecewise linear and linear on every ray from the origin, the
#: product is quadratic along rays.
ARITHMETIC_OPS = ("add", "max", "mul")

__all__ = ["along_ray", "linearity_r2", "second_differences", "ARITHMETIC_OPS",
           "arithmetic_task", "relative_error"]


@torch.no_grad()
def along_ray(model: nn.Module, direction: torch.Tensor, t: torch.Tensor,
              origin: torch.Tensor | None = None) -> torch.Tensor:
    """Outputs ``f(origin + t v)`` on a grid of ``t`` for one direction ``v``.

    Shapes: ``direction (D,)``, ``t (T,)``, ``origin (D,)`` (default 0);
    returns ``(T,)`` for a scalar-output model.
    """
    if direction.ndim != 1 or t.ndim != 1:
        raise ValueError("direction must have shape (D,) and t shape (T,)")
    origin = torch.zeros_like(direction) if origin is None else origin
    pts = origin.unsqueeze(0) + t.to(direction.dtype).unsqueeze(1) * direction
    model.eval()
    return model(pts).reshape(len(t))


def linearity_r2(t: torch.Tensor, values: torch.Tensor) -> float:
    """Coefficient of determination R^2 of the least-squares line through
    ``(t, values)``: 1 for an exactly affine function of ``t``.

    Shapes: ``t (T,)``, ``values (T,)`` with ``T >= 3``."""
    if t.shape != values.shape or len(t) < 3:
        raise ValueError("t and values must be (T,) with T >= 3")
    A = torch.stack([t, torch.ones_like(t)], 1).double()
    v = values.double()
    coef = torch.linalg.lstsq(A, v.unsqueeze(1)).solution.squeeze(1)
    resid = v - A @ coef
    total = ((v - v.mean()) ** 2).sum()
    return float(1 - (resid ** 2).sum() / total.clamp(min=1e-300))


def second_differences(values: torch.Tensor) -> torch.Tensor:
    """``v[i+1] - 2 v[i] + v[i-1]``: zero wherever a function on an evenly
    spaced grid is affine across three points. Shape: ``(T,)`` -> ``(T-2,)``."""
    return values[2:] - 2 * values[1:-1] + values[:-2]


def arithmetic_task(op: str, n: int, low: float = 0.0, high: float = 1.0,
                    generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``(a, b)`` drawn uniformly from ``[low, high]^2`` and the target
    ``a + b``, ``max(a, b)`` or ``a * b`` (``op`` in ``ARITHMETIC_OPS``).

    Train on one range and test on a disjoint one to measure extrapolation.
    Returns ``X (n, 2)`` and ``y (n, 1)``.
    """
    if op not in ARITHMETIC_OPS:
        raise ValueError(f"op must be one of {ARITHMETIC_OPS}, got {op!r}")
    if n < 1 or not low < high:
        raise ValueError(f"need n >= 1 and low < high, got {n}, {low}, {high}")
    X = low + (high - low) * torch.rand(n, 2, generator=generator)
    a, b = X[:, :1], X[:, 1:]
    y = {"add": a + b, "max": torch.maximum(a, b), "mul": a * b}[op]
    return X, y


def relative_error(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error divided by the mean absolute target,
    ``mean|pred - target| / mean|target|``. Shapes: equal; returns a float."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return float((pred - target).abs().mean() / target.abs().mean().clamp(min=1e-300))
