"""Training objectives other than classification (chapter: the theory of
representations), for the convergence experiment: a contrastive loss on two
augmented views of each digit.

``nt_xent`` is the normalized-temperature cross-entropy of SimCLR (Chen et
al., 2020), the InfoNCE loss of van den Oord et al. (2018) with the other
views of the batch as negatives. It is written here rather than imported
from the similarity chapter so that this module depends only on shared code.
"""
from __future__ import annotations

import torch
from torch import nn

from dlbook.data import shift_images

__all__ = ["random_shifts", "nt_xent", "TwoViews"]


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


def nt_xent(z: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent loss of ``2B`` embeddings whose rows ``i`` and ``i + B`` pair up.

    Each row is classified among the other ``2B - 1`` rows by cosine
    similarity over ``temperature``, its partner being the correct class;
    the loss is the mean cross-entropy. Shape: ``(2B, d)`` -> scalar.
    """
    if z.ndim != 2 or len(z) % 2 or len(z) < 4:
        raise ValueError(f"z must have shape (2B, d) with B >= 2, got "
                         f"{tuple(z.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    B = len(z) // 2
    z = nn.functional.normalize(z, dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(2 * B, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    partner = torch.cat([torch.arange(B, 2 * B), torch.arange(B)]).to(z.device)
    return nn.functional.cross_entropy(logits, partner)


class TwoViews(nn.Module):
    """Wrap an encoder so that ``forward(X)`` embeds two random views of ``X``.

    A view is a random shift of up to ``max_shift`` pixels plus Gaussian
    pixel noise of standard deviation ``noise``, drawn from ``generator``.
    ``forward`` returns ``cat([encoder(view1), encoder(view2)])``, the layout
    :func:`nt_xent` expects, so that :func:`dlbook.train.fit` can train it
    with ``loss_fn=lambda z, _: nt_xent(z)``. The representation is
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
