"""Text-to-image at toy scale (chapter: conditional generative models).

Captions such as ``"seven left"`` describe an 8x8 digit shifted one pixel to
one side. A frozen text encoder (random word vectors, summed: a bag of words)
turns a caption into the condition vector of a :class:`CVAE`, as
text-to-image systems condition on the embedding of a frozen, pretrained
text encoder. Holding some digit-side pairs out of training asks whether
the generator composes the words.
"""
from __future__ import annotations

import torch

from dlbook.data import shift_images

__all__ = ["DIGIT_WORDS", "SIDES", "TextEncoder", "shifted_digit_captions"]

#: The words for the digits 0 to 9, in order.
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven",
               "eight", "nine")
#: The side words and the shift (in pixels, positive to the right) they mean.
SIDES = {"left": -1, "right": 1}


class TextEncoder:
    """A frozen bag-of-words encoder: the sum of fixed random word vectors.

    ``encode(captions)`` returns ``(N, dim)``; an unknown word fails with
    its name. The vectors are drawn once, with ``seed``, and never trained.
    """

    def __init__(self, vocabulary: list[str], dim: int = 16, *, seed: int = 0
                 ) -> None:
        g = torch.Generator().manual_seed(seed)
        self.index = {w: i for i, w in enumerate(vocabulary)}
        self.vectors = torch.randn(len(vocabulary), dim, generator=g) / dim ** 0.5
        self.dim = dim

    def encode(self, captions: list[str]) -> torch.Tensor:
        """The embeddings of ``captions``, shape ``(N, dim)``."""
        rows = []
        for caption in captions:
            words = caption.split()
            unknown = [w for w in words if w not in self.index]
            if unknown:
                raise ValueError(f"unknown words {unknown} in {caption!r}")
            rows.append(self.vectors[[self.index[w] for w in words]].sum(0))
        return torch.stack(rows) if rows else torch.zeros(0, self.dim)


def shifted_digit_captions(X: torch.Tensor, y: torch.Tensor
                           ) -> tuple[torch.Tensor, list[str], torch.Tensor,
                                      torch.Tensor]:
    """Every image twice, shifted one pixel left and right, with captions.

    Shapes: ``X (N, 64)``, ``y (N,)`` -> images ``(2N, 64)``, ``2N``
    captions, digit labels ``(2N,)`` and side labels ``(2N,)`` (0 left,
    1 right).
    """
    if X.ndim != 2 or X.shape[1] != 64:
        raise ValueError(f"X must have shape (N, 64), got {tuple(X.shape)}")
    images, captions, digit, side = [], [], [], []
    for s, (word, dx) in enumerate(SIDES.items()):
        images.append(shift_images(X, dx, 0))
        captions += [f"{DIGIT_WORDS[int(k)]} {word}" for k in y]
        digit.append(y)
        side.append(torch.full_like(y, s))
    return torch.cat(images), captions, torch.cat(digit), torch.cat(side)
