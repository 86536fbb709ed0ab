"""Paths through weight space (chapter optimization-theory).

A network's parameters are handled as one flat vector ``theta`` of shape
``(P,)`` (in the order of ``model.parameters()``) and evaluated with
:func:`torch.func.functional_call`, so that the loss can be computed along
a line or a curve between two solutions without touching the model.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

__all__ = ["flat_params", "unflatten", "loss_at", "linear_path_losses",
           "bezier", "fit_bezier", "path_barrier", "tangent_kernel"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def flat_params(model: nn.Module) -> torch.Tensor:
    """A detached copy of the model's parameters as one vector, shape (P,)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def unflatten(model: nn.Module, theta: torch.Tensor) -> dict[str, torch.Tensor]:
    """Split a flat ``theta`` (shape ``(P,)``) into the model's named shapes."""
    named = list(model.named_parameters())
    P = sum(p.numel() for _, p in named)
    if theta.shape != (P,):
        raise ValueError(f"theta must have shape ({P},), got {tuple(theta.shape)}")
    out, start = {}, 0
    for name, p in named:
        out[name] = theta[start:start + p.numel()].view_as(p)
        start += p.numel()
    return out


def loss_at(model: nn.Module, theta: torch.Tensor, loss_fn: Loss,
            data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``loss_fn(f_theta(X), y)``, differentiable in ``theta``."""
    X, y = data
    return loss_fn(functional_call(model, unflatten(model, theta), (X,)), y)


def linear_path_losses(model: nn.Module, theta_a: torch.Tensor,
                       theta_b: torch.Tensor, alphas: torch.Tensor,
                       loss_fn: Loss, data: tuple[torch.Tensor, torch.Tensor]
                       ) -> torch.Tensor:
    """Loss at ``(1 - a) theta_a + a theta_b`` for each ``a`` in ``alphas``.

    Shape: ``alphas`` is ``(K,)``; the result is ``(K,)``.
    """
    with torch.no_grad():
        return torch.stack([loss_at(model, (1 - a) * theta_a + a * theta_b,
                                    loss_fn, data) for a in alphas])


def bezier(theta_a: torch.Tensor, theta_c: torch.Tensor, theta_b: torch.Tensor,
           t: float | torch.Tensor) -> torch.Tensor:
    """Quadratic Bezier curve ``(1-t)^2 a + 2 t (1-t) c + t^2 b``: shape (P,)."""
    return (1 - t) ** 2 * theta_a + 2 * t * (1 - t) * theta_c + t ** 2 * theta_b


def fit_bezier(model: nn.Module, theta_a: torch.Tensor, theta_b: torch.Tensor,
               loss_fn: Loss, data: tuple[torch.Tensor, torch.Tensor], *,
               steps: int, lr: float = 1e-2,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Train the control point of a Bezier curve between two solutions.

    Minimizes ``E_{t ~ U(0,1)} loss(bezier(a, c, b, t))`` over ``c`` with
    Adam, one ``t`` per step (Garipov et al. 2018), starting from the
    midpoint ``(a + b) / 2``. Returns ``c``, shape ``(P,)``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    theta_c = ((theta_a + theta_b) / 2).clone().requires_grad_(True)
    opt = torch.optim.Adam([theta_c], lr=lr)
    for _ in range(steps):
        t = torch.rand((), generator=generator, dtype=theta_a.dtype)
        opt.zero_grad()
        loss_at(model, bezier(theta_a, theta_c, theta_b, t), loss_fn, data).backward()
        opt.step()
    return theta_c.detach()


def path_barrier(losses: torch.Tensor) -> float:
    """Height of a loss path above the chord between its two end points.

    ``losses`` has shape ``(K,)``, at equally spaced ``t`` from 0 to 1; the
    barrier is ``max_k [losses_k - ((1 - t_k) losses_0 + t_k losses_K)]``.
    """
    if losses.dim() != 1 or len(losses) < 2:
        raise ValueError("losses must have shape (K,), K >= 2, got "
                         f"{tuple(losses.shape)}")
    t = torch.linspace(0, 1, len(losses), dtype=losses.dtype)
    chord = (1 - t) * losses[0] + t * losses[-1]
    return float((losses - chord).max())


def tangent_kernel(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Tangent kernel ``K = J J^T`` of a scalar-output model on ``X``.

    ``J`` (shape ``(n, P)``) is the Jacobian of the outputs with respect to
    the parameters, by :func:`torch.func.jacrev` per example. Shape: ``X``
    is ``(n, d)``; ``K`` is ``(n, n)``.
    """
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, p, (x[None],))
        if out.numel() != 1:
            raise ValueError("tangent_kernel needs a scalar-output model")
        return out.reshape(())

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, X)
    J = torch.cat([j.reshape(len(X), -1) for j in jac.values()], dim=1)
    return J @ J.T
