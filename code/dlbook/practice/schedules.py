"""The learning-rate range test (Smith, 2017) (chapter: the practice of training).

Warm-up and cosine decay are :func:`dlbook.train.warmup_cosine`; step decay
is :class:`torch.optim.lr_scheduler.StepLR`. This module adds the range test:
one short run in which the learning rate grows geometrically every step.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dlbook.train import iterate_minibatches

__all__ = ["RangeTest", "lr_range_test"]


@dataclass(frozen=True)
class RangeTest:
    """The outcome of :func:`lr_range_test`: per step, the learning rate, the
    mini-batch loss and its bias-corrected exponential moving average."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]

    @property
    def lr_at_minimum(self) -> float:
        """The learning rate at which the smoothed loss is lowest."""
        return self.lrs[min(range(len(self.smoothed)), key=self.smoothed.__getitem__)]

    def suggestion(self, divisor: float = 10.0) -> float:
        """A learning rate a factor ``divisor`` below :attr:`lr_at_minimum`:
        well inside the range where the loss still falls (a rule of thumb)."""
        return self.lr_at_minimum / divisor


def lr_range_test(model: nn.Module, loss_fn: Callable, optimizer,
                  train: tuple[torch.Tensor, torch.Tensor], *, lr_min: float,
                  lr_max: float, steps: int, batch_size: int,
                  generator: torch.Generator | None = None, beta: float = 0.9,
                  stop_factor: float = 4.0) -> RangeTest:
    """Train with ``lr = lr_min * (lr_max / lr_min) ** (t / (steps - 1))``.

    The loop is written out because the learning rate changes inside it.
    Mini-batches are reshuffled each pass over ``train``. The test stops early
    once the smoothed loss exceeds ``stop_factor`` times its minimum (or is
    not finite). ``model`` and ``optimizer`` are modified.
    """
    if not 0 < lr_min < lr_max or steps < 2:
        raise ValueError(f"need 0 < lr_min < lr_max and steps >= 2, got "
                         f"{lr_min}, {lr_max}, {steps}")
    X, y = train
    lrs, losses, smoothed, avg, best = [], [], [], 0.0, math.inf
    batches = iter(())
    model.train()
    for t in range(steps):
        lr = lr_min * (lr_max / lr_min) ** (t / (steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = next(batches, None)
        if idx is None:
            batches = iterate_minibatches(len(X), batch_size, generator)
            idx = next(batches)
        optimizer.zero_grad()
        loss = loss_fn(model(X[idx]), y[idx])
        loss.backward()
        optimizer.step()
        value = loss.item()
        avg = beta * avg + (1 - beta) * value
        lrs.append(lr), losses.append(value)
        smoothed.append(avg / (1 - beta ** (t + 1)))  # bias-corrected average
        if not math.isfinite(smoothed[-1]) or smoothed[-1] > stop_factor * best:
            break
        best = min(best, smoothed[-1])
    return RangeTest(lrs, losses, smoothed)
