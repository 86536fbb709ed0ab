"""A small, silent training loop used by every chapter (shared machinery).

:func:`fit` trains a model on in-memory tensors and returns a
:class:`History`; it prints nothing. It works with any optimizer that has
``step()`` and ``zero_grad()``: those of :mod:`torch.optim` and of
:mod:`dlbook.optim` alike. Chapter 3 (training) explains every part of it.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["History", "fit", "evaluate", "accuracy", "iterate_minibatches",
           "train_epoch", "Dropout", "dropout"]

Metric = Callable[[torch.Tensor, torch.Tensor], float]


@dataclass
class History:
    """What :func:`fit` measured.

    ``epochs[k]`` holds, for the end of epoch ``k + 1``, every metric by name
    (``train_loss``, ``val_loss``, ``train_acc``, ...). ``step_loss`` holds the
    mini-batch loss of every optimizer step. ``best_epoch`` is the epoch with
    the lowest validation loss (or training loss, without validation data);
    ``0`` if no epoch ran. ``stopped_early`` says that patience ran out,
    ``diverged`` that a mini-batch loss became infinite or NaN.
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    diverged: bool = False

    def __len__(self) -> int:
        """The number of epochs recorded."""
        return len(self.epochs)

    def keys(self) -> list[str]:
        """The names of the per-epoch metrics."""
        return list(self.epochs[0]) if self.epochs else []

    def __getitem__(self, name: str) -> list[float]:
        """The per-epoch series of one metric, e.g. ``history["val_loss"]``."""
        if self.epochs and name not in self.epochs[0]:
            raise KeyError(f"no metric {name!r}; have {sorted(self.epochs[0])}")
        return [e[name] for e in self.epochs]

    @property
    def final(self) -> dict[str, float]:
        """The metrics at the end of the last epoch."""
        return self.epochs[-1] if self.epochs else {}

    @property
    def best(self) -> dict[str, float]:
        """The metrics at the end of epoch ``best_epoch``."""
        return self.epochs[self.best_epoch - 1] if self.best_epoch else {}


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label.

    Shapes: ``logits (N, C)`` and ``y (N,)``; for ``logits (N,)`` or
    ``(N, 1)`` a positive logit predicts class 1.
    """
    if logits.ndim == 2 and logits.shape[1] > 1:
        pred = logits.argmax(dim=1)
    else:
        pred = (logits.reshape(-1) > 0).long()
    return (pred == y.reshape(-1)).float().mean().item()


def iterate_minibatches(
    n: int, batch_size: int, generator: torch.Generator | None = None,
    shuffle: bool = True,
):
    """Yield index tensors that cover ``range(n)`` in batches of ``batch_size``.

    The last batch may be smaller. Shuffling draws from ``generator``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = (torch.randperm(n, generator=generator) if shuffle
             else torch.arange(n))
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


