"""Training while measuring the loss landscape (chapter optimization-theory).

Full-batch and mini-batch training through :func:`dlbook.train.fit`, with
the sharpness (top Hessian eigenvalue of the full training loss) measured
every few steps, and the Polyak-Lojasiewicz ratio of a training run.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..train import History, fit
from .hessian import flat_grad, sharpness

__all__ = ["training_loss_closure", "model_sharpness", "train_tracking_sharpness",
           "pl_ratio", "track_top_direction", "TwoLayerTanhNTK"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def training_loss_closure(model: nn.Module, loss_fn: Loss, X: torch.Tensor,
                          y: torch.Tensor) -> tuple[Callable[[], torch.Tensor],
                                                    list[torch.Tensor]]:
    """``(closure, params)``: the full-data loss as a function of ``params``.

    ``closure()`` evaluates ``loss_fn(model(X), y)`` at the model's current
    parameters; ``params`` lists the trainable parameters, in order.
    """
    if len(X) != len(y):
        raise ValueError(f"X and y must have the same length, got {len(X)} "
                         f"and {len(y)}")
    params = [p for p in model.parameters() if p.requires_grad]
    return (lambda: loss_fn(model(X), y)), params


def model_sharpness(model: nn.Module, loss_fn: Loss, X: torch.Tensor,
                    y: torch.Tensor, iters: int = 20, *,
                    generator: torch.Generator | None = None) -> float:
    """Sharpness of the full-data loss of ``model`` on ``(X, y)``."""
    closure, params = training_loss_closure(model, loss_fn, X, y)
    return sharpness(closure, params, iters, generator=generator)


def train_tracking_sharpness(model: nn.Module, loss_fn: Loss,
                             data: tuple[torch.Tensor, torch.Tensor], *,
                             lr: float, steps: int, every: int = 10,
                             iters: int = 20, batch_size: int | None = None,
                             generator: torch.Generator | None = None
                             ) -> History:
    """Train with plain SGD (full batch by default) and track the sharpness.

    One epoch of :func:`~dlbook.train.fit` is one step when ``batch_size`` is
    ``None``. Every ``every`` epochs (and after the first) the record gains
    ``"sharpness"``, measured on the whole of ``data`` with ``iters``
    power iterations; other records hold ``nan``.
    """
    if lr <= 0 or steps < 1 or every < 1:
        raise ValueError(f"need lr > 0, steps >= 1, every >= 1; got lr={lr}, "
                         f"steps={steps}, every={every}")
    X, y = data
    count = [0]

    def measure(m: nn.Module, record: dict[str, float]) -> None:
        count[0] += 1
        if count[0] == 1 or count[0] % every == 0:
            record["sharpness"] = model_sharpness(m, loss_fn, X, y, iters,
                                                  generator=generator)
        else:
            record["sharpness"] = float("nan")

    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return fit(model, loss_fn, opt, data, epochs=steps, batch_size=batch_size,
               metrics={}, generator=generator, callback=measure)


def track_top_direction(model: nn.Module, loss_fn: Loss,
                        data: tuple[torch.Tensor, torch.Tensor], *, lr: float,
                        steps: int, iters: int = 4,
                        generator: torch.Generator | None = None) -> History:
    """Full-batch gradient descent, recording the top Hessian direction per step.

    Before training, twenty power iterations find the top eigenvector ``u``;
    after every step ``iters`` more, warm-started from the previous ``u``,
    follow it. Each record gains ``"sharpness"`` (the Rayleigh quotient) and
    ``"grad_top"``, the component ``u^T grad f`` of the full gradient along
    ``u``: the oscillation that self-stabilization (Damian, Nichani and Lee
    2023) describes. Warm starts keep the sign of ``u`` from step to step.
    """
    if lr <= 0 or steps < 1 or iters < 1:
        raise ValueError(f"need lr > 0, steps >= 1, iters >= 1; got lr={lr}, "
                         f"steps={steps}, iters={iters}")
    X, y = data
    closure, params = training_loss_closure(model, loss_fn, X, y)
    _, u = sharpness(closure, params, 20, generator=generator, return_vector=True)
    state = [u]

    def measure(m: nn.Module, record: dict[str, float]) -> None:
        lam, state[0] = sharpness(closure, params, iters, v0=state[0],
                                  return_vector=True)
        record["sharpness"] = lam
        record["grad_top"] = float(flat_grad(closure, params) @ state[0])

    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return fit(model, loss_fn, opt, data, epochs=steps, metrics={},
               callback=measure)


def pl_ratio(grad_norm_sq: torch.Tensor, loss: torch.Tensor,
             loss_star: float = 0.0) -> torch.Tensor:
    """Polyak-Lojasiewicz ratio ``||grad||^2 / (2 (L - L*))``, elementwise.

    The largest ``mu`` for which the PL inequality holds at each point.
    Shape: any, the same for both inputs.
    """
    gap = loss - loss_star
    if torch.any(gap <= 0):
        raise ValueError("loss must exceed loss_star everywhere")
    return grad_norm_sq / (2 * gap)


class TwoLayerTanhNTK(nn.Module):
    """Two-layer net in the NTK parameterization, scalar output.

    ``f(x) = v^T tanh(W x / sqrt(d)) / sqrt(m)`` with ``W`` (shape
    ``(m, d)``) and ``v`` (shape ``(m,)``) drawn from N(0, 1): the setting of
    Liu, Zhu and Belkin (2022), whose tangent kernel has a limit as the width
    ``m`` grows. Smooth (tanh), unlike the ReLU network
    ``dlbook.generalization.TwoLayerNTK``, because the PL argument needs
    a bounded model Hessian. Shape: ``(N, d) -> (N, 1)``.
    """

    def __init__(self, in_features: int, width: int, *,
                 generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if in_features < 1 or width < 1:
            raise ValueError(f"in_features and width must be >= 1, got "
                             f"{in_features}, {width}")
        self.W = nn.Parameter(torch.randn(width, in_features, generator=generator,
                                          dtype=dtype))
        self.v = nn.Parameter(torch.randn(width, generator=generator, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, m = self.W.shape[1], self.W.shape[0]
        h = torch.tanh(x @ self.W.T / d ** 0.5)
        return (h @ self.v / m ** 0.5)[:, None]
