"""Generative models as data (chapter transfer-data): a class-conditional VAE
from ``dlbook.conditional`` trained on the digits, a labelled training set
drawn from it, and the accuracy of a classifier trained on those samples and
tested on real images (the classification accuracy score of Ravuri & Vinyals
2019)."""
from __future__ import annotations

import torch
from torch import nn

from dlbook.conditional import CVAE, cvae_loss
from dlbook.train import fit

__all__ = ["train_class_conditional_vae", "sample_labelled"]

F = nn.functional


def train_class_conditional_vae(X: torch.Tensor, y: torch.Tensor, n_classes: int,
                                *, latent_dim: int = 8, hidden: int = 128,
                                epochs: int = 300, lr: float = 3e-3,
                                generator: torch.Generator | None = None) -> CVAE:
    """Fit ``p(x | y)`` by a :class:`~dlbook.conditional.CVAE` with one-hot
    conditions, through ``fit`` with full-batch Adam.
    Shapes: ``X (N, D)`` in ``[0, 1]``, ``y (N,)`` integer labels."""
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"X must be (N, D) and y (N,), got {tuple(X.shape)}, "
                         f"{tuple(y.shape)}")
    if X.min() < 0 or X.max() > 1:
        raise ValueError("X must lie in [0, 1] (Bernoulli likelihood)")
    model = CVAE(X.shape[1], n_classes, latent_dim, hidden, generator=generator)
    xc = torch.cat([X, F.one_hot(y, n_classes).to(X.dtype)], 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    fit(model, cvae_loss, opt, (xc, X), epochs=epochs, metrics={})
    return model.eval()


def sample_labelled(model: CVAE, n_per_class: int, *,
                    generator: torch.Generator | None = None,
                    mean: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` images of every class drawn from ``model``: the
    decoder's pixel means (``mean=True``) or Bernoulli draws from them.
    Returns ``X (K n, D)`` and ``y (K n,)``."""
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    K = model.cond_dim
    y = torch.arange(K).repeat_interleave(n_per_class)
    probs = model.sample(F.one_hot(y, K).float(), generator=generator)
    X = probs if mean else torch.bernoulli(probs, generator=generator)
    return X, y