@torch.no_grad()
def evaluate(
    model: nn.Module, loss_fn: Callable, data: tuple[torch.Tensor, torch.Tensor],
    metrics: Mapping[str, Metric] | None = None, prefix: str = "",
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``data = (X, y)`` in eval mode."""
    was_training = model.training
    model.eval()
    X, y = data
    out = model(X)
    result = {f"{prefix}loss": float(loss_fn(out, y))}
    for name, metric in (metrics or {}).items():
        result[f"{prefix}{name}"] = float(metric(out, y))
    model.train(was_training)
    return result


def _check_data(name: str, data) -> None:
    if (not isinstance(data, (tuple, list)) or len(data) != 2
            or len(data[0]) != len(data[1])):
        raise ValueError(
            f"{name} must be a pair (X, y) of equal length, got {type(data)}")


def train_epoch(
    model: nn.Module, loss_fn: Callable, optimizer,
    train: tuple[torch.Tensor, torch.Tensor], batch_size: int,
    generator: torch.Generator | None = None,
) -> list[float]:
    """One pass over ``train`` in shuffled mini-batches; return their losses.

    Stops at the first loss that is not finite (and returns it last), since
    every later step would only propagate the NaN.
    """
    X, y = train
    model.train()
    losses = []
    for idx in iterate_minibatches(len(X), batch_size, generator,
                                   shuffle=batch_size < len(X)):
        optimizer.zero_grad()
        loss = loss_fn(model(X[idx]), y[idx])
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
        loss.backward()
        optimizer.step()
    return losses


def fit(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer,
    train: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    batch_size: int | None = None,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    metrics: Mapping[str, Metric] | None = None,
    generator: torch.Generator | None = None,
    scheduler=None,
    patience: int | None = None,
    restore_best: bool = False,
    progress: bool = False,
    min_delta: float = 0.0,
    callback: Callable[[nn.Module, dict[str, float]], None] | None = None,
) -> History:
    """Train ``model`` by mini-batch gradient steps; return a :class:`History`.

    ``train`` and ``val`` are pairs ``(X, y)``; ``batch_size=None`` means full
    batch. Shuffling draws from ``generator``. After each epoch the loss and
    ``metrics`` (e.g. ``{"acc": accuracy}``) are measured on the whole training
    set (``train_*``) and on ``val`` (``val_*``), and ``callback(model,
    record)`` may add entries to that epoch's record. ``scheduler.step()`` is
    called once per epoch. An epoch is a new best when its validation loss
    (training loss without ``val``) beats the best so far by more than
    ``min_delta``. With ``patience``, training stops after that many epochs
    without a new best (early stopping); with ``restore_best`` the best
    epoch's weights are loaded back at the end. A non-finite mini-batch loss
    ends training (``History.diverged``). ``progress=True`` shows a progress
    bar (needs ``tqdm``). Nothing is printed.
    """
    _check_data("train", train)
    if val is not None:
        _check_data("val", val)
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 or None, got {patience}")
    n = len(train[0])
    bs = n if batch_size is None else batch_size
    if bs < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
    hist = History()
    stopper = _EarlyStopping(patience, min_delta, restore_best)
    bar = _progress_bar(epochs) if progress else None
    for epoch in range(1, epochs + 1):
        losses = train_epoch(model, loss_fn, optimizer, train, bs, generator)
        hist.step_loss += losses
        if scheduler is not None:
            scheduler.step()
        record = evaluate(model, loss_fn, train, metrics, "train_")
        if val is not None:
            record |= evaluate(model, loss_fn, val, metrics, "val_")
        if callback is not None:
            callback(model, record)
        hist.epochs.append(record)
        if bar is not None:
            bar.update()
        if not math.isfinite(losses[-1] if losses else 0.0):
            hist.diverged = True
            break
        watched = record["val_loss" if val is not None else "train_loss"]
        if stopper.should_stop(watched, epoch, model):
            hist.stopped_early = True
            break
    if bar is not None:
        bar.close()
    hist.best_epoch = stopper.best_epoch
    if restore_best and stopper.best_state is not None:
        model.load_state_dict(stopper.best_state)
    return hist


def _progress_bar(epochs: int):
    from tqdm.auto import tqdm  # optional dependency, for interactive use
    return tqdm(total=epochs, desc="epochs")


class _EarlyStopping:
    """Tracks the best epoch; says when ``patience`` epochs brought no gain."""

    def __init__(self, patience: int | None, min_delta: float,
                 keep: bool) -> None:
        self.patience, self.min_delta, self.keep = patience, min_delta, keep
        self.best, self.best_epoch, self.best_state, self.waited = (
            math.inf, 0, None, 0)

    def should_stop(self, watched: float, epoch: int,
                    model: nn.Module) -> bool:
        if watched < self.best - self.min_delta:
            self.best, self.best_epoch, self.waited = watched, epoch, 0
            if self.keep:
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.waited += 1
        return self.patience is not None and self.waited >= self.patience


def dropout(
    x: torch.Tensor, p: float = 0.5, training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Inverted dropout: zero entries with probability ``p``, scale the rest.

    Survivors are multiplied by ``1 / (1 - p)`` so that ``E[dropout(x)] = x``
    (chapter 3); at evaluation time (``training=False``) it is the identity.
    Shape: any; the output has the shape of ``x``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep / (1.0 - p)


class Dropout(nn.Module):
    """Inverted dropout as a layer; same argument as :class:`torch.nn.Dropout`.

    Active in ``model.train()`` mode, the identity in ``model.eval()`` mode.
    Masks are drawn from ``generator`` (global RNG if ``None``).
    """

    def __init__(self, p: float = 0.5,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"
