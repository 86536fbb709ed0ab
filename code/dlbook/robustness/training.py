"""Robust training loops: adversarial training (a min-max problem) and group
distributionally robust optimization (chapter ``ood``).

Both loops are written out rather than run through ``dlbook.train.fit``,
because the algorithm is the subject: each step first solves (approximately)
an inner maximization, over perturbations or over group weights, and only then
takes a gradient step on the weights.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..train import iterate_minibatches

__all__ = ["adversarial_train", "robust_accuracy", "group_losses",
           "group_accuracies", "group_dro_train"]

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
F = nn.functional


def adversarial_train(model: nn.Module, optimizer: torch.optim.Optimizer,
                      train: tuple[torch.Tensor, torch.Tensor], attack: Attack,
                      *, epochs: int, batch_size: int | None = None,
                      generator: torch.Generator | None = None) -> list[float]:
    """Adversarial training (Madry et al., 2018): minimize the loss at
    ``attack(model, x, y)`` instead of at ``x``.

    ``attack`` approximates the inner maximum (e.g. a ``functools.partial`` of
    :func:`pgd`); it runs with the model in eval mode so that it sees the
    network it attacks. Shapes: ``train = (X (N, ...), y (N,))``. Returns the
    mean adversarial training loss of each epoch.
    """
    X, y = train
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    bs = len(X) if batch_size is None else batch_size
    history = []
    for _ in range(epochs):
        total = 0.0
        for idx in iterate_minibatches(len(X), bs, generator):
            model.eval()
            x_adv = attack(model, X[idx], y[idx])  # inner maximization
            model.train()
            loss = F.cross_entropy(model(x_adv), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        history.append(total / len(X))
    model.eval()
    return history


def robust_accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                    attack: Attack | None = None) -> float:
    """Accuracy on ``attack(model, X, y)`` (on ``X`` itself when ``attack`` is
    None). Shapes: ``X (N, ...)``, ``y (N,)``."""
    model.eval()
    x_eval = X if attack is None else attack(model, X, y)
    with torch.no_grad():
        return (model(x_eval).argmax(1) == y).float().mean().item()


def group_losses(logits: torch.Tensor, y: torch.Tensor, groups: torch.Tensor,
                 n_groups: int) -> torch.Tensor:
    """Mean cross-entropy within each group (0 for an empty group).

    Shapes: ``logits (N, C)``, ``y (N,)``, ``groups (N,)`` with values in
    ``range(n_groups)``; returns ``(n_groups,)``.
    """
    if groups.min() < 0 or groups.max() >= n_groups:
        raise ValueError(f"groups must lie in range({n_groups}), got values "
                         f"in [{int(groups.min())}, {int(groups.max())}]")
    per = F.cross_entropy(logits, y, reduction="none")
    sums = torch.zeros(n_groups, dtype=per.dtype).index_add(0, groups, per)
    counts = torch.bincount(groups, minlength=n_groups).to(per.dtype)
    return sums / counts.clamp(min=1)


@torch.no_grad()
def group_accuracies(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                     groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Accuracy within each group (NaN for an empty group).

    Shapes: ``X (N, ...)``, ``y (N,)``, ``groups (N,)``; returns ``(n_groups,)``.
    """
    model.eval()
    correct = (model(X).argmax(1) == y).double()
    sums = torch.zeros(n_groups, dtype=torch.float64).index_add(0, groups, correct)
    counts = torch.bincount(groups, minlength=n_groups).double()
    return sums / counts


def group_dro_train(model: nn.Module, optimizer: torch.optim.Optimizer,
                    train: tuple[torch.Tensor, torch.Tensor],
                    groups: torch.Tensor, n_groups: int, *, epochs: int,
                    eta_q: float = 0.01) -> torch.Tensor:
    """Group DRO by the online algorithm of Sagawa et al. (2020), full batch.

    The weights ``q`` on the groups ascend the group losses by an
    exponentiated-gradient step, ``q_g <- q_g exp(eta_q L_g)`` renormalized,
    and the model descends the weighted loss ``sum_g q_g L_g``: a
    min over weights, max over mixtures of groups. Shapes: ``train = (X (N,
    ...), y (N,))``, ``groups (N,)``. Returns the final ``q``, shape
    ``(n_groups,)``.
    """
    X, y = train
    if not len(X) == len(y) == len(groups):
        raise ValueError("X, y and groups must have the same length, got "
                         f"{len(X)}, {len(y)}, {len(groups)}")
    if not eta_q >= 0:
        raise ValueError(f"eta_q must be >= 0, got {eta_q}")
    present = torch.bincount(groups, minlength=n_groups) > 0
    q = present.double() / present.sum()
    model.train()
    for _ in range(epochs):
        losses = group_losses(model(X), y, groups, n_groups)
        q = q * torch.exp(eta_q * losses.detach().double())  # ascent on q
        q = q / q.sum()
        loss = (q.to(losses.dtype) * losses).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return q
