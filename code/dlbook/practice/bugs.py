"""A gallery of real training bugs, each as a small function (practice chapter).

Each function reproduces one mistake on purpose, so that the chapter can show
its symptom and the check that catches it. None of them is for real use.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

__all__ = ["cross_entropy_wrong_axis", "cross_entropy_on_probabilities",
           "probability_loss_floor", "shuffle_labels", "index_leak",
           "evaluate_in_train_mode"]

F = nn.functional


def cross_entropy_wrong_axis(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BUG: the softmax normalizes over the batch (dim 0), not the classes.
    Shapes: ``logits (N, C)``, ``y (N,)``."""
    log_p = F.log_softmax(logits, dim=0)
    return -log_p[torch.arange(len(y)), y].mean()


def cross_entropy_on_probabilities(logits: torch.Tensor,
                                   y: torch.Tensor) -> torch.Tensor:
    """BUG: ``F.cross_entropy`` (which applies its own softmax) is given
    probabilities instead of logits. Shapes as ``F.cross_entropy``."""
    return F.cross_entropy(F.softmax(logits, dim=1), y)


def probability_loss_floor(num_classes: int) -> float:
    """``ln(1 + (C - 1) / e)``, the least value that
    :func:`cross_entropy_on_probabilities` can take."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return math.log(1 + (num_classes - 1) / math.e)


def shuffle_labels(y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """BUG: the labels permuted independently of the inputs (as when ``X`` and
    ``y`` are shuffled with two different permutations)."""
    return y[torch.randperm(len(y), generator=generator)]


def index_leak(X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BUG: sort the data by label and append the row number (scaled to
    [0, 1]) as a feature, as a file sorted by class with an ``id`` column
    would. A random split then leaks the label through the ``id``.
    Shapes: ``X (N, D)`` to ``(N, D + 1)``, ``y (N,)``."""
    order = torch.argsort(y, stable=True)
    row = torch.linspace(0, 1, len(y), dtype=X.dtype).unsqueeze(1)
    return torch.cat([X[order], row], dim=1), y[order]


@torch.no_grad()
def evaluate_in_train_mode(model: nn.Module, loss_fn: Callable,
                           data: tuple[torch.Tensor, torch.Tensor],
                           metrics: Mapping[str, Callable] | None = None,
                           batch_size: int = 50) -> dict[str, float]:
    """BUG: evaluation without ``model.eval()``, in batches of ``batch_size``
    taken in the order of ``data``: dropout stays on, batch normalization
    uses (and updates) the statistics of each evaluation batch. Returns the
    example-weighted means of the loss and the metrics."""
    model.train()
    X, y = data
    totals: dict[str, float] = {}
    for start in range(0, len(X), batch_size):
        xb, yb = X[start:start + batch_size], y[start:start + batch_size]
        out = model(xb)
        values = {"loss": float(loss_fn(out, yb))}
        values |= {k: float(m(out, yb)) for k, m in (metrics or {}).items()}
        for k, v in values.items():
            totals[k] = totals.get(k, 0.0) + v * len(xb)
    return {k: v / len(X) for k, v in totals.items()}
