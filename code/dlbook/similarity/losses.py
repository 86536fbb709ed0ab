"""Similarity losses (chapter: learning by similarity).

Metric learning (the pair loss of Hadsell, Chopra and LeCun 2006 and the
triplet loss) and the contrastive losses of self-supervised learning
(InfoNCE, SimCLR's NT-Xent and CLIP's symmetric loss). All take embeddings
and return a scalar mean over the batch; none normalizes its input unless it
says so.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

F = nn.functional

__all__ = ["pair_contrastive_loss", "triplet_loss", "info_nce", "nt_xent",
           "clip_loss", "batched_loss"]


def _check_pair(name1: str, z1: torch.Tensor, name2: str, z2: torch.Tensor):
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"{name1} and {name2} must both have shape (N, d), got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def pair_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, same: torch.Tensor,
                          margin: float = 1.0) -> torch.Tensor:
    """The pair loss of Hadsell et al. (2006), eq. (similarity-pair) of the chapter.

    ``same[i] = 1`` for a similar pair: loss ``d_i^2 / 2``; ``same[i] = 0``
    for a dissimilar one: ``max(0, margin - d_i)^2 / 2``, with ``d_i`` the
    Euclidean distance of ``z1[i]`` and ``z2[i]``. Shapes: ``z1, z2 (N, d)``,
    ``same (N,)``; returns the mean over pairs.
    """
    _check_pair("z1", z1, "z2", z2)
    if same.shape != z1.shape[:1]:
        raise ValueError(f"same must have shape ({len(z1)},), got {tuple(same.shape)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    # the 1e-12 keeps the gradient of the square root finite at d = 0
    d = ((z1 - z2).pow(2).sum(1) + 1e-12).sqrt()
    s = same.to(z1.dtype)
    return 0.5 * (s * d.pow(2) + (1 - s) * F.relu(margin - d).pow(2)).mean()


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor,
                 negative: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """The triplet loss ``max(0, d(a, p) - d(a, n) + margin)``, averaged.

    Euclidean distances, as :func:`torch.nn.functional.triplet_margin_loss`
    with ``p=2`` (which adds ``eps=1e-6`` to the differences; we do not).
    Shapes: ``anchor, positive, negative (N, d)``.
    """
    _check_pair("anchor", anchor, "positive", positive)
    _check_pair("anchor", anchor, "negative", negative)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    d_ap = (anchor - positive).norm(dim=1)
    d_an = (anchor - negative).norm(dim=1)
    return F.relu(d_ap - d_an + margin).mean()


def info_nce(z1: torch.Tensor, z2: torch.Tensor,
             temperature: float = 1.0) -> torch.Tensor:
    """InfoNCE (van den Oord et al. 2018) with the other rows as negatives.

    Row ``i`` of ``z1`` must pick out row ``i`` of ``z2`` among all ``N``
    rows: ``-mean_i log softmax_j(z1_i . z2_j / temperature)[i]``, eq.
    (similarity-infonce) of the chapter. The critic is the dot product of the
    inputs as given (normalize first for cosine similarity). Shapes: ``z1, z2 (N, d)``.
    """
    _check_pair("z1", z1, "z2", z2)
    _check_positive("temperature", temperature)
    logits = z1 @ z2.T / temperature  # (N, N); the diagonal holds the positives
    return F.cross_entropy(logits, torch.arange(len(z1), device=z1.device))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor,
            temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalized temperature-scaled cross-entropy (Chen et al. 2020).

    The ``2N`` embeddings are L2-normalized; each one's positive is the other
    view of its image and its ``2N - 2`` negatives are all the other views
    (itself excluded). Returns the mean over the ``2N`` anchors, eq.
    (similarity-ntxent). Shapes: ``z1, z2 (N, d)`` with ``N >= 2``.
    """
    _check_pair("z1", z1, "z2", z2)
    _check_positive("temperature", temperature)
    n = len(z1)
    if n < 2:
        raise ValueError(f"nt_xent needs N >= 2 pairs, got {n}")
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d)
    logits = z @ z.T / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))  # never its own pair
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, target)


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor,
              temperature: float | torch.Tensor = 0.1) -> torch.Tensor:
    """CLIP's symmetric contrastive loss (Radford et al. 2021).

    Both embeddings are L2-normalized; the loss is the mean of InfoNCE from
    images to texts and from texts to images. ``temperature`` may be a
    tensor (a learned one). Shapes: ``image_emb, text_emb (N, d)``.
    """
    _check_pair("image_emb", image_emb, "text_emb", text_emb)
    if torch.as_tensor(temperature).le(0).any():
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    zi, zt = F.normalize(image_emb, dim=1), F.normalize(text_emb, dim=1)
    logits = zi @ zt.T / temperature
    target = torch.arange(len(zi), device=zi.device)
    return 0.5 * (F.cross_entropy(logits, target)
                  + F.cross_entropy(logits.T, target))


def batched_loss(loss_fn: Callable, batch_size: int) -> Callable:
    """Score a contrastive loss on a large batch in chunks of ``batch_size``.

    A contrastive loss depends on the batch: its negatives are the other
    examples in it. :func:`dlbook.train.fit` measures the training loss on the
    whole training set after every epoch, which for NT-Xent on ``N`` images
    means a ``(2N, 2N)`` score matrix and a different quantity from the one
    trained. The wrapper returns ``loss_fn`` unchanged on outputs of at most
    ``batch_size`` examples, and otherwise the mean of ``loss_fn`` over
    consecutive chunks of ``batch_size`` (computed without gradient).
    Shapes: ``out (2, N, d)`` (two views or two towers), ``y (N,)``.
    """
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2, got {batch_size}")

    def chunked(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = out.shape[1]
        if n <= batch_size:
            return loss_fn(out, y)
        b = batch_size
        with torch.no_grad():  # a last chunk of one example has no negative: skip it
            parts = [loss_fn(out[:, i:i + b], y[i:i + b])
                     for i in range(0, n, b) if n - i >= 2]
        return torch.stack(parts).mean()

    return chunked
