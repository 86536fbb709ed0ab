"""Fitting corrupted and random labels (chapter: generalization).

The randomization test of Zhang et al. (2017): replace a fraction of the
training labels by random ones and see whether a network still reaches zero
training error, how long it takes, and what is left of its test accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["corrupt_labels", "MemorizeConfig", "MemorizeResult",
           "fit_to_zero_error"]


def corrupt_labels(
    y: torch.Tensor, fraction: float, num_classes: int, *,
    generator: torch.Generator | None = None, exclude_true: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample exactly ``round(fraction * N)`` labels uniformly at random.

    Shape: ``y (N,)`` of ints in ``0..num_classes-1``. The corrupted indices
    are a uniformly random subset of that exact size; their new labels are
    uniform over all classes (Zhang et al.'s protocol, so some keep their
    value by chance) or, with ``exclude_true``, uniform over the other
    classes. Returns ``(y_new, mask)`` with ``mask`` marking the resampled
    entries.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    if y.ndim != 1:
        raise ValueError(f"y must have shape (N,), got {tuple(y.shape)}")
    n = len(y)
    k = round(fraction * n)
    idx = torch.randperm(n, generator=generator)[:k]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[idx] = True
    y_new = y.clone()
    if exclude_true:
        shift = torch.randint(1, num_classes, (k,), generator=generator)
        y_new[idx] = (y[idx] + shift) % num_classes
    else:
        y_new[idx] = torch.randint(0, num_classes, (k,), generator=generator)
    return y_new, mask


@dataclass(frozen=True)
class MemorizeConfig:
    """How :func:`fit_to_zero_error` trains (full-batch Adam)."""

    hidden: int = 256
    lr: float = 3e-3
    max_steps: int = 3000


@dataclass(frozen=True)
class MemorizeResult:
    """Steps to reach 100% training accuracy and the resulting accuracies."""

    steps: int
    train_acc: float
    test_acc: float
    model: nn.Module


def fit_to_zero_error(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    num_classes: int, config: MemorizeConfig = MemorizeConfig(), *,
    generator: torch.Generator | None = None,
) -> MemorizeResult:
    """Train a one-hidden-layer MLP until every training label is fitted.

    Full-batch Adam on cross-entropy; stops at the first step whose
    training accuracy is 1 (or at ``config.max_steps``). Test accuracy is
    measured against the *true* test labels.
    """
    X, y = train
    model = mlp([X.shape[1], config.hidden, num_classes], generator=generator)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss()
    steps = config.max_steps
    for step in range(config.max_steps):
        logits = model(X)
        if (logits.argmax(1) == y).all():
            steps = step
            break
        opt.zero_grad()
        loss_fn(logits, y).backward()
        opt.step()
    with torch.no_grad():
        train_acc = (model(X).argmax(1) == y).float().mean().item()
        test_acc = (model(test[0]).argmax(1) == test[1]).float().mean().item()
    return MemorizeResult(steps, train_acc, test_acc, model)
