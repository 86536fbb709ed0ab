"""The chapter's training experiments: the adding problem and the character
model of ABC tunes.

Chapter: memory and recurrent networks. Both train through
:func:`dlbook.train.fit` with Adam and gradient-norm clipping.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlbook.data import CharVocab, adding_problem
from dlbook.train import History, fit

from .models import CharModel, SequenceRegressor, char_loss, char_windows

__all__ = ["train_adding", "train_char_model"]


def train_adding(cell: str, *, length: int = 50, hidden_size: int = 32,
                 n_train: int = 2000, n_val: int = 500, epochs: int = 10,
                 batch_size: int = 50, lr: float = 1e-2,
                 clip_grad_norm: float | None = 1.0,
                 forget_bias: float | None = None, backend: str = "torch",
                 seed: int = 0) -> tuple[SequenceRegressor, History]:
    """Train a :class:`SequenceRegressor` on the adding problem of ``length``
    steps (MSE loss; predicting the mean, 1, scores 1/6). Training and
    validation sets are drawn with different seeds."""
    X, y = adding_problem(n_train, length, seed=seed)
    Xv, yv = adding_problem(n_val, length, seed=seed + 10_000)
    g = torch.Generator().manual_seed(seed)
    model = SequenceRegressor(cell, 2, hidden_size, generator=g, backend=backend,
                              forget_bias=forget_bias)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist = fit(model, F.mse_loss, opt, (X, y), epochs=epochs,
               batch_size=batch_size, val=(Xv, yv), generator=g,
               clip_grad_norm=clip_grad_norm)
    return model, hist


def train_char_model(text: str, val_text: str, *, hidden_size: int = 128,
                     embed_dim: int = 16, length: int = 100, stride: int = 50,
                     epochs: int = 4, batch_size: int = 32, lr: float = 5e-3,
                     clip_grad_norm: float = 1.0, cell: str = "lstm",
                     backend: str = "torch", seed: int = 0
                     ) -> tuple[CharModel, CharVocab, History]:
    """Train a character :class:`CharModel` on windows of ``text``; the
    history's losses are in nats per character (``val_bpc`` in bits is added
    to each epoch's record)."""
    vocab = CharVocab.from_text(text + val_text)
    X, Y = char_windows(vocab.encode(text), length, stride)
    Xv, Yv = char_windows(vocab.encode(val_text), length, length)
    g = torch.Generator().manual_seed(seed)
    model = CharModel(len(vocab), embed_dim, hidden_size, cell, generator=g,
                      backend=backend)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def bits(_, record):
        record["val_bpc"] = record["val_loss"] / math.log(2)

    hist = fit(model, char_loss, opt, (X, Y), epochs=epochs, batch_size=batch_size,
               val=(Xv, Yv), generator=g, clip_grad_norm=clip_grad_norm,
               callback=bits)
    return model, vocab, hist
