"""Training objectives other than classification (chapter: the theory of
representations), for the convergence experiment: a contrastive loss on two
augmented views of each digit.

The loss is the similarity chapter's ``dlbook.similarity.nt_xent`` (SimCLR's
normalized-temperature cross-entropy), applied to the two halves of what
``TwoViews`` returns; the views here are this chapter's own (random shifts
and pixel noise).
"""
from __future__ import annotations

import torch
from torch import nn

from dlbook.data import shift_images

__all__ = ["random_shifts", "TwoViews"]


def random_shifts(X: torch.Tensor, max_shift: int,
                  generator: torch.Generator) -> torch.Tensor:
    """Shift each 8x8 image by its own random ``(dx, dy)`` in ``[-m, m]^2``.

    Pixels shifted in are zero (:func:`dlbook.data.shift_images`).
    Shapes: ``(N, 64) -> (N, 64)``.
    """
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    k = 2 * max_shift + 1
    code = torch.randint(0, k * k, (len(X),), generator=generator)
    out = torch.empty_like(X)
    for c in range(k * k):
        rows = code == c
        if rows.any():
            out[rows] = shift_images(X[rows], c % k - max_shift,
                                     c // k - max_shift)
    return out


class TwoViews(nn.Module):
    """Wrap an encoder so that ``forward(X)`` embeds two random views of ``X``.

    A view is a random shift of up to ``max_shift`` pixels plus Gaussian
    pixel noise of standard deviation ``noise``, drawn from ``generator``.
    ``forward`` returns ``cat([encoder(view1), encoder(view2)])``, so that
    :func:`dlbook.train.fit` can train it with
    ``loss_fn=lambda z, _: dlbook.similarity.nt_xent(*z.chunk(2))``.
    The representation is
    ``self.encoder``. Shapes: ``(B, 64) -> (2B, d)``.
    """

    def __init__(self, encoder: nn.Module, max_shift: int = 1,
                 noise: float = 0.1, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.encoder, self.max_shift, self.noise = encoder, max_shift, noise
        self.generator = generator

    def view(self, X: torch.Tensor) -> torch.Tensor:
        """One random view of every row of ``X``. Shape kept."""
        V = random_shifts(X, self.max_shift, self.generator)
        return V + self.noise * torch.randn(V.shape, generator=self.generator,
                                            dtype=V.dtype)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.encoder(self.view(X)), self.encoder(self.view(X))])
