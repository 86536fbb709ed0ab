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

from dlbook.nn import Dropout, dropout

__all__ = ["History", "fit", "evaluate", "accuracy", "iterate_minibatches",
           "train_epoch", "LambdaSchedule", "warmup_cosine", "Dropout", "dropout"]

Metric = Callable[[torch.Tensor, torch.Tensor], float]


@dataclass
class History:
    """What :func:`fit` measured.

    ``epochs[k]`` holds, for the end of epoch ``k + 1``, every metric by name
    (``train_loss``, ``val_loss``, ``train_acc``, ...). ``step_loss`` holds the
    mini-batch loss of every optimizer step. ``best_epoch`` is the epoch with
    the lowest validation loss (or training loss, without validation data);
    ``step_lr`` the learning rate (of the first parameter group) each step
    used, and ``step_grad_norm`` the gradient norm before clipping (recorded
    when :func:`fit` clips);
    ``0`` if no epoch ran. ``stopped_early`` says that patience ran out,
    ``diverged`` that a mini-batch loss became infinite or NaN.
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    step_grad_norm: list[float] = field(default_factory=list)
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
    """Loss and metrics of ``model`` on ``data = (X, y)`` in eval mode.

    Runs without recording gradients: the scores are numbers, and building the
    graph of a full-data forward pass would cost memory and time for nothing.
    """
    was_training = model.training
    model.eval()
    X, y = data
    try:
        with torch.no_grad():
            out = model(X)
            result = {f"{prefix}loss": float(loss_fn(out, y))}
            for name, metric in (metrics or {}).items():
                result[f"{prefix}{name}"] = float(metric(out, y))
    finally:
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
    generator: torch.Generator | None = None, *,
    step_scheduler=None, clip_grad_norm: float | None = None,
    history: History | None = None,
) -> list[float]:
    """One pass over ``train`` in shuffled mini-batches; return their losses.

    Full batch (``batch_size >= len(X)``) takes one step without shuffling.
    ``step_scheduler.step()`` is called after every optimizer step (per-step
    schedules such as warm-up); with ``clip_grad_norm`` the gradient's
    global norm is clipped to it before the step. ``history``, if given,
    receives each step's learning rate (and gradient norm when clipping).
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
        if clip_grad_norm is not None:
            norm = nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            if history is not None:
                history.step_grad_norm.append(float(norm))
        if history is not None:
            history.step_lr.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        if step_scheduler is not None:
            step_scheduler.step()
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
    scheduler_interval: str = "epoch",
    clip_grad_norm: float | None = None,
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
    called once per epoch, or after every optimizer step with
    ``scheduler_interval="step"`` (warm-up and other per-step schedules, e.g.
    :func:`warmup_cosine`). ``clip_grad_norm`` clips the gradient's global
    norm before each step. An epoch is a new best when its validation loss
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
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError("scheduler_interval must be 'epoch' or 'step', "
                         f"got {scheduler_interval!r}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 or None, got {patience}")
    n = len(train[0])
    bs = n if batch_size is None else batch_size
    if bs < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
    hist = History()
    stopper = _EarlyStopping(patience, min_delta, restore_best)
    bar = _progress_bar(epochs) if progress else None
    per_step = scheduler if scheduler_interval == "step" else None
    for epoch in range(1, epochs + 1):
        losses = train_epoch(model, loss_fn, optimizer, train, bs, generator,
                             step_scheduler=per_step,
                             clip_grad_norm=clip_grad_norm, history=hist)
        hist.step_loss += losses
        if scheduler is not None and per_step is None:
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


class LambdaSchedule:
    """A learning-rate schedule for any optimizer with ``param_groups``.

    At step ``t`` (the number of ``step()`` calls so far) every group's
    learning rate is its initial rate times ``factor(t)``, as in
    :class:`torch.optim.lr_scheduler.LambdaLR`, but it also drives the
    optimizers of :mod:`dlbook.optim`, which are not subclasses of
    :class:`torch.optim.Optimizer`.
    """

    def __init__(self, optimizer, factor: Callable[[int], float]) -> None:
        if not hasattr(optimizer, "param_groups"):
            raise ValueError("optimizer must have param_groups, got "
                             f"{type(optimizer).__name__}")
        self.optimizer, self.factor, self.last_step = optimizer, factor, 0
        self.base_lrs = [g.setdefault("initial_lr", g["lr"])
                         for g in optimizer.param_groups]
        self._apply()

    def _apply(self) -> None:
        f = self.factor(self.last_step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self) -> None:
        """Advance one step and set the learning rates."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The current learning rate of every parameter group."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.last_step, self.base_lrs = state["last_step"], list(state["base_lrs"])
        self._apply()


def warmup_cosine(optimizer, warmup_steps: int, total_steps: int,
                  min_factor: float = 0.0) -> LambdaSchedule:
    """A per-step schedule: linear warm-up, then cosine decay.

    The learning rate is ``lr * f(t)`` at step ``t`` with ``f`` rising
    linearly from ``1 / warmup_steps`` to 1 over ``warmup_steps`` steps,
    then falling as a half cosine to ``min_factor`` at ``total_steps`` (and
    staying there). Pass it to :func:`fit` with ``scheduler_interval="step"``.
    Works with the optimizers of :mod:`torch.optim` and :mod:`dlbook.optim`.
    """
    if not 0 <= warmup_steps <= total_steps or total_steps < 1:
        raise ValueError("need 0 <= warmup_steps <= total_steps and total_steps "
                         f">= 1, got {warmup_steps}, {total_steps}")

    def factor(t: int) -> float:
        if t < warmup_steps:
            return (t + 1) / warmup_steps
        frac = min(1.0, (t - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * frac))

    return LambdaSchedule(optimizer, factor)
