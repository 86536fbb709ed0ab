"""Training the chapter's models: a character GPT and an algorithmic task.

Chapter: transformers. A language model reads random windows of one long
stream of ids, so :func:`train_lm` draws a fresh batch of windows at every
step (a loop of its own, since :func:`dlbook.train.fit` iterates over a fixed
data set and evaluates all of it each epoch); the algorithmic task is a
fixed data set and trains with :func:`dlbook.train.fit`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dlbook.data import sequence_task
from dlbook.train import History, fit, warmup_cosine

from .gpt import GPT, Encoder, GPTConfig

__all__ = ["random_windows", "train_lm", "lm_bits_per_char", "sequence_loss",
           "token_accuracy", "sequence_accuracy", "TaskResult",
           "train_sequence_task", "position_free_ceiling"]


def random_windows(ids: torch.Tensor, batch_size: int, context: int,
                   generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``context`` ids and their next-id
    targets. Shapes: ``ids (T,)`` -> ``x, y (batch_size, context)``."""
    if ids.dim() != 1 or len(ids) <= context:
        raise ValueError(f"ids must be 1-D and longer than context={context}, "
                         f"got shape {tuple(ids.shape)}")
    start = torch.randint(0, len(ids) - context, (batch_size,), generator=generator)
    offs = start.unsqueeze(1) + torch.arange(context + 1)
    w = ids[offs]
    return w[:, :-1], w[:, 1:]


def sequence_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every position: ``(B, T, V), (B, T) -> ()``."""
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())


def train_lm(model: GPT, ids: torch.Tensor, *, steps: int, batch_size: int,
             lr: float = 3e-3, warmup: int = 20, weight_decay: float = 0.0,
             generator: torch.Generator | None = None,
             callback: Callable[[int, GPT], None] | None = None) -> list[float]:
    """AdamW with warm-up and cosine decay on random windows of ``ids``.

    ``callback(step, model)``, if given, runs after every optimizer step
    (``step`` counts from 1), e.g. to record a held-out learning curve; the
    model is back in training mode afterwards. Returns the training loss
    (nats per token) of every step.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, "
                         f"{batch_size}")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99),
                            weight_decay=weight_decay)
    sched = warmup_cosine(opt, warmup, steps, min_factor=0.1)
    model.train()
    losses = []
    for _ in range(steps):
        x, y = random_windows(ids, batch_size, model.config.context, generator)
        loss = sequence_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if callback is not None:
            callback(len(losses), model)
            model.train()
    return losses


@torch.no_grad()
def lm_bits_per_char(model: GPT, ids: torch.Tensor, max_windows: int | None = None,
                     stride: int | None = None) -> float:
    """Held-out bits per character of the targets ``ids[1:]``, by a sliding
    window.

    Windows of ``context`` ids start every ``stride`` ids (default
    ``context // 2``); the first window scores all its targets, each later
    one only its last ``stride`` (a final window aligned with the end of
    ``ids`` scores what is left), so every target is scored exactly once,
    with at least ``context - stride`` characters of history after the
    first window. ``max_windows`` caps the number of windows, and then only
    the targets they cover are scored. ``ids (N,)`` with ``N > context``.
    """
    n_ctx = model.config.context
    stride = n_ctx // 2 if stride is None else stride
    if not 1 <= stride <= n_ctx:
        raise ValueError(f"stride must lie in [1, {n_ctx}], got {stride}")
    if ids.dim() != 1 or len(ids) < n_ctx + 1:
        raise ValueError(f"ids must be 1-D with at least context + 1 = "
                         f"{n_ctx + 1} ids, got shape {tuple(ids.shape)}")
    n = (len(ids) - 1 - n_ctx) // stride + 1
    starts = list(range(0, n * stride, stride))
    new = [n_ctx] + [stride] * (n - 1)          # targets each window scores
    tail = len(ids) - 1 - (starts[-1] + n_ctx)
    if tail > 0:
        starts.append(len(ids) - 1 - n_ctx)
        new.append(tail)
    if max_windows is not None:
        starts, new = starts[:max_windows], new[:max_windows]
    offs = torch.tensor(starts).unsqueeze(1) + torch.arange(n_ctx + 1)
    w = ids[offs]
    was = model.training
    model.eval()
    nll = F.cross_entropy(model(w[:, :-1]).transpose(1, 2), w[:, 1:],
                          reduction="none")                  # (windows, context)
    model.train(was)
    scored = torch.cat([row[n_ctx - m:] for row, m in zip(nll, new)])
    return scored.mean().item() / math.log(2)


def token_accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of positions whose arg-max is the target: ``(B, T, V), (B, T)``."""
    return (logits.argmax(-1) == y).float().mean().item()


def sequence_accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of sequences with every position right."""
    return (logits.argmax(-1) == y).all(-1).float().mean().item()


@dataclass(frozen=True)
class TaskResult:
    """A trained model on an algorithmic task, its history and test data."""

    model: Encoder
    history: History
    test: tuple[torch.Tensor, torch.Tensor]


def train_sequence_task(kind: str = "reverse", *, length: int = 12,
                        vocab_size: int = 10, n_train: int = 4000,
                        n_test: int = 500, config: GPTConfig | None = None,
                        epochs: int = 12, batch_size: int = 64, lr: float = 3e-3,
                        seed: int = 0) -> TaskResult:
    """Train an :class:`Encoder` to map ``src`` to ``tgt`` position by position.

    Data from :func:`dlbook.data.sequence_task`; the test set has its own
    seed. ``config`` defaults to one layer, one head, ``d_model=64`` and
    learned positions.
    """
    config = config or GPTConfig(vocab_size, length, n_layer=1, n_head=1,
                                 d_model=64)
    train = sequence_task(kind, n_train, length, vocab_size, seed=seed)
    test = sequence_task(kind, n_test, length, vocab_size, seed=seed + 1000)
    g = torch.Generator().manual_seed(seed)
    model = Encoder(config, generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    steps = epochs * math.ceil(n_train / batch_size)
    hist = fit(model, sequence_loss, opt, train, epochs=epochs,
               batch_size=batch_size, val=test, generator=g,
               metrics={"acc": token_accuracy, "seq_acc": sequence_accuracy},
               scheduler=warmup_cosine(opt, steps // 10, steps),
               scheduler_interval="step")
    return TaskResult(model, hist, test)


def position_free_ceiling(kind: str, length: int, vocab_size: int, *,
                          n: int = 20000, seed: int = 0) -> float:
    """The best expected token accuracy of any permutation-equivariant model.

    Such a model's output at position ``i`` is a function of ``x_i`` and of
    the multiset of the other tokens, so for ``"reverse"`` the best it can
    do at ``i != length - 1 - i`` is to guess the commonest token of the
    multiset with one ``x_i`` removed; it is right with probability (largest
    count) / (length - 1). ``"copy"`` needs no positions (ceiling 1).
    Estimated on ``n`` sequences of :func:`dlbook.data.sequence_task`.
    """
    if kind == "copy":
        return 1.0
    if kind != "reverse":
        raise ValueError(f"kind must be 'copy' or 'reverse', got {kind!r}")
    src, _ = sequence_task(kind, n, length, vocab_size, seed=seed)
    counts = F.one_hot(src, vocab_size).sum(1)                   # (n, V)
    acc = []
    for i in range(length):
        if i == length - 1 - i:
            acc.append(torch.ones(n))
            continue
        rest = counts - F.one_hot(src[:, i], vocab_size)
        acc.append(rest.max(1).values / (length - 1))
    return torch.stack(acc).mean().item()
