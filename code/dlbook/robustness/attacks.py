"""Adversarial attacks under the l-infinity ball and the box [0, 1] (chapter
"Beyond the training distribution: robustness", chapter ``ood``).

``fgsm`` and ``pgd`` follow the signatures of the robustness literature
(``model, x, y, eps``); ``linear_worst_case`` is the closed-form inner maximum
of robust optimization for a linear classifier, the oracle that PGD must reach.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["project_linf", "fgsm", "pgd", "linear_worst_case", "input_gradient"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_CE: LossFn = nn.functional.cross_entropy


def _check_budget(eps: float, box: tuple[float, float] | None) -> None:
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    if box is not None and not box[0] < box[1]:
        raise ValueError(f"box must be (low, high) with low < high, got {box!r}")


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float,
                 box: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """Euclidean projection of ``x_adv`` onto the intersection
    of ``{x' : |x' - x|_inf <= eps}`` with the box.

    Both sets are products of intervals, so their intersection is one too
    (non-empty when ``x`` lies in the box) and the projection is a
    coordinate-wise clamp. Shape: ``x_adv`` and ``x`` of any equal shape; kept.
    """
    _check_budget(eps, box)
    if x_adv.shape != x.shape:
        raise ValueError(f"x_adv has shape {tuple(x_adv.shape)}, "
                         f"x has shape {tuple(x.shape)}")
    lo, hi = x - eps, x + eps
    if box is not None:
        lo, hi = lo.clamp(min=box[0]), hi.clamp(max=box[1])
    return torch.maximum(torch.minimum(x_adv, hi), lo)


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   loss_fn: LossFn = _CE) -> torch.Tensor:
    """Gradient of the summed loss with respect to the input (not the weights).

    Summing makes each row's gradient that of its own loss. Shapes: ``x (N, ...)``,
    ``y (N,)``; returns the shape of ``x``.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    x = x.detach().requires_grad_(True)
    loss = loss_fn(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
         loss_fn: LossFn = _CE,
         box: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """The fast gradient sign method (Goodfellow et al., 2015).

    One step ``x + eps * sign(grad_x loss)``, then clamped to the box.
    Shapes: ``x (N, ...)``, ``y (N,)``; returns a detached tensor like ``x``.
    """
    _check_budget(eps, box)
    step = eps * input_gradient(model, x, y, loss_fn).sign()
    return project_linf(x.detach() + step, x.detach(), eps, box)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
        alpha: float, steps: int, random_start: bool = True,
        generator: torch.Generator | None = None, *, loss_fn: LossFn = _CE,
        box: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """Projected gradient ascent on the loss (Madry et al., 2018).

    From a uniform random start in the ball (``random_start``, drawn from
    ``generator``) or from ``x``, take ``steps`` signed-gradient steps of size
    ``alpha`` (steepest ascent for the l-infinity norm), each followed by the
    projection onto the ball of radius ``eps`` and the box. Returns the last
    iterate. Shapes: ``x (N, ...)``, ``y (N,)``; returns a detached tensor like
    ``x``.
    """
    _check_budget(eps, box)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    x = x.detach()
    x_adv = x
    if random_start:
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype)
        x_adv = project_linf(x + eps * (2 * u - 1), x, eps, box)
    for _ in range(steps):
        g = input_gradient(model, x_adv, y, loss_fn)
        x_adv = project_linf(x_adv + alpha * g.sign(), x, eps, box)
    return x_adv


def linear_worst_case(w: torch.Tensor, b: torch.Tensor | float, x: torch.Tensor,
                      y: torch.Tensor, eps: float,
                      box: tuple[float, float] | None = (0.0, 1.0)
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact inner maximum of robust optimization for a linear classifier.

    For labels ``y`` in {-1, +1} and margin ``m(x) = y (<w, x> + b)``, every loss
    that decreases in the margin is maximized over the ball and box by the
    perturbation that minimizes the margin, coordinate by coordinate: move
    ``x_i`` by ``-y eps sign(w_i)``, clipped to the box. Without a box the
    smallest margin is ``m(x) - eps |w|_1``.

    Shapes: ``w (D,)``, ``x (N, D)``, ``y (N,)``. Returns ``(delta, margin)``,
    the optimal perturbation ``(N, D)`` and the smallest margin ``(N,)``.
    """
    _check_budget(eps, box)
    if w.ndim != 1 or x.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"need w (D,) and x (N, D), got {tuple(w.shape)} "
                         f"and {tuple(x.shape)}")
    if not torch.all((y == 1) | (y == -1)):
        raise ValueError("y must take values in {-1, +1}")
    ys = y.to(x.dtype).unsqueeze(1)
    delta = -eps * ys * w.sign().unsqueeze(0)
    if box is not None:
        delta = torch.maximum(torch.minimum(delta, box[1] - x), box[0] - x)
    margin = y.to(x.dtype) * ((x + delta) @ w + b)
    return delta, margin
